"""MQTT over TLS with per-device credentials: Mosquitto with a test CA, a server certificate and a
password file; the device verifies the broker against its CA file and logs in with its own password.
A wrong password is refused by the broker, logged, and retried with backoff (nothing is signed away:
the readings wait in the ring)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from firmware_checks import Verifier

pytestmark = pytest.mark.integration

ATTRS = ("org=acme", "type=temp", "site=ward-7")


def make_pki(folder) -> tuple:
    """A CA and a server certificate for localhost / 127.0.0.1 (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("edgeprov test CA", ca_key, "edgeprov test CA", ca_key, True)
    server = cert("localhost", server_key, "edgeprov test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem))
    key_pem = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    paths[2].write_bytes(key_pem)
    return paths


def test_tls_and_password_login(tmp_path, mosquitto_broker, provision, device_process, subscriber) -> None:
    ca, cert, key = make_pki(tmp_path)
    dev = provision(type("B", (), {"host": "localhost", "port": 1})(), max_readings=3)
    password = dev.config["broker"]["password"]
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), dev.device_id, password], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "observer", "observer-pw"], check=True)
    tls = f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\nallow_anonymous false\npassword_file {passwords}"
    broker = mosquitto_broker(tls)
    (dev.path / "ca.pem").write_bytes(ca.read_bytes())
    cfg = dev.config
    cfg["broker"].update(port=broker.port, tls=True, ca="ca.pem")
    (dev.path / "config.json").write_text(json.dumps(cfg))

    tls_broker = type("B", (), {"host": "localhost", "port": broker.port})()
    sub = subscriber(tls_broker, client_id="tls-subscriber", ca=ca, login=("observer", "observer-pw"))
    run = device_process(dev)
    assert run.wait(120) == 0, run.output()
    frames = sub.wait_count("/reading", 3)
    verifier = Verifier(dev.aa, dev.device_id, ATTRS)
    assert [verifier.verify(f).ctr for f in frames] == [1, 2, 3]

    cfg["broker"]["password"] = "wrong"
    cfg["max_readings"] = 0
    (dev.path / "config.json").write_text(json.dumps(cfg))
    refused = device_process(dev)
    refused.wait_for("broker refused connection, return code 5", count=2, timeout=60)
    refused.kill()
    assert len(sub.payloads("/reading")) == 3
