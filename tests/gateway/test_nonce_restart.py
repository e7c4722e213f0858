"""G4 across a gateway crash (spec §3.5 G4, §4 D5): the real service (`edgeprov gateway run`) behind a real
TLS Mosquitto relays a device's readings, is killed with SIGKILL and started again; the device's flash is
then partly rolled back (spent pool entries restored, counter kept), so its next reading has a NEW
counter and a REUSED R_dev. The restarted gateway refuses it with reason nonce-reuse and an alert
(log line and /metrics), a byte-identical redelivery of an old reading is still only a duplicate, and
an honest reading after it is relayed. The ledger is a closed port: readings wait in the outbox.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edgeprov import wire
from edgeprov.procs import free_port
from gateway.config import load_config
from tests.gateway.fleet import Fleet, reading_frame
from tests.gateway.rollback import restore_pool
from tests.gateway.test_gateway_service import GatewayProcess, _publish_and_collect_acks

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TS = 1_790_000_000_000


@pytest.fixture
def fleet(tmp_path: Path, mosquitto_broker) -> Fleet:
    fleet = Fleet(tmp_path, ["dev-1"]).issue()
    mosquitto_broker(config=fleet.broker_config())
    return fleet


@pytest.fixture
def gateways():
    started: list[GatewayProcess] = []
    yield started
    for process in started:
        process.stop()


def _exchange(fleet: Fleet, frames: list[bytes], want: set[int]) -> dict[int, wire.Ack]:
    return asyncio.run(asyncio.wait_for(_publish_and_collect_acks(fleet, "dev-1", frames, want), 60))


def test_after_kill_9_a_reused_pool_entry_under_a_new_counter_is_refused_with_an_alert(fleet: Fleet, gateways):
    config = fleet.gateway_config([f"http://127.0.0.1:{free_port()}"])
    signer = fleet.signer("dev-1")
    signer.precompute(3)
    spent = list(signer.record.entries)
    frames = [reading_frame(signer, TS + i, 4000 + i) for i in range(3)]  # ctr 1..3
    gateways.append(GatewayProcess(config).start())
    acks = _exchange(fleet, frames, {1, 2, 3})
    assert [acks[c].status for c in (1, 2, 3)] == [wire.ACK_RELAYED] * 3  # durable before this Ack
    gateways[0].kill9()

    rolled_back = restore_pool(signer, spent[:1])
    reused = reading_frame(rolled_back, TS + 10, 1)  # ctr 4 with ctr 1's pool entry
    honest = reading_frame(rolled_back, TS + 11, 2)  # ctr 5, a fresh entry
    gateways.append(GatewayProcess(config).start())
    acks = _exchange(fleet, [frames[1], reused, honest], {2, 4, 5})

    assert acks[2].status == wire.ACK_RELAYED  # the redelivery of ctr 2: a duplicate, acknowledged again
    assert (acks[4].status, acks[4].reason) == (wire.ACK_REJECTED, "nonce-reuse")
    assert acks[5].status == wire.ACK_RELAYED
    metrics = gateways[1].get("/metrics")[1].decode()
    assert 'edgeprov_gateway_alerts_total{reason="nonce-reuse"} 1.0' in metrics
    assert 'edgeprov_gateway_frames_refused_total{reason="nonce-reuse"} 1.0' in metrics
    assert "edgeprov_gateway_duplicates_total 1.0" in metrics
    assert "ALERT nonce-reuse on edgeprov/v1/gw-1/dev-1/reading" in gateways[1].log.read_text()
    with sqlite3.connect(load_config(config).db_path) as db:
        stored = [ctr for (ctr,) in db.execute("SELECT ctr FROM readings ORDER BY ctr")]
    db.close()
    assert stored == [1, 2, 3, 5]
