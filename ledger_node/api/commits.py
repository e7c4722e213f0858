"""Waiting for commits without polling: one future per waited proposal, resolved by the commit path.

The node calls `on_durable` with each block's transaction ids once the block is on disk. A proposal
submitted through this node is recognised by its transaction hash (remembered at submit, with the
ids of a reading batch's items: one transaction answers them all); a waiter
for a proposal submitted elsewhere is woken by every durable block and re-reads its status, which
costs one point read per block and waiter, and only for those.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

REMEMBER = 50_000  # submitted hashes kept; older ones fall back to the wake-on-every-block path


class CommitWaiters:
    def __init__(self, remember: int = REMEMBER) -> None:
        self._by_hash: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()
        self._known: dict[str, int] = {}  # proposal id -> how many remembered hashes name it
        self._waiting: dict[str, list[asyncio.Future]] = {}
        self._remember = remember

    def submitted(self, tx_hash: bytes, *proposal_ids: str) -> None:
        if tx_hash in self._by_hash:
            return
        self._by_hash[tx_hash] = proposal_ids
        for proposal_id in proposal_ids:
            self._known[proposal_id] = self._known.get(proposal_id, 0) + 1
        while len(self._by_hash) > self._remember:
            self._forget(self._by_hash.popitem(last=False)[1])

    def _forget(self, proposal_ids: tuple[str, ...]) -> None:
        for proposal_id in proposal_ids:
            left = self._known.pop(proposal_id) - 1
            if left:
                self._known[proposal_id] = left

    def __contains__(self, proposal_id: str) -> bool:
        """Submitted through this node and its block not durable yet: its answer is still to come."""
        return proposal_id in self._known

    async def wait(self, proposal_id: str, timeout_s: float) -> None:
        """Return when a block that may hold the proposal is durable, or after timeout_s."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(proposal_id, []).append(future)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiting.get(proposal_id)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiting[proposal_id]

    def on_durable(self, tx_ids: tuple[bytes, ...]) -> None:
        for tx_hash in tx_ids:
            proposal_ids = self._by_hash.pop(tx_hash, None)
            if proposal_ids is not None:
                self._forget(proposal_ids)
                for proposal_id in proposal_ids:
                    self._wake(proposal_id)
        for proposal_id in [p for p in self._waiting if p not in self._known]:
            self._wake(proposal_id)

    def _wake(self, proposal_id: str) -> None:
        for future in self._waiting.pop(proposal_id, ()):
            if not future.done():
                future.set_result(None)
