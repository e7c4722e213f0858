"""Consensus messages and certificates, and their one wire encoding.

Names follow the DiemBFT v4 report's pseudocode (VoteInfo, QC, TC, ProposalMsg, VoteMsg,
TimeoutMsg); Attest, sync and block-fetch messages are this implementation's (SPEC.md §4-§5).
A frame is one message: a type byte, then its fields (codec.py). decode() raises DecodeError on
anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger_node.bft.codec import DecodeError, Reader, Writer
from ledger_node.block import (
    HASH_SIZE,
    MAX_BLOCK_TXS,
    MAX_TX_BYTES,
    Block,
    CommitCert,
    decode_signatures,
    encode_signatures,
    sha256,
)

MAX_SYNC_BLOCKS = 64
MAX_TC_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class VoteInfo:
    block_hash: bytes
    round: int
    height: int
    parent_hash: bytes
    parent_round: int
    digest: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        w = Writer().fixed(self.block_hash).u64(self.round).u64(self.height)
        w.fixed(self.parent_hash).u64(self.parent_round)
        object.__setattr__(self, "digest", sha256(w.raw()))

    def encode(self, w: Writer) -> None:
        w.fixed(self.block_hash).u64(self.round).u64(self.height).fixed(self.parent_hash).u64(self.parent_round)

    @staticmethod
    def decode(r: Reader) -> VoteInfo:
        return VoteInfo(r.fixed(HASH_SIZE), r.u64(), r.u64(), r.fixed(HASH_SIZE), r.u64())


@dataclass(frozen=True, slots=True)
class QuorumCert:
    """2f+1 votes on one block. commit_hash is the parent when the 2-chain rule commits it, else zeros."""

    vote_info: VoteInfo
    commit_hash: bytes
    sigs: tuple[tuple[int, bytes], ...]

    @property
    def round(self) -> int:
        return self.vote_info.round

    @property
    def block_hash(self) -> bytes:
        return self.vote_info.block_hash

    def encode(self, w: Writer) -> None:
        self.vote_info.encode(w)
        w.fixed(self.commit_hash)
        encode_signatures(w, self.sigs)

    @staticmethod
    def decode(r: Reader) -> QuorumCert:
        return QuorumCert(VoteInfo.decode(r), r.fixed(HASH_SIZE), decode_signatures(r))

    def commit_cert(self) -> CommitCert:
        """The same signatures, read as the commit certificate of the parent block."""
        return CommitCert(self.commit_hash, self.vote_info.digest, self.sigs)


@dataclass(frozen=True, slots=True)
class TimeoutCert:
    """2f+1 timeouts for one round, each with the signer's high-QC round (DiemBFT v4 TC)."""

    round: int
    entries: tuple[tuple[int, int, bytes], ...]

    @property
    def max_high_qc_round(self) -> int:
        return max(qc_round for _, qc_round, _ in self.entries)

    def encode(self, w: Writer) -> None:
        w.u64(self.round).u32(len(self.entries))
        for node, qc_round, sig in self.entries:
            w.u16(node).u64(qc_round).blob(sig)

    @staticmethod
    def decode(r: Reader) -> TimeoutCert:
        round_ = r.u64()
        entries = tuple((r.u16(), r.u64(), r.blob(128)) for _ in range(r.count(MAX_TC_ENTRIES)))
        if not entries:
            raise DecodeError("empty TC")
        return TimeoutCert(round_, entries)


@dataclass(frozen=True, slots=True)
class Proposal:
    block: Block
    qc: QuorumCert
    last_tc: TimeoutCert | None
    high_commit_qc: QuorumCert | None


@dataclass(frozen=True, slots=True)
class Vote:
    vote_info: VoteInfo
    commit_hash: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class Timeout:
    round: int
    high_qc: QuorumCert
    sig: bytes
    last_tc: TimeoutCert | None
    high_commit_qc: QuorumCert | None


@dataclass(frozen=True, slots=True)
class SyncInfo:
    """Certificates that move a lagging node to the current round (DiemBFT's SyncInfo)."""

    high_qc: QuorumCert
    high_commit_qc: QuorumCert | None
    last_tc: TimeoutCert | None


@dataclass(frozen=True, slots=True)
class Attest:
    """A node's signature that it committed `block_hash` at `height` (SPEC.md §4)."""

    height: int
    block_hash: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class TxBatch:
    txs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SyncRequest:
    from_height: int


@dataclass(frozen=True, slots=True)
class SyncResponse:
    blocks: tuple[tuple[Block, CommitCert], ...]


@dataclass(frozen=True, slots=True)
class BlockRequest:
    block_hash: bytes
    count: int


@dataclass(frozen=True, slots=True)
class BlockResponse:
    blocks: tuple[Block, ...]


Message = (
    Proposal | Vote | Timeout | SyncInfo | Attest | TxBatch | SyncRequest | SyncResponse | BlockRequest | BlockResponse
)


def _opt_qc(w: Writer, qc: QuorumCert | None) -> None:
    w.u8(qc is not None)
    if qc is not None:
        qc.encode(w)


def _opt_tc(w: Writer, tc: TimeoutCert | None) -> None:
    w.u8(tc is not None)
    if tc is not None:
        tc.encode(w)


def _read_opt_qc(r: Reader) -> QuorumCert | None:
    return QuorumCert.decode(r) if r.flag() else None


def _read_opt_tc(r: Reader) -> TimeoutCert | None:
    return TimeoutCert.decode(r) if r.flag() else None


def _enc_proposal(w: Writer, m: Proposal) -> None:
    m.block.encode(w)
    m.qc.encode(w)
    _opt_tc(w, m.last_tc)
    _opt_qc(w, m.high_commit_qc)


def _enc_vote(w: Writer, m: Vote) -> None:
    m.vote_info.encode(w)
    w.fixed(m.commit_hash).blob(m.sig)


def _enc_timeout(w: Writer, m: Timeout) -> None:
    w.u64(m.round)
    m.high_qc.encode(w)
    w.blob(m.sig)
    _opt_tc(w, m.last_tc)
    _opt_qc(w, m.high_commit_qc)


def _enc_sync_info(w: Writer, m: SyncInfo) -> None:
    m.high_qc.encode(w)
    _opt_qc(w, m.high_commit_qc)
    _opt_tc(w, m.last_tc)


def _enc_sync_response(w: Writer, m: SyncResponse) -> None:
    w.u32(len(m.blocks))
    for block, cert in m.blocks:
        block.encode(w)
        cert.encode(w)


def _enc_block_response(w: Writer, m: BlockResponse) -> None:
    w.u32(len(m.blocks))
    for block in m.blocks:
        block.encode(w)


_ENCODERS = {
    Proposal: (1, _enc_proposal),
    Vote: (2, _enc_vote),
    Timeout: (3, _enc_timeout),
    Attest: (4, lambda w, m: w.u64(m.height).fixed(m.block_hash).blob(m.sig)),
    TxBatch: (5, lambda w, m: w.blobs(m.txs)),
    SyncRequest: (6, lambda w, m: w.u64(m.from_height)),
    SyncResponse: (7, _enc_sync_response),
    BlockRequest: (8, lambda w, m: w.fixed(m.block_hash).u16(m.count)),
    BlockResponse: (9, _enc_block_response),
    SyncInfo: (10, _enc_sync_info),
}

_DECODERS = {
    1: lambda r: Proposal(Block.decode(r), QuorumCert.decode(r), _read_opt_tc(r), _read_opt_qc(r)),
    2: lambda r: Vote(VoteInfo.decode(r), r.fixed(HASH_SIZE), r.blob(128)),
    3: lambda r: Timeout(r.u64(), QuorumCert.decode(r), r.blob(128), _read_opt_tc(r), _read_opt_qc(r)),
    4: lambda r: Attest(r.u64(), r.fixed(HASH_SIZE), r.blob(128)),
    5: lambda r: TxBatch(r.blobs(MAX_BLOCK_TXS, MAX_TX_BYTES)),
    6: lambda r: SyncRequest(r.u64()),
    7: lambda r: SyncResponse(tuple((Block.decode(r), CommitCert.decode(r)) for _ in range(r.count(MAX_SYNC_BLOCKS)))),
    8: lambda r: BlockRequest(r.fixed(HASH_SIZE), r.u16()),
    9: lambda r: BlockResponse(tuple(Block.decode(r) for _ in range(r.count(MAX_SYNC_BLOCKS)))),
    10: lambda r: SyncInfo(QuorumCert.decode(r), _read_opt_qc(r), _read_opt_tc(r)),
}


def encode_tag(kind: type) -> bytes:
    """The first byte of every encoded message of this type."""
    return bytes([_ENCODERS[kind][0]])


def is_tx_batch(payload: bytes) -> bool:
    """Whether an encoded message is transaction gossip (hosts may queue it behind consensus traffic)."""
    return payload[:1] == encode_tag(TxBatch)


def encode(message: Message) -> bytes:
    tag, encoder = _ENCODERS[type(message)]
    w = Writer().u8(tag)
    encoder(w, message)
    return w.raw()


def decode(data: bytes) -> Message:
    r = Reader(data)
    decoder = _DECODERS.get(r.u8())
    if decoder is None:
        raise DecodeError("unknown message type")
    message = decoder(r)
    r.end()
    return message
