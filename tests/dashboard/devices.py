"""CPython devices for the dashboard tests: real keys and shares (edgeprov.crypto.device), real frames (edgeprov.wire)."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edgeprov.crypto.abs_iot import keygen, setup
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.device import DeviceSigner
from edgeprov.crypto.policy import parse_policy
from edgeprov.crypto.rng import SystemRng
from edgeprov.wire import STATUS_OFFLINE, STATUS_ONLINE, Payload, Reading, topic
from tools.authority import policy_signed_by

POLICY = "id and 1 of (org=acme, type=temp)"
ATTRS = [b"org=acme", b"type=temp"]


class SimDevice:
    """One device: its signer (single-use record on disk) and its own MQTT connection with a last will."""

    def __init__(self, name: str, gateway: str, directory: Path, host: str, port: int) -> None:
        rng = SystemRng()
        mpk, alpha = setup(6, rng)
        k_iot, _ = keygen(mpk, alpha, name.encode(), 1, ATTRS, rng)
        pd = policy_signed_by(parse_policy(POLICY, mpk.d), ATTRS).pd
        bundle = DeviceBundle.create(mpk, k_iot, rng.random_bytes(32), (pd,), 4)
        record = directory / f"{name}.record"
        DeviceSigner.provision(bundle, record)
        self.signer = DeviceSigner(bundle, record)
        self.name, self.gateway = name, gateway
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.will_set(topic(gateway, name, "status"), STATUS_OFFLINE, qos=1, retain=True)
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.publish(topic(gateway, name, "status"), STATUS_ONLINE, qos=1, retain=True).wait_for_publish(10)

    def publish(self, values: dict[str, int], inputs: tuple[bytes, ...] = ()) -> Reading:
        msg = Payload.of(values, inputs).encode()
        signed = self.signer.sign(int(time.time() * 1000), msg)
        reading = Reading(self.name, self.signer.bundle.epoch, signed.ctr, signed.ts_ms, msg, signed.share.encode())
        self.client.publish(topic(self.gateway, self.name, "reading"), reading.encode(), qos=1).wait_for_publish(10)
        return reading

    def skip(self) -> None:
        """Spend a counter without publishing: the gap a crash between sign and publish leaves (spec §4 D2)."""
        self.signer.sign(int(time.time() * 1000), Payload.of({"temp_c": 0}).encode())

    def crash(self) -> None:
        """Drop the connection without DISCONNECT, so the broker publishes the last will."""
        self.client.loop_stop()
        self.client.socket().close()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
