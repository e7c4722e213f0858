"""The endorsement pipeline pieces: request batching, the worker-process form of signature batches,
and commit waiters woken by the commit path (real endorsers, real ABS-IOT-V1 signatures)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
from cluster import write_authority
from ledger_harness import Fleet, Ledger

from ledger_node.api.commits import CommitWaiters
from ledger_node.endorsement import worker
from ledger_node.endorsement.batcher import EndorseBatcher
from ledger_node.endorsement.proposal import make_batch_proposal, make_proposal

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ledger() -> tuple[Fleet, Ledger]:
    fleet = Fleet(b"pipeline")
    return fleet, Ledger(fleet).enrol(fleet, "pipe-1")


def test_requests_arriving_together_share_one_batch(ledger) -> None:
    fleet, led = ledger
    good = [make_proposal("readings", "submit", fleet.reading("pipe-1", ctr)).to_json() for ctr in (1, 2, 3)]
    forged = fleet.reading("pipe-1", 4)
    forged["ts_ms"] += 1  # the device's signature no longer matches; the gateway signs the altered one
    bad = make_proposal("readings", "submit", fleet.rehop(forged)).to_json()

    async def both() -> tuple[list, list, int]:
        batcher = EndorseBatcher(led.endorsers[0], led.state, pool=None, gather_s=0.05)
        first, second = await asyncio.gather(batcher.endorse(good[:2]), batcher.endorse([good[2], bad]))
        return first, second, batcher.batches

    first, second, batches = asyncio.run(both())
    assert batches == 1
    assert [r["ok"] for r in first + second] == [True, True, True, False]
    assert second[1]["code"] == "BAD_SIGNATURE"
    assert [r["proposal_id"] for r in first + second[:1]] == [d_id(d) for d in good]


def d_id(doc: dict) -> str:
    from ledger_node.endorsement.proposal import parse_proposal

    return parse_proposal(doc).id


def test_a_worker_process_gives_the_same_results_as_in_process(ledger, tmp_path) -> None:
    """The worker has only the prefetched values and its own (cold) credential cache: a compact
    signature verifies against the ledger's copy of the credential (L4), read ahead with the rest."""
    fleet, led = ledger
    led.run("readings", "submit", fleet.reading("pipe-1", 10))
    readings = [fleet.reading("pipe-1", ctr, compact=ctr == 12) for ctr in (11, 12, 13)]
    readings[2] = fleet.rehop({**readings[2], "ts_ms": readings[2]["ts_ms"] + 1})  # must be rejected
    docs = [make_proposal("readings", "submit", r).to_json() for r in readings]
    docs.append(make_batch_proposal([(r, f"n{i}") for i, r in enumerate(readings)]).to_json())
    endorser = led.endorsers[1]
    plan = endorser.plan(docs)
    values = endorser.prefetch(led.state, plan)
    in_process = endorser.run_items(plan, values)
    aa_dir = str(write_authority(tmp_path, fleet.system.mpk, fleet.aa.public_key()))
    with ProcessPoolExecutor(1, get_context("spawn"), initializer=worker.init, initargs=(aa_dir,)) as pool:
        portable = pool.submit(worker.endorse_items, plan.items, values, plan.spans).result()
    assert portable == in_process
    assert [r.get("code") for r in in_process.responses] == [None, None, "BAD_SIGNATURE"] * 2


def test_commit_waiters_wake_on_their_block_and_time_out_otherwise() -> None:
    async def scenario() -> list[str]:
        waiters = CommitWaiters()
        waiters.submitted(b"h1", "p1", "p1-item")
        seen = []

        async def wait(pid: str, timeout: float) -> None:
            await waiters.wait(pid, timeout)
            seen.append(pid)

        tasks = [asyncio.create_task(wait(p, 30)) for p in ("p1", "p1-item", "foreign")]
        await asyncio.sleep(0)
        waiters.on_durable((b"other",))  # a block without h1: only the foreign waiter re-checks
        await asyncio.sleep(0)
        waiters.on_durable((b"h1",))
        await asyncio.gather(*tasks)
        await wait("never", 0.01)
        return seen

    assert asyncio.run(scenario()) == ["foreign", "p1", "p1-item", "never"]
