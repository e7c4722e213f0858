"""`kill -9` of the gateway mid-stream against a real 4-node ledger cluster (loopback TCP).

Shows: readings published before, during and after the crash all end on the ledger exactly once:
the broker keeps the gateway's persistent session (frames not yet durable get no PUBACK and are
delivered again), the restarted gateway replays its outbox, and duplicates are dropped by the
counter/digest check and the ledger's transaction id. Counters on the ledger are 1..N, contiguous.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.gateway.fleet import Fleet, reading_frame, reading_topic
from tests.gateway.test_gateway_service import GatewayProcess
from tests.ledger.test_cluster import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TS = 1_790_000_000_000
N = 60


def _ledger_readings(node_dir: Path) -> list[tuple[str, int]]:
    db = node_dir / "ledger.sqlite3"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT data FROM txs WHERE valid = 1").fetchall()
    return [(doc["device"], doc["ctr"]) for doc in (json.loads(data) for (data,) in rows)]


@pytest.mark.timeout(240)
def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(tmp_path: Path, mosquitto_broker):
    fleet = Fleet(tmp_path, ["dev-1"]).issue()
    mosquitto_broker(config=fleet.broker_config())
    cluster = Cluster(tmp_path / "ledger")
    for i in range(4):
        cluster.start(i)
    endpoints = [f"127.0.0.1:{cluster.client_port(i)}" for i in range(4)]
    gateway = GatewayProcess(fleet.gateway_config(endpoints))
    signer = fleet.signer("dev-1")
    frames = [reading_frame(signer, TS + i, i) for i in range(N)]

    async def publish(chunk: list[bytes]) -> None:
        async with fleet.device_client("dev-1") as client:
            for frame in chunk:
                await client.publish(reading_topic("dev-1"), frame, qos=1)

    try:
        gateway.start()
        asyncio.run(publish(frames[:20]))
        gateway.wait_for(lambda h: h["outbox"] < 20, "started committing")
        asyncio.run(publish(frames[20:40]))
        gateway.kill9()  # mid-stream: some of 21..40 are stored, some only at the broker
        asyncio.run(publish(frames[40:]))  # while the gateway is down: queued in its persistent session
        gateway.start()
        deadline = time.monotonic() + 150  # bounds a broken run only; no speed is asserted
        while len(set(_ledger_readings(tmp_path / "ledger" / "node0"))) < N and time.monotonic() < deadline:
            time.sleep(0.5)
        gateway.wait_for(lambda h: h["outbox"] == 0, "emptied its outbox")
    finally:
        gateway.stop()
        cluster.stop_all()

    on_ledger = _ledger_readings(tmp_path / "ledger" / "node0")
    assert sorted(ctr for _, ctr in on_ledger) == list(range(1, N + 1)), gateway.log.read_text()[-2000:]
    assert {device for device, _ in on_ledger} == {"dev-1"}
