"""The interface between ordering and the layer above it (contracts, next issue).

Ordering hands committed blocks to an Application strictly in height order. The application
decides, deterministically from the block and the state before it, which transactions are valid
(with a reason for each invalid one) and which state keys change. The host then stores the block,
its per-transaction results and the state writes in one storage transaction (blockstore.py), so a
block and its effects are either both durable or both absent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

from ledger_node.block import Block, tx_id


class StateView(Protocol):
    """Read access to world state as of the previous block."""

    def get_state(self, key: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class TxResult:
    valid: bool
    reason: str = ""


VALID = TxResult(True)


@dataclass
class AppliedBlock:
    results: list[TxResult]
    writes: dict[bytes, bytes] = field(default_factory=dict)


class Application(ABC):
    @abstractmethod
    def apply_block(self, block: Block, state: StateView) -> AppliedBlock:
        """Must be a pure function of (block, state): every honest node must get the same answer."""


class TxLogApp(Application):
    """The in-tree application: records each transaction once; a repeat is invalid ("duplicate").

    `accept` is an optional deterministic well-formedness check (the simulator uses it to reject
    transactions a Byzantine node made up).
    """

    PREFIX = b"tx/"

    def __init__(self, accept=None) -> None:
        self._accept = accept

    def apply_block(self, block: Block, state: StateView) -> AppliedBlock:
        results: list[TxResult] = []
        writes: dict[bytes, bytes] = {}
        for tx in block.txs:
            key = self.PREFIX + tx_id(tx)
            if self._accept is not None and not self._accept(tx):
                results.append(TxResult(False, "rejected"))
            elif key in writes or state.get_state(key) is not None:
                results.append(TxResult(False, "duplicate"))
            else:
                writes[key] = block.height.to_bytes(8, "big")
                results.append(VALID)
        return AppliedBlock(results, writes)
