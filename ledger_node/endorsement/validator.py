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
This is a pure function of (block, state): the nodes' only clock is the block timestamp.
"""

from __future__ import annotations

import hashlib

from ledger_node.app import VALID, Application, AppliedBlock, StateView, TxResult
from ledger_node.bft.signing import Ed25519Verifier, Verifier
from ledger_node.block import Block
from ledger_node.endorsement.proposal import (
    ProposalError,
    Transaction,
    decode_transaction,
    endorsement_message,
    result_digest,
)
from ledger_node.state import HEADER, Version, encode_value, key


def status_key(proposal_id: str) -> str:
    return key("t", proposal_id)


def attempt_key(proposal_id: str, tx_hash: str) -> str:
    return key("x", proposal_id, tx_hash)


class ContractApp(Application):
    def __init__(self, chain_id: bytes, verifier: Verifier, n: int, quorum: int, skew_ms: int) -> None:
        if not (n - 1) // 3 + 1 <= quorum <= n:
            raise ValueError(f"endorsement quorum must be in f+1..n = {(n - 1) // 3 + 1}..{n}")
        self.chain_id, self.verifier, self.n, self.quorum, self.skew_ms = chain_id, verifier, n, quorum, skew_ms

    def apply_block(self, block: Block, state: StateView) -> AppliedBlock:
        results: list[TxResult] = []
        writes: dict[bytes, bytes] = {}
        versions: dict[str, Version] = {}
        height, ts = block.height, block.header.timestamp_ms
        for index, raw in enumerate(block.txs):
            tx_hash = hashlib.sha256(raw).hexdigest()
            try:
                tx = decode_transaction(raw)
                pid = tx.proposal.id
            except (ProposalError, ValueError, TypeError) as exc:
                results.append(TxResult(False, getattr(exc, "code", "MALFORMED_TX")))
                continue
            reason = self._check(tx, pid, state, versions, ts)
            if reason:
                record = {"height": height, "index": index, "reason": reason, "tx": tx_hash}
                writes[attempt_key(pid, tx_hash).encode()] = encode_value(record, height, index, ts)
                results.append(TxResult(False, reason))
                continue
            for k, value in [*tx.rwset["writes"], [status_key(pid), {"height": height, "index": index, "tx": tx_hash}]]:
                writes[k.encode()] = encode_value(value, height, index, ts)
                versions[k] = (height, index)
            results.append(VALID)
        return AppliedBlock(results, writes)

    def _check(self, tx: Transaction, pid: str, state: StateView, versions: dict[str, Version], ts: int) -> str:
        if status_key(pid) in versions or state.get_state(status_key(pid).encode()) is not None:
            return "DUPLICATE_TXID"
        if not self._endorsed(tx, pid):
            return "ENDORSEMENT_POLICY_FAILURE"
        for k, version in tx.rwset["reads"]:
            current = versions.get(k) or _stored_version(state, k)
            if current != (None if version is None else tuple(version)):
                return "MVCC_READ_CONFLICT"
        claimed = tx.rwset["checks"].get("ts_ms")
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
            if self.verifier.verify(node, message, sig_bytes):
                good.add(node)
        return len(good) >= self.quorum


def _stored_version(state: StateView, k: str) -> Version | None:
    raw = state.get_state(k.encode())
    if raw is None:
        return None
    height, index, _ = HEADER.unpack_from(raw)
    return height, index


def contract_app(config) -> ContractApp:
    """The Application of a node whose config names an authority (ledger_node.config.NodeConfig)."""
    keys = {p.node_id: p.public_key for p in config.nodes}
    return ContractApp(config.chain_id.encode(), Ed25519Verifier(keys), config.n, quorum_of(config), config.skew_ms)


def quorum_of(config) -> int:
    """The endorsement policy: `endorsement_quorum` nodes, f + 1 by default."""
    return config.endorsement_quorum or (config.n - 1) // 3 + 1
