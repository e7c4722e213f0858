"""Blocks, Merkle roots and commit certificates.

A block is a header (height, round, previous block hash, Merkle root of its transactions, proposer,
timestamp) plus the transactions. Its hash covers the header only; the Merkle root binds the
transactions. A commit certificate is 2f+1 distinct node signatures over the block hash
(signing.ledger_info_message), so anyone holding the node public keys can check a block without
trusting whoever served it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ledger_node.bft.codec import Reader, Writer
from ledger_node.bft.signing import Verifier, ledger_info_message

HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
BLOCK_TAG = b"edgeprov/block/v1"
MAX_TX_BYTES = 64 * 1024
MAX_BLOCK_TXS = 20_000
MAX_SIGNERS = 1024


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tx_id(tx: bytes) -> bytes:
    """Transactions are opaque; their id is the SHA-256 of their bytes."""
    return hashlib.sha256(tx).digest()


def _leaf(tx: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + tx).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(txs: tuple[bytes, ...] | list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle tree hash (leaf/node prefixes stop second-preimage tricks)."""
    level = [_leaf(tx) for tx in txs]
    if not level:
        return sha256(b"")
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_proof(txs: tuple[bytes, ...] | list[bytes], index: int) -> list[tuple[bool, bytes]]:
    """Audit path for txs[index]: (sibling_is_left, sibling_hash) from leaf to root."""
    level = [_leaf(tx) for tx in txs]
    path: list[tuple[bool, bytes]] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append((sibling < index, level[sibling]))
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level, index = paired, index // 2
    return path


def verify_merkle_proof(tx: bytes, path: list[tuple[bool, bytes]], root: bytes) -> bool:
    digest = _leaf(tx)
    for sibling_is_left, sibling in path:
        digest = _node(sibling, digest) if sibling_is_left else _node(digest, sibling)
    return digest == root


@dataclass(frozen=True, slots=True)
class BlockHeader:
    height: int
    round: int
    prev_hash: bytes
    merkle_root: bytes
    proposer: int
    timestamp_ms: int

    def encode(self, w: Writer) -> None:
        w.u64(self.height).u64(self.round).fixed(self.prev_hash).fixed(self.merkle_root)
        w.u16(self.proposer).u64(self.timestamp_ms)

    @staticmethod
    def decode(r: Reader) -> BlockHeader:
        return BlockHeader(r.u64(), r.u64(), r.fixed(HASH_SIZE), r.fixed(HASH_SIZE), r.u16(), r.u64())


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[bytes, ...]
    hash: bytes = field(init=False, compare=False)
    _tx_ids: tuple[bytes, ...] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        w = Writer().fixed(BLOCK_TAG)
        self.header.encode(w)
        object.__setattr__(self, "hash", sha256(w.raw()))
        object.__setattr__(self, "_tx_ids", None)

    @property
    def tx_ids(self) -> tuple[bytes, ...]:
        """tx_id of every transaction, hashed once per block (replica, store and acks all need them)."""
        if self._tx_ids is None:
            object.__setattr__(self, "_tx_ids", tuple(map(tx_id, self.txs)))
        return self._tx_ids

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def round(self) -> int:
        return self.header.round

    @property
    def prev_hash(self) -> bytes:
        return self.header.prev_hash

    def txs_match_root(self) -> bool:
        return merkle_root(self.txs) == self.header.merkle_root

    def encode(self, w: Writer) -> None:
        self.header.encode(w)
        w.blobs(self.txs)

    @staticmethod
    def decode(r: Reader) -> Block:
        header = BlockHeader.decode(r)
        return Block(header, r.blobs(MAX_BLOCK_TXS, MAX_TX_BYTES))

    @staticmethod
    def build(height: int, round_: int, prev_hash: bytes, proposer: int, timestamp_ms: int, txs: tuple[bytes, ...]):
        return Block(BlockHeader(height, round_, prev_hash, merkle_root(txs), proposer, timestamp_ms), txs)


GENESIS = Block.build(0, 0, ZERO_HASH, 0, 0, ())


def encode_signatures(w: Writer, sigs: tuple[tuple[int, bytes], ...]) -> None:
    w.u32(len(sigs))
    for node, sig in sigs:
        w.u16(node).blob(sig)


def decode_signatures(r: Reader) -> tuple[tuple[int, bytes], ...]:
    return tuple((r.u16(), r.blob(128)) for _ in range(r.count(MAX_SIGNERS)))


def valid_quorum(sigs: tuple[tuple[int, bytes], ...], message: bytes, verifier: Verifier, n: int, quorum: int) -> bool:
    """At least `quorum` distinct known signers, every signature valid."""
    signers = {node for node, _ in sigs}
    if len(signers) != len(sigs) or len(signers) < quorum or any(not 0 <= s < n for s in signers):
        return False
    return all(verifier.verify(node, message, sig) for node, sig in sigs)


@dataclass(frozen=True, slots=True)
class CommitCert:
    """2f+1 signatures over ledger_info_message(block_hash, aux).

    aux is the vote-info hash when the certificate is the QC that committed the block by the 2-chain
    rule (DiemBFT v4 LedgerInfoWithSignatures), or zeros when it is made of commit attestations
    (SPEC.md §4, for blocks committed as ancestors after a view change).
    """

    block_hash: bytes
    aux: bytes
    sigs: tuple[tuple[int, bytes], ...]

    def verify(self, chain_id: bytes, verifier: Verifier, n: int, quorum: int) -> bool:
        message = ledger_info_message(chain_id, self.block_hash, self.aux)
        return valid_quorum(self.sigs, message, verifier, n, quorum)

    def encode(self, w: Writer) -> None:
        w.fixed(self.block_hash).fixed(self.aux)
        encode_signatures(w, self.sigs)

    @staticmethod
    def decode(r: Reader) -> CommitCert:
        return CommitCert(r.fixed(HASH_SIZE), r.fixed(HASH_SIZE), decode_signatures(r))

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.raw()

    @staticmethod
    def from_bytes(data: bytes) -> CommitCert:
        r = Reader(data)
        cert = CommitCert.decode(r)
        r.end()
        return cert


def block_to_bytes(block: Block) -> bytes:
    w = Writer()
    block.encode(w)
    return w.raw()


def block_from_bytes(data: bytes) -> Block:
    r = Reader(data)
    block = Block.decode(r)
    r.end()
    return block


def verify_block(block: Block, cert: CommitCert, chain_id: bytes, verifier: Verifier, n: int, quorum: int) -> bool:
    """Check a block offline: transactions match the root and 2f+1 nodes certified its hash."""
    return cert.block_hash == block.hash and block.txs_match_root() and cert.verify(chain_id, verifier, n, quorum)
