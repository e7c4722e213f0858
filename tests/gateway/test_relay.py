"""The relay pipeline (gateway/relay.py) over the real ledger link (ApiLink) and a real 4-node cluster.

Shows: readings queued at once go out as several batches (batch size), up to four in flight; every
reading gets exactly one outcome, written to the store (the outbox empties): honest ones
committed with their block height, a forged one refused by the endorsers with BAD_SIGNATURE inside
its batch without sinking the others. Replaying the same outbox bytes (what a restart does) reports
the original commits again and records nothing twice (spec §3.6 L1/L3).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from gateway.ledger_link import ApiLink, Commit
from gateway.metrics import Metrics
from gateway.relay import Submitter
from gateway.store import Entry, Store
from ledger_node.block import tx_id

# the contract tests' real cluster and authority-side fleet (imported as those tests import them)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
from cluster import ContractCluster
from ledger_harness import Fleet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICE, READINGS, FORGED = "relay-dev", 24, 7


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(b"gateway relay")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet):
    c = ContractCluster(tmp_path_factory.mktemp("cluster"), fleet.system.mpk, fleet.aa.public_key())
    c.start()
    try:
        asyncio.run(c.ready())
        yield c
    finally:
        c.stop()


def outbox_entry(reading: dict) -> Entry:
    tx = json.dumps(reading, sort_keys=True, separators=(",", ":")).encode()
    return Entry(reading["device"], reading["epoch"], reading["ctr"], reading["ts_ms"], reading["ts_ms"],
                 bytes(32), tx_id(tx), tx)  # fmt: skip


async def relay(cluster: ContractCluster, store: Store, entries: list[Entry], metrics: Metrics) -> dict:
    """Run a Submitter until every entry has its outcome; ctr -> [Commit, ...] (more than one = a bug)."""
    outcomes: dict[int, list[Commit]] = {}
    done = asyncio.Event()

    def on_outcome(entry: Entry, commit: Commit) -> None:
        outcomes.setdefault(entry.ctr, []).append(commit)
        if sum(map(len, outcomes.values())) >= len(entries):
            done.set()

    link = ApiLink(tuple(cluster.urls), cluster.token)
    submitter = Submitter(link, store, metrics, on_outcome, batch=5, commit_timeout_s=20, inflight=4, linger_s=0.002)
    for entry in entries:
        submitter.enqueue(entry)
    runner = asyncio.create_task(submitter.run())
    try:
        await asyncio.wait_for(done.wait(), 120)  # bounds a broken cluster only
        await asyncio.sleep(0.5)  # a duplicate outcome would arrive meanwhile
    finally:
        runner.cancel()
        await submitter.close()
        await link.close()
    return outcomes


def test_batches_in_flight_each_reading_one_outcome_and_a_replay_is_idempotent(
    cluster: ContractCluster, fleet: Fleet, tmp_path: Path
) -> None:
    async def scenario() -> tuple[dict, dict, list, Metrics, list[int]]:
        async with cluster.api() as api:
            for doc in (fleet.gateway("gw-1"), fleet.device(DEVICE)):
                assert (await api.call("registry", doc["action"], {"doc": doc})).ok
        readings = [fleet.reading(DEVICE, ctr) for ctr in range(1, READINGS + 1)]
        forged = readings[FORGED - 1]
        readings[FORGED - 1] = fleet.rehop({**forged, "ts_ms": forged["ts_ms"] + 1})  # the signature no longer fits
        entries = [outbox_entry(r) for r in readings]
        store = await Store.open(tmp_path / "gateway.sqlite3")
        try:
            await asyncio.gather(*(store.add(e) for e in entries))
            metrics = Metrics()
            first = await relay(cluster, store, entries, metrics)
            left = [e.ctr for e in await store.pending()]
            again = await relay(cluster, store, entries, Metrics())
        finally:
            await store.close()
        async with cluster.api() as api:
            found = await api.completeness(DEVICE, 1)
        return first, again, found["ranges"], metrics, left

    first, again, ranges, metrics, left = asyncio.run(scenario())
    assert sorted(first) == list(range(1, READINGS + 1))
    assert all(len(commits) == 1 for commits in first.values()), first
    assert first[FORGED] == [Commit(None, False, "BAD_SIGNATURE")]
    honest = {ctr: c for ctr, (c,) in first.items() if ctr != FORGED}
    assert all(c.valid and c.height is not None for c in honest.values()), honest
    assert left == []  # every outcome is in the store: nothing waits in the outbox
    assert ranges == [[1, FORGED - 1], [FORGED + 1, READINGS]]
    batches = metrics.batch_readings.collect()[0]
    count = next(s.value for s in batches.samples if s.name.endswith("_count"))
    assert count >= READINGS / 5  # at most 5 readings a batch: several batches, each with one outcome wait
    # the replay: the same bytes name the same readings, so the original commits come back
    assert {ctr: c for ctr, (c,) in again.items()} == {**honest, FORGED: Commit(None, False, "BAD_SIGNATURE")}
