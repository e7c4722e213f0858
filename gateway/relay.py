"""Store-and-forward to the ledger: no loss, no duplicates (DESIGN.md §2 steps 4 and 8).

Every reading reaches the outbox (store.py) before the device is told it was relayed. The
submitter forms batches from the outbox queue (whatever is ready after a short linger, or a full
batch) and keeps up to `inflight` of them in the ledger's pipeline at once: batches are endorsed
and submitted one after the other, in outbox order, while the earlier ones are being ordered and
committed. Each batch's outcomes are learned with batched waits (ledger_link.py), written to the
store, and the devices get their Acks as each batch's outcomes arrive.

The batch size adapts to the ledger (AIMD): a batch whose endorsement and submission took longer
than `target_s` lowers the cap in proportion, a full batch that went faster raises it by a quarter.
Without that, a backlog (after an outage or an overload) becomes batches so large that the nodes
cannot endorse them within the HTTP timeout, and every retry times out again while the nodes keep
doing the abandoned work: nothing commits any more. A slow failed attempt is retried with half the
batch; the other half goes first into the next one, so outbox order holds.

While the ledger is unreachable (a fast failure) the next batch is retried with exponential
backoff while the queue behind it grows, and readings that do not commit in time are submitted again. Both are
idempotent: the same bytes have the same id and the ledger keeps one record per (id, epoch, ctr)
(spec §3.6 L1/L3).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable

from gateway.ledger_link import Commit, LedgerLink, LedgerUnavailable
from gateway.metrics import Metrics
from gateway.store import Entry, Outcome, Store

log = logging.getLogger("edgeprov.gateway.relay")

OnOutcome = Callable[[Entry, Commit], None]
MIN_BATCH = 32  # the adapted cap's floor while the ledger answers (a timeout still halves below it)


class Submitter:
    def __init__(
        self,
        link: LedgerLink,
        store: Store,
        metrics: Metrics,
        on_outcome: OnOutcome,
        batch: int = 256,
        commit_timeout_s: float = 20.0,
        retry_max_s: float = 10.0,
        inflight: int = 4,
        linger_s: float = 0.002,
        target_s: float = 1.0,
    ) -> None:
        self.link, self.store, self.metrics, self.on_outcome = link, store, metrics, on_outcome
        self.batch, self.commit_timeout_s, self.retry_max_s = batch, commit_timeout_s, retry_max_s
        self.linger_s, self.target_s = linger_s, target_s
        self.limit = batch  # the adapted batch cap (_adapt), at most `batch`
        self._carry: deque[Entry] = deque()  # taken from the queue but not submitted yet: they go first
        self.queue: asyncio.Queue[Entry] = asyncio.Queue()
        self.ledger_up = False
        self._slots = asyncio.Semaphore(inflight)
        self._flights: set[asyncio.Task] = set()

    def enqueue(self, entry: Entry) -> None:
        self.queue.put_nowait(entry)

    async def run(self) -> None:
        """Form a batch, submit it (one at a time: readings reach the ledger in outbox order, and while
        the ledger is down a single batch probes it), then follow its outcomes in a task of its own."""
        while True:
            first = self._carry.popleft() if self._carry else await self.queue.get()
            await self._slots.acquire()  # while every slot is busy the queue grows: the next batch is bigger
            try:
                entries = await self._gather(first)
                started = time.perf_counter()
                entries, found = await self._submit_until_accepted(entries)
            except BaseException:
                self._slots.release()
                raise
            submitted = time.perf_counter()
            self.metrics.batch_readings.observe(len(entries))
            self.metrics.submit_seconds.observe(submitted - started)
            task = asyncio.create_task(self._follow(entries, found, submitted))
            self._flights.add(task)
            task.add_done_callback(self._flights.discard)

    async def _gather(self, first: Entry) -> list[Entry]:
        """`first`, the carried-over entries and whatever else is queued, up to the batch cap; waits at
        most linger_s for more to arrive, and only while earlier batches are in the pipeline (with
        none, waiting would only add latency)."""
        entries = [first]
        while self._carry and len(entries) < self.limit:
            entries.append(self._carry.popleft())
        linger = self.linger_s if self._flights else 0.0
        deadline = asyncio.get_running_loop().time() + linger
        while len(entries) < self.limit:
            if not self.queue.empty():
                entries.append(self.queue.get_nowait())
                continue
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                entries.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return entries

    async def _follow(self, entries: list[Entry], found: list[Commit | None], submitted: float) -> None:
        """Settle a submitted batch as its outcomes arrive (batched waits); holds one pipeline slot. What
        has no outcome by the commit deadline goes back to the queue to be submitted again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.commit_timeout_s
        try:
            pending = await self._settle(entries, found)
            while pending and (left := deadline - loop.time()) > 0:
                try:
                    found = await self.link.outcomes([e.txid for e in pending], left)
                except LedgerUnavailable as exc:
                    log.warning("lost the wait for %d readings (%s)", len(pending), exc)
                    break
                pending = await self._settle(pending, found)
            if not pending:
                self.metrics.outcome_seconds.observe(time.perf_counter() - submitted)
            else:
                log.info("no outcome for %d readings; resubmitting", len(pending))
                self.metrics.resubmitted.inc(len(pending))
                for entry in pending:
                    self.enqueue(entry)
        except Exception:  # e.g. the store failed: the readings stay in the outbox for the next start
            log.exception("batch of %d readings abandoned until the outbox is replayed", len(entries))
        finally:
            self._slots.release()

    async def _submit_until_accepted(self, entries: list[Entry]) -> tuple[list[Entry], list[Commit | None]]:
        """The entries submitted (a prefix of `entries` after slow failures; the rest is carried) and
        what the ledger said about each."""
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                found = await self.link.submit([e.tx for e in entries])
            except LedgerUnavailable as exc:
                self.ledger_up = False
                self.metrics.submit_failures.inc()
                if time.perf_counter() - started > self.target_s and len(entries) > 1:
                    entries = self._halve(entries)  # slow, not down: too much to endorse in time
                log.warning("ledger unavailable (%s); %d readings wait, retry in %.1f s", exc, len(entries), delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # jitter: many gateways, one ledger
                delay = min(delay * 2, self.retry_max_s)
                continue
            self._adapt(len(entries), time.perf_counter() - started)
            self.ledger_up = True
            self.metrics.submitted.inc(len(entries))
            return entries, found

    def _halve(self, entries: list[Entry]) -> list[Entry]:
        keep = len(entries) // 2
        self._carry.extendleft(reversed(entries[keep:]))
        self.limit = keep
        self.metrics.batch_limit.set(self.limit)
        return entries[:keep]

    def _adapt(self, size: int, took_s: float) -> None:
        """AIMD on the batch cap: down in proportion when a batch took longer than target_s, up by a
        quarter when a full one went faster."""
        if took_s > self.target_s:  # not below MIN_BATCH: a batch also has fixed costs that do not shrink
            self.limit = max(min(self.batch, MIN_BATCH), min(self.limit, int(size * self.target_s / took_s)))
        elif size >= self.limit:
            self.limit = min(self.batch, self.limit + max(1, self.limit // 4))
        self.metrics.batch_limit.set(self.limit)

    async def _settle(self, entries: list[Entry], found: list[Commit | None]) -> list[Entry]:
        """Store the decided outcomes (one store batch), then Ack them; the undecided entries."""
        decided = [(e, c) for e, c in zip(entries, found, strict=True) if c is not None]
        if decided:
            await asyncio.gather(*(self.store.add(Outcome(e.key, c.height, c.valid, c.reason)) for e, c in decided))
            for entry, commit in decided:
                (self.metrics.committed if commit.valid else self.metrics.invalid).inc()
                self.on_outcome(entry, commit)
        return [e for e, c in zip(entries, found, strict=True) if c is None]

    async def close(self) -> None:
        for task in list(self._flights):
            task.cancel()
        await asyncio.gather(*self._flights, return_exceptions=True)
