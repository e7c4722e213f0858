"""The outbox store (gateway/store.py) on a real SQLite file: a batch is one transaction, a failed
batch fails exactly its callers and rolls back all of its rows, and the writer keeps serving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.store import Entry, Outcome, Store

pytestmark = pytest.mark.unit


def entry(ctr: int) -> Entry:
    return Entry("d", 1, ctr, ctr, ctr, bytes(32), bytes([ctr]) * 32, b"tx%d" % ctr)


def test_a_failed_batch_rolls_back_whole_and_the_writer_keeps_serving(tmp_path: Path) -> None:
    async def scenario() -> tuple[list, list[int], dict]:
        store = await Store.open(tmp_path / "db.sqlite3", batch=64)
        bad = Entry("d", 1, 3, 3, 3, bytes(32), bytes(32), ["not bytes"])  # sqlite3 cannot bind it
        # queued together, so one writer batch: the good rows must not survive the bad one
        results = await asyncio.gather(store.add(entry(1)), store.add(bad), store.add(entry(2)), return_exceptions=True)
        await store.add(entry(4))  # the next batch is written
        await store.add(Outcome(("d", 1, 4), 7, False, "BAD_SIGNATURE"))
        pending = [e.ctr for e in await store.pending()]
        counts = await store.counts()
        await store.close()
        return results, pending, counts

    results, pending, counts = asyncio.run(scenario())
    assert all(isinstance(r, Exception) for r in results), results
    assert pending == []  # ctr 1 and 2 were rolled back with the bad row; 4 has its outcome
    assert counts == {"invalid": 1, "outbox": 0}


def test_outcome_and_new_readings_in_one_batch_survive_a_reopen(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[int], dict]:
        store = await Store.open(tmp_path / "db.sqlite3")
        await asyncio.gather(*(store.add(entry(c)) for c in range(1, 4)))
        await asyncio.gather(store.add(Outcome(("d", 1, 2), 9, True)), store.add(entry(5)))
        await store.close()
        store = await Store.open(tmp_path / "db.sqlite3")
        pending, counts = [e.ctr for e in await store.pending()], await store.counts()
        await store.close()
        return pending, counts

    pending, counts = asyncio.run(scenario())
    assert pending == [1, 3, 5]
    assert counts == {"pending": 3, "committed": 1, "outbox": 3}
