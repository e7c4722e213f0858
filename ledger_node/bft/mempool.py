"""Pending transactions waiting to be proposed (DiemBFT v4 'MemPool' module, FIFO).

Bounded, so a flood from a client or a faulty peer costs a counted drop, not memory. Transactions
leave only when a block holding them commits; a proposer skips those already in the uncommitted
blocks it extends, so pipelined blocks do not repeat each other.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from ledger_node.block import tx_id


class Mempool:
    def __init__(self, limit: int, remember_committed: int) -> None:
        self._limit = limit
        self._txs: OrderedDict[bytes, bytes] = OrderedDict()
        # Late gossip of an already committed transaction must not bring it back.
        self._committed: set[bytes] = set()
        self._committed_order: deque[bytes] = deque()
        self._remember = remember_committed

    def __len__(self) -> int:
        return len(self._txs)

    def add(self, tx: bytes) -> str | None:
        """Adds a transaction; returns a drop reason when it is not kept."""
        key = tx_id(tx)
        if key in self._txs or key in self._committed:
            return "tx_duplicate"
        if len(self._txs) >= self._limit:
            return "mempool_full"
        self._txs[key] = tx
        return None

    def take(self, limit: int, max_bytes: int, exclude: set[bytes]) -> tuple[bytes, ...]:
        out: list[bytes] = []
        size = 0
        for key, tx in self._txs.items():
            if key in exclude:
                continue
            if len(out) >= limit or size + len(tx) > max_bytes:
                break
            out.append(tx)
            size += len(tx)
        return tuple(out)

    def remove_committed(self, keys: tuple[bytes, ...] | list[bytes]) -> None:
        for key in keys:
            self._txs.pop(key, None)
            if key not in self._committed:
                self._committed.add(key)
                self._committed_order.append(key)
        while len(self._committed_order) > self._remember:
            self._committed.discard(self._committed_order.popleft())
