"""Endorsement requests merged into runs, with the readings' work off the event loop.

Each request is planned on arrival (endorser.Plan: shape, creator signature, the state keys its
readings read), in slices that yield to the loop between them. One runner task then sends the
reading items of *every* request waiting at that moment to the worker process (worker.py; without
one, a thread) as one run, so `batch_verify` (spec §3.7) amortises its pairings over all of them,
whichever client sent them: the busier the node, the larger the run and the cheaper each reading.
A finished run is signed and answered on the loop (again in slices) while the next one executes.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from ledger_node.endorsement import worker
from ledger_node.endorsement.endorser import Endorser, Plan
from ledger_node.endorsement.reading_batch import Outcome
from ledger_node.state import Snapshot

# An idle node starts a run at once (a gather delay is pure latency at light load); under load,
# requests arriving while a run executes wait and share the next one.
GATHER_S = 0.0
MAX_RUN_ITEMS = 8192  # readings per worker run: bounds one run's time and memory
SLICE = 32  # proposals handled between two yields to the loop (a reading batch proposal is ~1 ms to plan)


class EndorseBatcher:
    def __init__(self, endorser: Endorser, snapshot: Snapshot, pool: Executor | None = None,
                 gather_s: float = GATHER_S, max_items: int = MAX_RUN_ITEMS) -> None:  # fmt: skip
        self.endorser, self.snapshot, self.pool = endorser, snapshot, pool
        self.gather_s, self.max_items = gather_s, max_items
        self._pending: list[tuple[Plan, asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0

    async def endorse(self, docs: list) -> list[dict]:
        """The endorsement results of `docs`, in order (Endorsed or Refused as JSON)."""
        plan = Plan()
        for start in range(0, len(docs), SLICE):
            for doc in docs[start : start + SLICE]:
                plan.add(doc)
            await asyncio.sleep(0)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((plan, future))
        self._wake.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_forever())
        return await future

    async def _run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.gather_s)  # requests already on the loop share the run
            while self._pending:
                taken = self._take()
                merged = Plan()
                for plan, _ in taken:
                    merged.extend(plan)
                try:
                    outcome = await self._run_items(merged)
                except Exception as exc:  # a bug must fail these requests (HTTP 500), not hang them
                    _fail(taken, exc)
                    continue
                task = asyncio.create_task(self._answer(taken, merged, outcome))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[Plan, asyncio.Future]]:
        """Waiting requests, oldest first, up to max_items readings (at least one request)."""
        count, n = 0, 0
        for plan, _ in self._pending:
            if n and count + len(plan.items) > self.max_items:
                break
            count, n = count + len(plan.items), n + 1
        taken, self._pending = self._pending[:n], self._pending[n:]
        return taken

    async def _run_items(self, plan: Plan) -> Outcome:
        if not plan.items:
            return Outcome()
        values = self.endorser.prefetch(self.snapshot, plan)  # read now: the items see one snapshot
        if self.pool is None:
            return await asyncio.to_thread(self.endorser.run_items, plan, values)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, worker.endorse_items, plan.items, values, plan.spans)

    async def _answer(self, taken: list[tuple[Plan, asyncio.Future]], plan: Plan, outcome: Outcome) -> None:
        try:
            results = []
            for start in range(0, len(plan.parsed), SLICE):
                stop = min(start + SLICE, len(plan.parsed))
                results += [self.endorser.finish(self.snapshot, plan, outcome, i).to_json() for i in range(start, stop)]
                await asyncio.sleep(0)
        except Exception as exc:
            _fail(taken, exc)
            return
        self.batches += 1
        start = 0
        for request, future in taken:
            if not future.done():  # the client may have gone away
                future.set_result(results[start : start + len(request.parsed)])
            start += len(request.parsed)


def _fail(taken: list[tuple[Plan, asyncio.Future]], exc: Exception) -> None:
    for _, future in taken:
        if not future.done():
            future.set_exception(exc)
