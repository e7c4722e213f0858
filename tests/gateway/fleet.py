"""A small real fleet for gateway tests: authority, broker config, gateway config, CPython devices.

Everything is made by the project's own commands (`edgeprov authority ...`, `edgeprov broker
config`) in a temp dir; devices sign with edgeprov.crypto.device.DeviceSigner, the CPython
reference of the firmware, and publish real frames over MQTT.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov import wire
from edgeprov.cli import main
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.device import DeviceSigner
from edgeprov.crypto.objects import MasterPublicKey
from edgeprov.procs import free_port
from edgeprov.registration import Registration

GATEWAY = "gw-1"
POLICY = "id and 2 of (org=acme, type=temp, site=ward-7)"
ATTRS = ("org=acme", "type=temp")


def run(*argv: str) -> None:
    code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"edgeprov {' '.join(argv)} exited {code}")


@dataclass
class Fleet:
    root: Path
    devices: list[str]
    tls_port: int = 0

    @property
    def aa(self) -> Path:
        return self.root / "aa"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    def issue(self) -> Fleet:
        run("authority", "setup", "--aa-dir", str(self.aa))
        run("authority", "gateway", "--aa-dir", str(self.aa), "--gateway", GATEWAY)
        for device in self.devices:
            attrs = [x for a in ATTRS for x in ("--attr", a)]
            keygen = ["--device", device, "--policy", POLICY, "--gateway", GATEWAY, "--comb-width", "2"]
            run("authority", "keygen", "--aa-dir", str(self.aa), *keygen, *attrs)
        return self

    def broker_config(self) -> str:
        """Generate the broker files; returns the config text for the `mosquitto_broker` fixture.

        The fixture adds a plaintext loopback listener of its own in front; the generated TLS
        listener is on `self.tls_port`. `--run-as root`: pytest's temp dirs are closed to others.
        """
        self.tls_port = free_port()
        run("broker", "config", "--out", str(self.broker_dir), "--gateway", GATEWAY, "--devices", *self.devices,
            "--port", str(self.tls_port), "--bind", "127.0.0.1", "--run-as", "root")  # fmt: skip
        return (self.broker_dir / "mosquitto.conf").read_text()

    def password(self, user: str) -> str:
        return (self.broker_dir / "credentials" / user).read_text()

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.broker_dir / "ca.crt"))

    def gateway_config(self, ledger: list[str], **gateway_options) -> Path:
        doc = {
            "gateway": {
                "id": GATEWAY,
                "key_file": str(self.aa / "gateways" / GATEWAY / "e1" / "gateway.key"),
                "devices_dir": str(self.aa / "issued"),
                "data_dir": str(self.root / "gateway-data"),
                "http_listen": f"127.0.0.1:{free_port()}",
                **gateway_options,
            },
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.tls_port,
                "username": GATEWAY,
                "password_file": str(self.broker_dir / "credentials" / GATEWAY),
                "ca_file": str(self.broker_dir / "ca.crt"),
                "keepalive_s": 10,
                "watchdog_s": 2.0,
                "reconnect_max_s": 1.0,
            },
            "ledger": {"api_urls": ledger, "commit_timeout_s": 5.0, "retry_max_s": 0.5},
        }
        path = self.root / "gateway.toml"
        path.write_text(tomli_w.dumps(doc))
        return path

    def signer(self, device: str) -> DeviceSigner:
        issued = self.aa / "issued" / device / "e1"
        return DeviceSigner(DeviceBundle.decode((issued / "device.bundle").read_bytes()), issued / "device.record")

    def mpk(self) -> MasterPublicKey:
        return MasterPublicKey.decode(bytes.fromhex(json.loads((self.aa / "authority.json").read_text())["mpk"]))

    def gateway_public_key(self) -> Ed25519PublicKey:
        aa_key = json.loads((self.aa / "authority.json").read_text())["signing_public_key"]
        doc = json.loads((self.aa / "gateways" / GATEWAY / "e1" / "registration.json").read_text())
        reg = Registration.verify(doc, Ed25519PublicKey.from_public_bytes(bytes.fromhex(aa_key)))
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(reg.public_key))

    def device_client(self, device: str, password: str | None = None, **kwargs) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.tls_port,
            username=device,
            password=self.password(device) if password is None else password,
            identifier=f"test-{device}",
            tls_context=self.tls(),
            **kwargs,
        )


def reading_frame(signer: DeviceSigner, ts_ms: int, temp_milli: int) -> bytes:
    """Sign the next reading like the firmware does and encode it as a frame (edgeprov.wire)."""
    msg = wire.Payload.of({"temp": temp_milli}).encode()
    signed = signer.sign(ts_ms, msg)
    bundle = signer.bundle
    return wire.Reading(bundle.device_id.decode(), bundle.epoch, signed.ctr, ts_ms, msg, signed.share.encode()).encode()


def reading_topic(device: str, kind: str = "reading") -> str:
    return wire.topic(GATEWAY, device, kind)
