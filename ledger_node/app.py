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
from typing import Protocol, runtime_checkable

from ledger_node.block import Block


class StateView(Protocol):
    """Read access to world state as of the previous block."""

    def get_state(self, key: bytes) -> bytes | None: ...


@runtime_checkable
class BatchStateView(StateView, Protocol):
    """Optional extension: many point reads in one call (the node's store answers with one query)."""

    def get_states(self, keys: list[bytes]) -> dict[bytes, bytes]: ...


def get_states(state: StateView, keys: list[bytes]) -> dict[bytes, bytes]:
    """The present keys among `keys` with their values, batched when the view supports it."""
    if isinstance(state, BatchStateView):
        return state.get_states(keys)
    return {key: value for key in keys if (value := state.get_state(key)) is not None}


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
        keys = [self.PREFIX + txid for txid in block.tx_ids]
        recorded = get_states(state, keys)
        for tx, key in zip(block.txs, keys, strict=True):
            if self._accept is not None and not self._accept(tx):
                results.append(TxResult(False, "rejected"))
            elif key in writes or key in recorded:
                results.append(TxResult(False, "duplicate"))
            else:
                writes[key] = block.height.to_bytes(8, "big")
                results.append(VALID)
        return AppliedBlock(results, writes)
