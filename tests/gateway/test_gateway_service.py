"""The gateway service end to end, as a subprocess (`edgeprov gateway run CONFIG`), over a real TLS Mosquitto.

Shows: a reading signed by a CPython device (DeviceSigner) goes through the broker to the gateway
and comes out as a Data Transfer transaction whose combined signature verifies (abs_iot.verify) and
whose path hop verifies against the gateway's AA-registered key; the device gets an Ack; a forged
share is refused (G6) and a reused nonce raises an alert, both visible in /metrics; while the
ledger link points at a closed port (the real client, no mock) every reading stays in the durable
outbox and /healthz says the ledger is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edgeprov import wire
from edgeprov.crypto.abs_iot import Record, verify
from edgeprov.crypto.objects import DeviceShare, Signature
from edgeprov.crypto.points import g1
from edgeprov.crypto.statement import Statement
from edgeprov.pathhop import Hop, verify_hop
from edgeprov.procs import free_port
from gateway.config import load_config
from gateway.devices import load_devices
from tests.gateway.fleet import GATEWAY, Fleet, reading_frame, reading_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TS = 1_790_000_000_000


class GatewayProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.http = load_config(config).http_listen
        self.log = config.with_suffix(".log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> GatewayProcess:
        with self.log.open("ab") as log:
            argv = [sys.executable, "-m", "edgeprov.cli", "gateway", "run", str(self.config), "--log-level", "DEBUG"]
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        self.wait_for(lambda h: h["mqtt_connected"], "connected to the broker")
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{self.http}{path}", timeout=2) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def health(self) -> dict | None:
        try:
            return json.loads(self.get("/healthz")[1])
        except OSError:
            return None

    def wait_for(self, predicate, what: str, limit_s: float = 60) -> dict:
        """Poll /healthz until `predicate` holds; the limit only bounds a broken run, it asserts no speed."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            health = self.health()
            if health is not None and predicate(health):
                return health
            time.sleep(0.1)
        raise RuntimeError(f"gateway never {what}: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def fleet(tmp_path: Path, mosquitto_broker) -> Fleet:
    fleet = Fleet(tmp_path, ["dev-1", "dev-2"]).issue()
    mosquitto_broker(config=fleet.broker_config())
    return fleet


@pytest.fixture
def gateway_factory():
    started: list[GatewayProcess] = []

    def start(config: Path) -> GatewayProcess:
        started.append(GatewayProcess(config).start())
        return started[-1]

    yield start
    for process in started:
        process.stop()


async def _publish_and_collect_acks(
    fleet: Fleet, device: str, frames: list[bytes], want: set[int]
) -> dict[int, wire.Ack]:
    """Publish frames as `device` and return the Acks (by ctr) until every ctr in `want` has one."""
    acks: dict[int, wire.Ack] = {}
    async with fleet.device_client(device) as client:
        await client.subscribe(reading_topic(device, "ack"), qos=1)
        for frame in frames:
            await client.publish(reading_topic(device), frame, qos=1)
        async for message in client.messages:
            ack = wire.Ack.decode(message.payload)
            acks[ack.ctr] = ack
            if want <= set(acks):
                return acks
    return acks


def _stored_transactions(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        return [json.loads(tx) for (tx,) in conn.execute("SELECT tx FROM readings ORDER BY ctr")]


def test_reading_becomes_a_verified_transaction_and_waits_in_the_outbox(fleet: Fleet, gateway_factory):
    closed_port = free_port()  # nothing listens: the real ledger client gets "connection refused"
    config = fleet.gateway_config([f"http://127.0.0.1:{closed_port}"], check_device_shares=True)
    gateway = gateway_factory(config)
    signer = fleet.signer("dev-1")
    frames = [reading_frame(signer, TS + i, 4000 + i) for i in range(3)]
    honest = wire.Reading.decode(reading_frame(signer, TS + 9, 1))  # ctr 4
    share = DeviceShare.decode(honest.share)
    forged = wire.Reading(
        "dev-1", 1, honest.ctr, honest.ts_ms, honest.msg, DeviceShare(share.W_dev + g1, share.R_dev).encode()
    )
    reused = wire.Reading("dev-1", 1, 50, TS, wire.Reading.decode(frames[0]).msg, wire.Reading.decode(frames[0]).share)
    acks = asyncio.run(
        asyncio.wait_for(
            _publish_and_collect_acks(fleet, "dev-1", [*frames, forged.encode(), reused.encode()], {1, 2, 3, 4, 50}), 60
        )
    )
    assert [acks[c].status for c in (1, 2, 3)] == [wire.ACK_RELAYED] * 3
    assert (acks[4].status, acks[4].reason) == (wire.ACK_REJECTED, "share-invalid")
    assert (acks[50].status, acks[50].reason) == (wire.ACK_REJECTED, "nonce-reuse")

    health = gateway.wait_for(lambda h: h["outbox"] == 3, "held 3 readings in its outbox")
    assert health["ledger_reachable"] is False and health["mqtt_connected"] is True
    metrics = gateway.get("/metrics")[1].decode()
    assert 'edgeprov_gateway_frames_refused_total{reason="share-invalid"} 1.0' in metrics
    assert 'edgeprov_gateway_alerts_total{reason="nonce-reuse"} 1.0' in metrics
    assert "edgeprov_gateway_submit_failures_total" in metrics

    device = load_devices(fleet.aa / "issued", GATEWAY)["dev-1"]
    mpk, hop_key = fleet.mpk(), fleet.gateway_public_key()
    txs = _stored_transactions(load_config(config).db_path)
    assert [tx["ctr"] for tx in txs] == [1, 2, 3]
    for tx, frame in zip(txs, frames, strict=True):
        reading = wire.Reading.decode(frame)
        assert (tx["device"], tx["epoch"], tx["ts_ms"], bytes.fromhex(tx["msg"])) == (
            "dev-1",
            1,
            reading.ts_ms,
            reading.msg,
        )
        record = Record(
            b"dev-1", tx["epoch"], tx["ctr"], tx["ts_ms"], bytes.fromhex(tx["msg"]), bytes.fromhex(tx["pd"])
        )
        signature = Signature.decode(bytes.fromhex(tx["signature"]))
        assert not signature.is_compact
        verify(mpk, device.registry_entry, record, signature)  # raises SignatureRejected if not valid
        stmt = Statement(mpk.aa_fp, record.pd, b"dev-1", record.epoch, record.ctr, record.ts_ms, record.msg)
        (hop,) = [Hop.from_json(h) for h in tx["hops"]]
        assert hop.gateway == GATEWAY
        verify_hop(hop_key, hop, stmt)
