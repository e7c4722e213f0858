"""`edgeprov broker config` against a real Mosquitto (tools/broker.py).

Shows: the generated `$7$` password entries are accepted by Mosquitto itself (and match
`mosquitto_passwd`'s algorithm); a wrong password is refused; a device publishing under another
device's id never reaches the gateway (ACL), while its own topic does; TLS with the generated CA
works and a client trusting another CA is refused; plaintext MQTT on the TLS listener is refused;
secret files are 0600.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import stat
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from tests.gateway.fleet import GATEWAY, Fleet, reading_topic
from tools.broker import password_hash

pytestmark = pytest.mark.integration

DEVICES = ["dev-1", "dev-2"]


@pytest.fixture
def fleet(tmp_path: Path, mosquitto_broker) -> Fleet:
    fleet = Fleet(tmp_path, DEVICES)
    mosquitto_broker(config=fleet.broker_config())
    return fleet


def test_password_hash_matches_mosquitto_passwd(tmp_path: Path):
    path = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "user", "s3cret"], check=True)
    entry = path.read_text().strip().split(":", 1)[1]
    _, kind, iterations, salt, _ = entry.split("$")
    assert kind == "7"
    assert password_hash("s3cret", base64.b64decode(salt), int(iterations)) == entry
    assert base64.b64decode(entry.split("$")[4]) == hashlib.pbkdf2_hmac(
        "sha512", b"s3cret", base64.b64decode(salt), int(iterations)
    )


def test_secret_files_are_private(fleet: Fleet):
    for name in ("ca.key", "server.key", "passwd", "credentials/dev-1", f"credentials/{GATEWAY}"):
        assert stat.S_IMODE((fleet.broker_dir / name).stat().st_mode) == 0o600, name


def test_wrong_password_refused(fleet: Fleet):
    async def scenario():
        with pytest.raises(aiomqtt.MqttError) as info:
            async with fleet.device_client("dev-1", password="not-the-password"):
                pass
        return str(info.value)

    error = asyncio.run(scenario()).lower()
    assert "not authorized" in error or "bad user name or password" in error, error


def test_device_cannot_publish_under_another_id(fleet: Fleet):
    async def scenario() -> list[str]:
        gw = aiomqtt.Client(
            "127.0.0.1", fleet.tls_port, username=GATEWAY, password=fleet.password(GATEWAY), tls_context=fleet.tls()
        )
        async with gw, fleet.device_client("dev-1") as dev:
            await gw.subscribe(f"edgeprov/v1/{GATEWAY}/+/reading", qos=1)
            await dev.publish(reading_topic("dev-2"), b"forged", qos=1)  # ACL: silently dropped
            await dev.publish("edgeprov/v1/gw-other/dev-1/reading", b"elsewhere", qos=1)
            await dev.publish(reading_topic("dev-1"), b"marker", qos=1)
            got = []
            async for message in gw.messages:  # in-order delivery: the marker comes after anything earlier
                got.append(f"{message.topic}={message.payload.decode()}")
                if message.payload == b"marker":
                    return got

    got = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert got == [f"{reading_topic('dev-1')}=marker"]


def test_device_cannot_read_another_devices_acks(fleet: Fleet):
    async def scenario() -> list[str]:
        gw = aiomqtt.Client(
            "127.0.0.1", fleet.tls_port, username=GATEWAY, password=fleet.password(GATEWAY), tls_context=fleet.tls()
        )
        async with gw, fleet.device_client("dev-1") as dev:
            await dev.subscribe(f"edgeprov/v1/{GATEWAY}/#", qos=1)  # broader than allowed: the ACL filters per message
            await gw.publish(reading_topic("dev-2", "ack"), b"for-dev-2", qos=1)
            await gw.publish(reading_topic("dev-1", "ack"), b"for-dev-1", qos=1)
            got = []
            async for message in dev.messages:
                got.append(message.payload.decode())
                if message.payload == b"for-dev-1":
                    return got

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == ["for-dev-1"]


def test_tls_needs_the_generated_ca_and_plaintext_is_refused(fleet: Fleet, tmp_path: Path):
    async def connect(**kwargs) -> None:
        async with aiomqtt.Client(
            "127.0.0.1", fleet.tls_port, username="dev-1", password=fleet.password("dev-1"), timeout=5, **kwargs
        ):
            pass

    asyncio.run(connect(tls_context=fleet.tls()))  # the generated CA and server certificate (SAN 127.0.0.1)
    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(connect())  # plaintext MQTT on the TLS listener
    other = Fleet(tmp_path / "other", ["dev-1"])
    other.broker_config()
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError)):
        asyncio.run(connect(tls_context=other.tls()))  # a client that trusts another CA
