"""Store-and-forward to the ledger: no loss, no duplicates (DESIGN.md §2 steps 4 and 8).

Every reading reaches the outbox (store.py) before the device is told it was relayed. The
submitter takes outbox entries in batches, submits them and waits for their commits; while the
ledger is unreachable it retries with exponential backoff, and an entry whose commit does not
arrive in time is submitted again. Both are idempotent: the same bytes have the same id and the
ledger keeps one record per (id, epoch, ctr) (spec §3.6 L1/L3). On a commit the outcome is
written and the device gets its Ack.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from gateway.ledger_link import Commit, LedgerLink, LedgerUnavailable
from gateway.metrics import Metrics
from gateway.store import Entry, Outcome, Store

log = logging.getLogger("edgeprov.gateway.relay")

OnOutcome = Callable[[Entry, Commit], None]


class Submitter:
    def __init__(
        self,
        link: LedgerLink,
        store: Store,
        metrics: Metrics,
        on_outcome: OnOutcome,
        batch: int = 500,
        commit_timeout_s: float = 20.0,
        retry_max_s: float = 10.0,
    ) -> None:
        self.link, self.store, self.metrics, self.on_outcome = link, store, metrics, on_outcome
        self.batch, self.commit_timeout_s, self.retry_max_s = batch, commit_timeout_s, retry_max_s
        self.queue: asyncio.Queue[Entry] = asyncio.Queue()
        self.inflight: dict[bytes, Entry] = {}
        self.ledger_up = False
        self._waiters: set[asyncio.Task] = set()

    def enqueue(self, entry: Entry) -> None:
        self.queue.put_nowait(entry)

    async def run(self) -> None:
        while True:
            entries = [await self.queue.get()]
            while len(entries) < self.batch and not self.queue.empty():
                entries.append(self.queue.get_nowait())
            await self._submit_until_accepted(entries)
            for entry in entries:
                self.inflight[entry.txid] = entry
                task = asyncio.create_task(self._await_commit(entry))
                self._waiters.add(task)
                task.add_done_callback(self._waiters.discard)

    async def _submit_until_accepted(self, entries: list[Entry]) -> None:
        delay = 0.1
        while True:
            try:
                await self.link.submit([e.tx for e in entries])
                self.ledger_up = True
                self.metrics.submitted.inc(len(entries))
                return
            except LedgerUnavailable as exc:
                self.ledger_up = False
                self.metrics.submit_failures.inc()
                log.warning("ledger unavailable (%s); %d readings wait, retry in %.1f s", exc, len(entries), delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # jitter: many gateways, one ledger
                delay = min(delay * 2, self.retry_max_s)

    async def _await_commit(self, entry: Entry) -> None:
        try:
            commit = await asyncio.wait_for(self.link.committed(entry.txid), self.commit_timeout_s)
        except (LedgerUnavailable, TimeoutError) as exc:
            self.inflight.pop(entry.txid, None)
            log.info("no commit for %s/%d/%d (%s); resubmitting", *entry.key, exc or "timeout")
            self.metrics.resubmitted.inc()
            self.enqueue(entry)
            return
        await self.store.add(Outcome(entry.key, commit.height, commit.valid, commit.reason))
        self.inflight.pop(entry.txid, None)
        (self.metrics.committed if commit.valid else self.metrics.invalid).inc()
        self.on_outcome(entry, commit)

    async def close(self) -> None:
        for task in list(self._waiters):
            task.cancel()
        await asyncio.gather(*self._waiters, return_exceptions=True)
