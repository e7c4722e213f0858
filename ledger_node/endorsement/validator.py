"""Validate and commit (DESIGN.md §2 step 7): the ledger Application behind the contracts.

For each transaction of a block, in order, the first failing rule gives its reason code and the
transaction stays in the block, invalid (Fabric's validation codes):
- MALFORMED_TX: not an endorsed transaction;
- DUPLICATE_TXID: its proposal already committed (`t|<proposal id>`), here or earlier in the block;
- ENDORSEMENT_POLICY_FAILURE: fewer than `quorum` distinct nodes whose signature over this exact
  proposal id and read/write set verifies (a forged endorsement simply does not count);
- MVCC_READ_CONFLICT: a key it read has another version now (written by an earlier block or an
  earlier transaction of this block);
- FUTURE_TIMESTAMP: a reading's ts_ms beyond block time + skew (spec §3.6 L2).
Valid transactions write their write set, each value stamped with (height, index, block time)
as its new version. Every outcome is also written: `t|<pid>` for the one valid transaction of a
proposal, `x|<pid>|<tx hash>` for an invalid attempt, so clients learn the reason by proposal id.
A reading batch (readings.submit_batch) passes DUPLICATE_TXID and the endorsement policy once; then
each of its readings gets the rules above on its own read/write set, and its own `t|<item id>`
(with "item": its position) or `x|<item id>|<tx hash>` (a reading the endorsers refused keeps their
reason code), so one bad reading never sinks the others. Every key a block's validation reads is
fetched in one query before its first transaction.
This is a pure function of (block, state): the nodes' only clock is the block timestamp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator

from ledger_node.app import Application, AppliedBlock, StateView, TxResult, get_states
from ledger_node.bft.signing import Ed25519Signer, Ed25519Verifier, Signer, Verifier
from ledger_node.block import Block
from ledger_node.config import load_private_key
from ledger_node.endorsement.proposal import (
    ProposalError,
    Transaction,
    decode_transaction,
    endorsement_message,
    result_digest,
)
from ledger_node.state import HEADER, Version, canonical, encode_value, key

SLICE_S = 0.004  # validation work between two yields to the node's event loop


def status_key(proposal_id: str) -> str:
    return key("t", proposal_id)


def attempt_key(proposal_id: str, tx_hash: str) -> str:
    return key("x", proposal_id, tx_hash)


class _BlockState:
    """What one block's validation reads: every key its transactions name, fetched in one query before
    the first transaction, plus the versions the block's own valid transactions have written."""

    def __init__(self, state: StateView, keys: list[bytes]) -> None:
        self.state, self.found = state, get_states(state, keys)
        self.asked = set(keys)
        self.versions: dict[str, Version] = {}

    def exists(self, k: str) -> bool:
        return k in self.versions or self._raw(k) is not None

    def version(self, k: str) -> Version | None:
        if k in self.versions:
            return self.versions[k]
        raw = self._raw(k)
        return None if raw is None else HEADER.unpack_from(raw)[:2]

    def _raw(self, k: str) -> bytes | None:
        kb = k.encode()
        return self.found.get(kb) if kb in self.asked else self.state.get_state(kb)


class ContractApp(Application):
    def __init__(self, chain_id: bytes, verifier: Verifier, n: int, quorum: int, skew_ms: int,
                 own: Signer | None = None) -> None:  # fmt: skip
        if not (n - 1) // 3 + 1 <= quorum <= n:
            raise ValueError(f"endorsement quorum must be in f+1..n = {(n - 1) // 3 + 1}..{n}")
        self.chain_id, self.verifier, self.n, self.quorum, self.skew_ms = chain_id, verifier, n, quorum, skew_ms
        self.own = own

    def apply_block(self, block: Block, state: StateView) -> AppliedBlock:
        steps = self.steps(block, state)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    async def apply_block_sliced(self, block: Block, state: StateView, slice_s: float = SLICE_S) -> AppliedBlock:
        """apply_block yielding to the event loop every `slice_s` of work (a block of reading batches
        holds thousands of readings), so the API and transport stay responsive while it validates."""
        steps = self.steps(block, state)
        deadline = time.perf_counter() + slice_s
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            if time.perf_counter() >= deadline:
                await asyncio.sleep(0)
                deadline = time.perf_counter() + slice_s

    def steps(self, block: Block, state: StateView) -> Generator[None, None, AppliedBlock]:
        """The validation of `block`, one transaction a step; returns the AppliedBlock. The state it
        reads is the state before the block (the caller stages nothing in between)."""
        decoded: list[Transaction | ProposalError] = []
        for raw in block.txs:
            try:
                decoded.append(decode_transaction(raw))
            except ProposalError as exc:
                decoded.append(exc)
            yield
        view = _BlockState(state, [k.encode() for tx in decoded if isinstance(tx, Transaction) for k in _keys(tx)])
        out = _Writer(block)
        for index, (tx, tx_hash) in enumerate(zip(decoded, block.tx_ids, strict=True)):
            out.at(index, tx_hash.hex())
            if isinstance(tx, ProposalError):
                out.results.append(TxResult(False, tx.code))
            elif "items" in tx.rwset:
                self._apply_batch(tx, view, out)
            else:
                self._apply_one(tx, view, out)
            yield
        return AppliedBlock(out.results, out.writes)

    def _apply_one(self, tx: Transaction, view: _BlockState, out: _Writer) -> None:
        pid = tx.proposal.id
        reason = self._admit(tx, pid, view) or self._check(tx.rwset, view, out.ts)
        out.result(view, pid, reason, tx.rwset["writes"])

    def _apply_batch(self, tx: Transaction, view: _BlockState, out: _Writer) -> None:
        """One endorsement check for the batch; then each reading is valid or invalid on its own."""
        pid = tx.proposal.id
        items = list(zip(tx.rwset["items"], tx.response["items"], strict=True))
        reason = self._admit(tx, pid, view)
        if reason:
            for _, response in items:
                out.attempt(_item_id(response), reason)
            out.attempt(pid, reason)
            out.results.append(TxResult(False, reason))
            return
        for k, (rwset, response) in enumerate(items):
            item = _item_id(response)
            if rwset is None:  # refused by the endorsers: its reason code is theirs
                out.attempt(item, str(response.get("code", "REFUSED"))[:64], k)
            else:
                reason = self._admit_item(item, view) or self._check(rwset, view, out.ts)
                out.result(view, item, reason, rwset["writes"], k, record=False)
        out.result(view, pid, "", [], extra={"items": len(items)})

    def _admit(self, tx: Transaction, pid: str, view: _BlockState) -> str:
        if view.exists(status_key(pid)):
            return "DUPLICATE_TXID"
        if not self._endorsed(tx, pid):
            return "ENDORSEMENT_POLICY_FAILURE"
        return ""

    @staticmethod
    def _admit_item(item: str, view: _BlockState) -> str:
        return "DUPLICATE_TXID" if view.exists(status_key(item)) else ""

    def _check(self, rwset: dict, view: _BlockState, ts: int) -> str:
        for k, version in rwset["reads"]:
            if view.version(k) != (None if version is None else tuple(version)):
                return "MVCC_READ_CONFLICT"
        claimed = rwset["checks"].get("ts_ms")
        if claimed is not None and (type(claimed) is not int or claimed > ts + self.skew_ms):
            return "FUTURE_TIMESTAMP"
        return ""

    def _endorsed(self, tx: Transaction, pid: str) -> bool:
        message = endorsement_message(self.chain_id, pid, result_digest(tx.rwset, tx.response))
        good = set()
        for node, sig in tx.endorsements:
            if node in good or not 0 <= node < self.n:
                continue
            try:
                sig_bytes = bytes.fromhex(sig)
            except ValueError:
                continue
            if self._genuine(node, message, sig_bytes):
                good.add(node)
        return len(good) >= self.quorum

    def _genuine(self, node: int, message: bytes, sig: bytes) -> bool:
        """Ed25519 signing is deterministic (RFC 8032 §5.1.6), so the node's own endorsement is checked
        by signing again, about 3x cheaper than verifying (the validator's top cost when profiled)."""
        if self.own is not None and node == self.own.node_id:
            return self.own.sign(message) == sig
        return self.verifier.verify(node, message, sig)


class _Writer:
    """The block's state writes and results, each value stamped with (height, tx index, block time)."""

    def __init__(self, block: Block) -> None:
        self.height, self.ts = block.height, block.header.timestamp_ms
        self.results: list[TxResult] = []
        self.writes: dict[bytes, bytes] = {}
        self.index, self.tx_hash = 0, ""

    def at(self, index: int, tx_hash: str) -> None:
        self.index, self.tx_hash = index, tx_hash

    def attempt(self, pid: str, reason: str, item: int | None = None) -> None:
        record = {"height": self.height, "index": self.index, "reason": reason, "tx": self.tx_hash}
        if item is not None:
            record["item"] = item
        self.writes[attempt_key(pid, self.tx_hash).encode()] = encode_value(record, self.height, self.index, self.ts)

    def result(self, view: _BlockState, pid: str, reason: str, writes: list, item: int | None = None,
               record: bool = True, extra: dict | None = None) -> None:  # fmt: skip
        """Valid (reason ""): the writes and `t|<pid>`; invalid: `x|<pid>|<tx>`. `record`: this is a
        block-level transaction, with a TxResult of its own."""
        if reason:
            self.attempt(pid, reason, item)
        else:
            status = {"height": self.height, "index": self.index, "tx": self.tx_hash, **(extra or {})}
            if item is not None:
                status["item"] = item
            header = HEADER.pack(self.height, self.index, self.ts)
            for k, value in [*writes, [status_key(pid), status]]:
                # a batch item's values are canonical JSON text already (proposal.py)
                self.writes[k.encode()] = header + (value.encode() if type(value) is str else canonical(value))
                view.versions[k] = (self.height, self.index)
        if record:
            self.results.append(TxResult(not reason, reason))


def _item_id(response: dict) -> str:
    item = response.get("id")
    return item if isinstance(item, str) and len(item) == 64 else "0" * 64


def _keys(tx: Transaction) -> list[str]:
    """Every key validating `tx` reads: proposal statuses and read sets."""
    keys = [status_key(tx.proposal.id)]
    if "items" not in tx.rwset:
        return keys + [k for k, _ in tx.rwset["reads"]]
    for rwset, response in zip(tx.rwset["items"], tx.response["items"], strict=True):
        keys.append(status_key(_item_id(response)))
        if rwset is not None:
            keys += [k for k, _ in rwset["reads"]]
    return keys


def contract_app(config) -> ContractApp:
    """The Application of a node whose config names an authority (ledger_node.config.NodeConfig)."""
    keys = {p.node_id: p.public_key for p in config.nodes}
    own = Ed25519Signer(config.node_id, load_private_key(config.key_file))
    return ContractApp(config.chain_id.encode(), Ed25519Verifier(keys), config.n, quorum_of(config), config.skew_ms,
                       own)  # fmt: skip


def quorum_of(config) -> int:
    """The endorsement policy: `endorsement_quorum` nodes, f + 1 by default."""
    return config.endorsement_quorum or (config.n - 1) // 3 + 1
