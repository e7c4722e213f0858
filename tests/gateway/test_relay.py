"""The relay pipeline (gateway/relay.py) over the real ledger link (ApiLink) and a real 4-node cluster.

Shows: readings queued at once go out as several batches (batch size), up to four in flight; every
reading gets exactly one outcome, written to the store (the outbox empties): honest ones
committed with their block height, a forged one refused by the endorsers with BAD_SIGNATURE inside
its batch without sinking the others. Replaying the same outbox bytes (what a restart does) reports
the original commits again and records nothing twice (spec §3.6 L1/L3).

Through CompactLink (gateway/compact.py, spec §3.6 L4), as the gateway service submits: a device's
readings go in full form until one is committed, in compact form after (the ledger's records carry
0x81 signatures); compact readings whose credential the ledger lacks (its mark set as if the ledger
had been reset) are refused with BAD_SIGNATURE under their compact ids, submitted again in full form
and committed; and a replay with no marks (a restart) reports the compact commits for the full forms.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from gateway.compact import CompactLink, Forms, Sent
from gateway.ledger_link import ApiLink, Commit, LedgerLink
from gateway.metrics import Metrics
from gateway.relay import Submitter
from gateway.store import Entry, Store
from ledger_node.block import tx_id
from ledger_node.endorsement.proposal import item_id

# the contract tests' real cluster and authority-side fleet (imported as those tests import them)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
from cluster import ContractCluster
from ledger_harness import Fleet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICE, READINGS, FORGED = "relay-dev", 24, 7
COMPACT_DEVICE, LOST_DEVICE = "relay-compact", "relay-lost"


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(b"gateway relay")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet):
    with ContractCluster(tmp_path_factory.mktemp("cluster"), fleet.system.mpk, fleet.aa.public_key()).running() as c:
        yield c


@pytest.fixture(scope="module")
def gateway_registered(cluster: ContractCluster, fleet: Fleet) -> None:
    async def register() -> None:
        async with cluster.api() as api:
            doc = fleet.gateway("gw-1")
            assert (await api.call("registry", doc["action"], {"doc": doc})).ok

    asyncio.run(register())


async def register_devices(cluster: ContractCluster, fleet: Fleet, *devices: str) -> None:
    async with cluster.api() as api:
        for device in devices:
            doc = fleet.device(device)
            assert (await api.call("registry", doc["action"], {"doc": doc})).ok


def outbox_entry(reading: dict) -> Entry:
    tx = json.dumps(reading, sort_keys=True, separators=(",", ":")).encode()
    return Entry(reading["device"], reading["epoch"], reading["ctr"], reading["ts_ms"], reading["ts_ms"],
                 bytes(32), tx_id(tx), tx)  # fmt: skip


async def relay(
    cluster: ContractCluster, store: Store, entries: list[Entry], metrics: Metrics, link: LedgerLink | None = None
) -> dict:
    """Run a Submitter until every entry has its outcome; ctr -> [Commit, ...] (more than one = a bug).
    Over `link` if given (left open), else over an ApiLink of its own."""
    outcomes: dict[int, list[Commit]] = {}
    done = asyncio.Event()

    def on_outcome(entry: Entry, commit: Commit) -> None:
        outcomes.setdefault(entry.ctr, []).append(commit)
        if sum(map(len, outcomes.values())) >= len(entries):
            done.set()

    own = link is None
    link = link or ApiLink(tuple(cluster.urls), cluster.token)
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
        if own:
            await link.close()
    return outcomes


def test_batches_in_flight_each_reading_one_outcome_and_a_replay_is_idempotent(
    cluster: ContractCluster, fleet: Fleet, gateway_registered: None, tmp_path: Path
) -> None:
    async def scenario() -> tuple[dict, dict, list, Metrics, list[int]]:
        await register_devices(cluster, fleet, DEVICE)
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


def commits(outcomes: dict) -> dict[int, Commit]:
    assert all(len(found) == 1 for found in outcomes.values()), outcomes  # one outcome per reading
    return {ctr: c for ctr, (c,) in outcomes.items()}


async def signature_forms(cluster: ContractCluster, device: str, count: int) -> list[str]:
    """The form byte (hex) of each committed record's signature, ctr 1..count, as the ledger holds it."""
    async with cluster.api() as api:
        return [(await api.record(f"{device}@1#{ctr}"))["signature"][:2] for ctr in range(1, count + 1)]


def test_full_form_until_committed_then_compact_and_a_refused_compact_goes_again_in_full(
    cluster: ContractCluster, fleet: Fleet, gateway_registered: None, tmp_path: Path
) -> None:
    async def scenario() -> dict:
        await register_devices(cluster, fleet, COMPACT_DEVICE, LOST_DEVICE)
        ours = [outbox_entry(fleet.reading(COMPACT_DEVICE, ctr)) for ctr in range(1, 11)]
        lost = [outbox_entry(fleet.reading(LOST_DEVICE, ctr)) for ctr in range(1, 5)]
        link = CompactLink(ApiLink(tuple(cluster.urls), cluster.token))
        # the gateway believes LOST_DEVICE's credential is on the ledger, which never saw it (as after a reset)
        link.marks.learn(Sent(Forms.of(lost[0].tx), compact=False), Commit(1, True))
        store = await Store.open(tmp_path / "gateway.sqlite3")
        try:
            await asyncio.gather(*(store.add(e) for e in ours + lost))
            out = {
                "first": commits(await relay(cluster, store, ours[:3], Metrics(), link)),  # one batch, all full
                "later": commits(await relay(cluster, store, ours[3:], Metrics(), link)),
                "lost": commits(await relay(cluster, store, lost[:3], Metrics(), link)),
                "after": commits(await relay(cluster, store, lost[3:], Metrics(), link)),
            }
            restarted = CompactLink(ApiLink(tuple(cluster.urls), cluster.token))  # no marks: all in full form
            try:
                out["replay"] = commits(await relay(cluster, store, ours, Metrics(), restarted))
            finally:
                await restarted.close()
            out["outbox"] = await store.pending()
        finally:
            await store.close()
            await link.close()
        async with cluster.api() as api:
            out["ranges"] = [(await api.completeness(d, 1))["ranges"] for d in (COMPACT_DEVICE, LOST_DEVICE)]
            compact_ids = [
                item_id(json.loads(f.compact), tx_id(f.compact).hex()) for f in map(Forms.of, (e.tx for e in lost[:3]))
            ]
            out["refusals"] = [(s["status"], s["reason"]) for s in await api.tx_wait(compact_ids, 5000)]
        out["forms"] = (
            await signature_forms(cluster, COMPACT_DEVICE, 10),
            await signature_forms(cluster, LOST_DEVICE, 4),
        )
        return out

    out = asyncio.run(scenario())
    assert all(
        c.valid and c.height is not None for part in ("first", "later", "lost", "after") for c in out[part].values()
    )
    assert sorted(out["first"]) == [1, 2, 3] and sorted(out["later"]) == list(range(4, 11))
    assert sorted(out["lost"]) == [1, 2, 3] and sorted(out["after"]) == [4]
    ours, lost = out["forms"]
    assert ours == ["01"] * 3 + ["81"] * 7  # full until the first commit, compact after
    assert lost == ["01"] * 3 + ["81"]  # refused compact -> full; once a full one committed, compact again
    assert out["refusals"] == [("invalid", "BAD_SIGNATURE")] * 3  # recorded under the compact ids only
    assert out["ranges"] == [[[1, 10]], [[1, 4]]]  # contiguous, nothing lost
    # a restart replays the outbox in full form: the compact commits are found under their own ids
    assert out["replay"] == {**out["first"], **out["later"]}
    assert out["outbox"] == []
