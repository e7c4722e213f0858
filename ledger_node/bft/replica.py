"""The BFT replica as a pure state machine: 2-chain HotStuff (Jolteon / DiemBFT v4), see SPEC.md.

Inputs are messages, client transactions and timer events, each with the current time `now` (used
only to stamp and sanity-check block timestamps). Outputs are effects for the host: messages to
send, timers to set, safety state to persist *before* the messages that follow it, and blocks to
deliver in height order with their commit certificates. No sockets, clocks or randomness here, so
the simulator and the real node run the very same code.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger_node.bft import messages as m
from ledger_node.bft.codec import DecodeError, Reader, Writer
from ledger_node.bft.mempool import Mempool
from ledger_node.bft.signing import Signer, Verifier, ledger_info_message, timeout_message
from ledger_node.block import GENESIS, ZERO_HASH, Block, CommitCert, valid_quorum

ROUND_TIMER = "round"
TICK_TIMER = "tick"
FLUSH_TIMER = "flush"


class SafetyViolation(RuntimeError):
    """Certificates that can only exist with more than f faulty nodes: never swallowed."""


@dataclass(frozen=True)
class ReplicaConfig:
    node_id: int
    n: int
    chain_id: bytes = b"edgeprov"
    batch_size: int = 1000
    max_block_bytes: int = 4 * 1024 * 1024
    max_tx_bytes: int = 64 * 1024
    round_timeout: float = 1.0
    max_round_timeout: float = 10.0
    tick_interval: float = 0.2
    gossip_delay: float = 0.005
    checkpoint_interval: int = 100
    mempool_limit: int = 200_000
    timestamp_skew_ms: int = 30_000
    sync_batch: int = 32

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        return (self.n + self.f) // 2 + 1


@dataclass(frozen=True)
class SafetyState:
    """What a replica must remember across a crash never to sign two conflicting things (§3.2)."""

    highest_vote_round: int
    highest_qc_round: int
    high_qc: m.QuorumCert
    highest_tc: m.TimeoutCert | None

    def to_bytes(self) -> bytes:
        w = Writer().u64(self.highest_vote_round).u64(self.highest_qc_round)
        self.high_qc.encode(w)
        w.u8(self.highest_tc is not None)
        if self.highest_tc is not None:
            self.highest_tc.encode(w)
        return w.raw()

    @staticmethod
    def from_bytes(data: bytes) -> SafetyState:
        r = Reader(data)
        vote_round, qc_round, high_qc = r.u64(), r.u64(), m.QuorumCert.decode(r)
        state = SafetyState(vote_round, qc_round, high_qc, m.TimeoutCert.decode(r) if r.flag() else None)
        r.end()
        return state


@dataclass(frozen=True)
class Restored:
    """A replica's durable state after a restart: safety state plus the delivered chain's tail."""

    safety: SafetyState | None = None
    recent: tuple[tuple[Block, CommitCert], ...] = ()
    voted: tuple[Block, ...] = ()


@dataclass(frozen=True, slots=True)
class Send:
    to: int | None  # None: every other node
    message: m.Message


@dataclass(frozen=True, slots=True)
class SetTimer:
    kind: str
    token: int
    delay: float


@dataclass(frozen=True, slots=True)
class PersistSafety:
    """Durable before the next Send: the safety state and, with a vote, the block voted for.

    Keeping voted blocks means every certified block survives on f+1 honest disks, so a cluster
    that crashes and restarts can still extend its highest QC (DiemBFT v4 persists its block tree).
    """

    state: SafetyState
    voted: Block | None = None


@dataclass(frozen=True, slots=True)
class Deliver:
    block: Block
    cert: CommitCert


@dataclass(frozen=True, slots=True)
class ServeSync:
    """Ask the host to answer a SyncRequest from storage (blocks older than the in-memory tail)."""

    peer: int
    from_height: int
    limit: int


Effect = Send | SetTimer | PersistSafety | Deliver | ServeSync

GENESIS_QC = m.QuorumCert(m.VoteInfo(GENESIS.hash, 0, 0, ZERO_HASH, 0), ZERO_HASH, ())


@dataclass
class _VoteSet:
    vote_info: m.VoteInfo
    commit_hash: bytes
    sigs: dict[int, bytes] = field(default_factory=dict)


class Replica:
    def __init__(self, config: ReplicaConfig, signer: Signer, verifier: Verifier, restored: Restored) -> None:
        self.cfg = config
        self.me = config.node_id
        self._signer = signer
        self._verifier = verifier
        self.drops: Counter[str] = Counter()
        # Lets a test harness see every valid QC (the simulator checks one block per round).
        self.observe_qc: Callable[[m.QuorumCert], None] | None = None
        self.mempool = Mempool(config.mempool_limit, remember_committed=config.mempool_limit)
        self._out: list[Effect] = []
        self._local: deque[m.Message] = deque()
        self._now = 0.0
        safety = restored.safety or SafetyState(0, 0, GENESIS_QC, None)
        # Safety module state (DiemBFT v4 "Safety"), persisted before every vote and timeout.
        self.highest_vote_round = safety.highest_vote_round
        self.highest_qc_round = safety.highest_qc_round
        self.high_qc = safety.high_qc
        self.highest_tc = safety.highest_tc
        self.high_commit_qc: m.QuorumCert | None = None
        # Pacemaker: a restarted replica resumes in the round its certificates justify.
        self.round = max(self.high_qc.round, self.highest_tc.round if self.highest_tc else 0) + 1
        self._timeouts_in_row = 0
        self._my_timeout: m.Timeout | None = None
        self._proposed_round = 0
        # Block tree: uncommitted blocks by hash; committed chain tail by height.
        self.pending: dict[bytes, Block] = {}
        self.chain: dict[int, Block] = {0: GENESIS}
        self._chain_heights: dict[bytes, int] = {GENESIS.hash: 0}
        self.certs: dict[int, CommitCert] = {}
        for block, cert in restored.recent:
            self.chain[block.height] = block
            self._chain_heights[block.hash] = block.height
            self.certs[block.height] = cert
        tip = max(self.chain)
        self.committed_height = self.delivered_height = tip
        self.stable_checkpoint = tip - tip % config.checkpoint_interval
        self._votes: dict[tuple[bytes, bytes], _VoteSet] = {}
        self._timeouts: dict[int, dict[int, tuple[int, bytes]]] = {}
        self._attests: dict[tuple[int, bytes], dict[int, bytes]] = {}
        self._my_attests: dict[int, m.Attest] = {}
        self._verified: set[bytes] = set()
        self._wanted: dict[bytes, int] = {}
        self._waiting: tuple[int, m.Proposal] | None = None
        self._gossip: list[bytes] = []
        self._last_gossip = float("-inf")
        self._sync_peer = self.me
        self._helped: dict[int, int] = {}
        for block in restored.voted:
            self._insert(block)
        self._last_sync_height = -1

    # ----------------------------------------------------------------- inputs

    def start(self, now: float) -> list[Effect]:
        self._now = now
        self._arm_round_timer()
        self._out.append(SetTimer(TICK_TIMER, 0, self.cfg.tick_interval))
        self._maybe_propose()
        return self._flush()

    def on_frame(self, now: float, sender: int, payload: bytes) -> list[Effect]:
        """Decode an authenticated frame and handle it; undecodable frames are counted and dropped."""
        try:
            message = m.decode(payload)
        except DecodeError:
            self.drops["decode_error"] += 1
            return []
        return self.on_message(now, sender, message)

    def on_message(self, now: float, sender: int, message: m.Message) -> list[Effect]:
        self._now = now
        if sender == self.me or not 0 <= sender < self.cfg.n:
            self.drops["unknown_sender"] += 1
            return []
        self._dispatch(sender, message)
        return self._flush()

    def submit(self, now: float, txs: list[bytes]) -> list[Effect]:
        """Client transactions: kept in the mempool and gossiped to the other nodes."""
        self._now = now
        added = self._add_txs(txs)
        was_pending = bool(self._gossip)  # then a flush timer is already set
        self._gossip.extend(added)
        if added and not was_pending:
            # Leading edge: an idle node gossips at once (latency); a busy one at most every
            # gossip_delay, so transactions arriving in a burst share TxBatch messages.
            wait = self._last_gossip + self.cfg.gossip_delay - now
            if wait <= 0:
                self._flush_gossip()
            else:
                self._out.append(SetTimer(FLUSH_TIMER, 0, wait))
        self._maybe_propose()
        return self._flush()

    def on_timer(self, now: float, kind: str, token: int) -> list[Effect]:
        self._now = now
        if kind == ROUND_TIMER and token == self.round:
            self._on_round_timeout()
        elif kind == TICK_TIMER:
            self._on_tick()
            self._out.append(SetTimer(TICK_TIMER, 0, self.cfg.tick_interval))
        elif kind == FLUSH_TIMER:
            self._flush_gossip()
        return self._flush()

    def safety_state(self) -> SafetyState:
        return SafetyState(self.highest_vote_round, self.highest_qc_round, self.high_qc, self.highest_tc)

    # ---------------------------------------------------------------- helpers

    def leader(self, round_: int) -> int:
        """Round-robin leader election (Jolteon §3; DiemBFT v4 LeaderElection without reputation)."""
        return round_ % self.cfg.n

    def _flush(self) -> list[Effect]:
        """Handle our own broadcasts as the others will, then hand the effects over."""
        while self._local:
            self._dispatch(self.me, self._local.popleft())
        out, self._out = self._out, []
        return out

    def _broadcast(self, message: m.Message) -> None:
        self._out.append(Send(None, message))
        self._local.append(message)

    def _dispatch(self, sender: int, message: m.Message) -> None:
        handler = _HANDLERS.get(type(message))
        if handler is not None:
            handler(self, sender, message)

    # ------------------------------------------------------ certificate checks

    def _qc_valid(self, qc: m.QuorumCert) -> bool:
        """Signatures, plus the shape an honest quorum gives the commit field (DiemBFT v4 §4 Safety)."""
        if qc == GENESIS_QC:
            return True
        key = qc.vote_info.digest + qc.commit_hash
        if key in self._verified:
            return True
        vi = qc.vote_info
        message = ledger_info_message(self.cfg.chain_id, qc.commit_hash, vi.digest)
        shape_ok = self.commit_field_ok(vi, qc.commit_hash)
        if not shape_ok or not valid_quorum(qc.sigs, message, self._verifier, self.cfg.n, self.cfg.quorum):
            self.drops["bad_qc"] += 1
            return False
        self._verified.add(key)
        return True

    def _tc_valid(self, tc: m.TimeoutCert) -> bool:
        signers = {node for node, _, _ in tc.entries}
        if len(signers) != len(tc.entries) or len(signers) < self.cfg.quorum:
            self.drops["bad_tc"] += 1
            return False
        for node, qc_round, sig in tc.entries:
            message = timeout_message(self.cfg.chain_id, tc.round, qc_round)
            if not (0 <= node < self.cfg.n and self._verifier.verify(node, message, sig)):
                self.drops["bad_tc"] += 1
                return False
        return True

    # --------------------------------------------- certificates (Block-tree)

    def _process_qc(self, qc: m.QuorumCert) -> bool:
        """DiemBFT v4 process_certificate_qc: track high QC, commit by the 2-chain rule, advance round."""
        if not self._qc_valid(qc):
            return False
        if self.observe_qc is not None:
            self.observe_qc(qc)
        if qc.round > self.high_qc.round:
            self.high_qc = qc
        if qc.commit_hash != ZERO_HASH and (self.high_commit_qc is None or qc.round > self.high_commit_qc.round):
            self.high_commit_qc = qc
            self._try_commit()
        if qc.round >= self.round:
            self._timeouts_in_row = 0
            self._enter_round(qc.round + 1)
        return True

    def _process_tc(self, tc: m.TimeoutCert | None) -> bool:
        """Pacemaker advance_round_tc."""
        if tc is None:
            return True
        if self.highest_tc is not None and tc.round <= self.highest_tc.round and tc.round < self.round:
            return True
        if not self._tc_valid(tc):
            return False
        if self.highest_tc is None or tc.round > self.highest_tc.round:
            self.highest_tc = tc
        if tc.round >= self.round:
            self._timeouts_in_row += 1
            self._enter_round(tc.round + 1)
        return True

    def _help_lagging(self, sender: int) -> None:
        """A message from an older round: send that node the certificates of ours, once per round."""
        if sender == self.me or self._helped.get(sender) == self.round:
            return
        self._helped[sender] = self.round
        self._out.append(Send(sender, m.SyncInfo(self.high_qc, self.high_commit_qc, self.highest_tc)))

    def _on_sync_info(self, sender: int, msg: m.SyncInfo) -> None:
        if self._process_qc(msg.high_qc) and msg.high_commit_qc is not None:
            self._process_qc(msg.high_commit_qc)
        self._process_tc(msg.last_tc)

    def _last_tc(self) -> m.TimeoutCert | None:
        tc = self.highest_tc
        return tc if tc is not None and tc.round == self.round - 1 else None

    # ------------------------------------------------------------- pacemaker

    def _enter_round(self, round_: int) -> None:
        self.round = round_
        self._my_timeout = None
        self._timeouts = {r: t for r, t in self._timeouts.items() if r >= round_}
        self._votes = {k: v for k, v in self._votes.items() if v.vote_info.round >= round_ - 1}
        self._arm_round_timer()
        self._maybe_propose()

    def _arm_round_timer(self) -> None:
        backoff = min(self.cfg.round_timeout * 2 ** min(self._timeouts_in_row, 8), self.cfg.max_round_timeout)
        self._out.append(SetTimer(ROUND_TIMER, self.round, backoff))

    def _has_work(self) -> bool:
        """Something to order: a pending transaction, or an uncommitted non-empty block to finish."""
        if len(self.mempool):
            return True
        return any(self.pending[h].txs for h in self._branch(self.high_qc.block_hash))

    def _on_round_timeout(self) -> None:
        if self._has_work() or self._my_timeout is not None:
            self._local_timeout()
        self._arm_round_timer()

    def _local_timeout(self) -> None:
        """Pacemaker local_timeout_round with Safety make_timeout; a repeat re-sends the same timeout."""
        if self._my_timeout is not None and self._my_timeout.round == self.round:
            self._out.append(Send(None, self._my_timeout))
            return
        qc_round = self.high_qc.round
        tc = self._last_tc()
        if not self.safe_to_timeout(self.round, qc_round, tc):
            return
        self.stop_voting(self.round)
        self._out.append(PersistSafety(self.safety_state()))
        sig = self._signer.sign(timeout_message(self.cfg.chain_id, self.round, qc_round))
        self._my_timeout = m.Timeout(self.round, self.high_qc, sig, tc, self.high_commit_qc)
        self._broadcast(self._my_timeout)

    def _on_timeout(self, sender: int, msg: m.Timeout) -> None:
        """DiemBFT v4 process_timeout_msg, with the f+1 rule (Bracha) to join a round's timeout."""
        if not self._process_qc(msg.high_qc):
            return
        if msg.high_commit_qc is not None and not self._process_qc(msg.high_commit_qc):
            return
        if not self._process_tc(msg.last_tc):
            return
        if msg.round < self.round:
            self._help_lagging(sender)
            return
        if msg.round > self.round + 1000:
            self.drops["timeout_out_of_window"] += 1
            return
        message = timeout_message(self.cfg.chain_id, msg.round, msg.high_qc.round)
        if sender != self.me and not self._verifier.verify(sender, message, msg.sig):
            self.drops["bad_signature"] += 1
            return
        senders = self._timeouts.setdefault(msg.round, {})
        senders[sender] = (msg.high_qc.round, msg.sig)
        if len(senders) == self.cfg.f + 1 and msg.round == self.round and self._my_timeout is None:
            self._local_timeout()
        if len(senders) >= self.cfg.quorum and msg.round >= self.round:
            tc = m.TimeoutCert(msg.round, tuple((n, q, s) for n, (q, s) in sorted(senders.items())))
            self.highest_tc = tc
            self._timeouts_in_row += 1
            self._enter_round(tc.round + 1)

    # ------------------------------------------------------ proposals, votes

    def _maybe_propose(self) -> None:
        """process_new_round_event: the leader extends its high QC with a batch from the mempool."""
        if self.leader(self.round) != self.me or self._proposed_round >= self.round:
            return
        tc = self._last_tc()
        if self.high_qc.round + 1 != self.round and tc is None:
            return
        parent = self._block(self.high_qc.block_hash)
        if parent is None:
            self._fetch(self.high_qc.block_hash, None)
            return
        if not self._has_work():
            return
        inflight = {k for h in self._branch(parent.hash) for k in self.pending[h].tx_ids}
        txs = self.mempool.take(self.cfg.batch_size, self.cfg.max_block_bytes, inflight)
        timestamp = max(parent.header.timestamp_ms, int(self._now * 1000))
        block = Block.build(parent.height + 1, self.round, parent.hash, self.me, timestamp, txs)
        self._proposed_round = self.round
        self._broadcast(m.Proposal(block, self.high_qc, tc, self.high_commit_qc))

    def _on_proposal(self, sender: int, msg: m.Proposal) -> None:
        """DiemBFT v4 process_proposal_msg."""
        if not self._process_qc(msg.qc):
            return
        if msg.high_commit_qc is not None and not self._process_qc(msg.high_commit_qc):
            return
        if not self._process_tc(msg.last_tc):
            return
        block = msg.block
        if block.round != self.round or sender != self.leader(block.round) or block.header.proposer != sender:
            self.drops["proposal_not_current"] += 1
            return
        if block.prev_hash != msg.qc.block_hash:
            self.drops["invalid_block"] += 1
            return
        parent = self._block(block.prev_hash)
        if parent is None:
            self._waiting = (sender, msg)
            self._fetch(block.prev_hash, sender)
            return
        if not self._block_valid(block, parent):
            self.drops["invalid_block"] += 1
            return
        self._insert(block)
        self._make_vote(block, msg.qc, msg.last_tc)

    def _block_valid(self, block: Block, parent: Block) -> bool:
        h = block.header
        return (
            h.height == parent.height + 1
            and len(block.txs) <= self.cfg.batch_size
            and sum(map(len, block.txs)) <= self.cfg.max_block_bytes
            and parent.header.timestamp_ms <= h.timestamp_ms <= self._now * 1000 + self.cfg.timestamp_skew_ms
            and block.txs_match_root()
        )

    # ------------------------------------------- Safety rules ([D] "Safety" module)
    # One method per rule, so the simulator's ablation tests can switch each off in a subclass and
    # show that a schedule exists where the checker then catches a violation (tests/ledger).

    def votes_once_per_round(self, block_round: int) -> bool:
        """[D] safe_to_vote, first half: never two votes (or a vote after a timeout) in one round."""
        return block_round > self.highest_vote_round

    def safe_to_extend(self, block_round: int, qc_round: int, tc: m.TimeoutCert | None) -> bool:
        """[D] safe_to_extend: after a TC, extend a QC at least as high as every high QC in it.

        This is the lock that carries a possibly committed block across a view change ([J] §4).
        """
        return tc is not None and block_round == tc.round + 1 and qc_round >= tc.max_high_qc_round

    def safe_to_vote(self, block_round: int, qc_round: int, tc: m.TimeoutCert | None) -> bool:
        """[D] safe_to_vote: consecutive to its QC, or a safe extension of the previous round's TC."""
        return (
            self.votes_once_per_round(block_round)
            and block_round > qc_round
            and (block_round == qc_round + 1 or self.safe_to_extend(block_round, qc_round, tc))
        )

    def safe_to_timeout(self, round_: int, qc_round: int, tc: m.TimeoutCert | None) -> bool:
        """[D] safe_to_timeout: not below the locked round, and only for a round the node is justified in."""
        unsafe = qc_round < self.highest_qc_round or round_ <= max(self.highest_vote_round - 1, qc_round)
        justified = round_ == qc_round + 1 or (tc is not None and round_ == tc.round + 1)
        return not unsafe and justified

    def stop_voting(self, round_: int) -> None:
        """A node that timed out of a round never votes in it ([D] increase_highest_vote_round)."""
        self.highest_vote_round = max(self.highest_vote_round, round_)

    def commit_candidate(self, block_round: int, qc: m.QuorumCert) -> bytes:
        """[D] commit_state_id_candidate: the parent, only when the rounds are consecutive (2-chain)."""
        return qc.block_hash if block_round == qc.round + 1 else ZERO_HASH

    def commit_field_ok(self, info: m.VoteInfo, commit_hash: bytes) -> bool:
        """The commit field an honest voter would have signed: zeros, or the parent one round before."""
        return commit_hash == ZERO_HASH or (commit_hash == info.parent_hash and info.round == info.parent_round + 1)

    def _make_vote(self, block: Block, qc: m.QuorumCert, tc: m.TimeoutCert | None) -> None:
        """Safety make_vote: safe_to_vote, then sign VoteInfo with the 2-chain commit candidate."""
        qc_round = qc.round
        if not self.votes_once_per_round(block.round) or block.round <= qc_round:
            return
        if not self.safe_to_vote(block.round, qc_round, tc):
            self.drops["unsafe_proposal"] += 1
            return
        self.highest_qc_round = max(self.highest_qc_round, qc_round)
        self.highest_vote_round = block.round
        self._out.append(PersistSafety(self.safety_state(), block))
        info = m.VoteInfo(block.hash, block.round, block.height, qc.block_hash, qc_round)
        commit_hash = self.commit_candidate(block.round, qc)
        sig = self._signer.sign(ledger_info_message(self.cfg.chain_id, commit_hash, info.digest))
        self._broadcast(m.Vote(info, commit_hash, sig))

    def _on_vote(self, sender: int, msg: m.Vote) -> None:
        """Votes go to every node (SPEC.md §3.1), so each forms the QC and commits one hop sooner."""
        info = msg.vote_info
        if info.round < self.round - 1:
            self._help_lagging(sender)
            return
        if info.round > self.round + 1:
            self.drops["vote_out_of_window"] += 1
            return
        message = ledger_info_message(self.cfg.chain_id, msg.commit_hash, info.digest)
        shape_ok = self.commit_field_ok(info, msg.commit_hash)
        if not shape_ok or (sender != self.me and not self._verifier.verify(sender, message, msg.sig)):
            self.drops["bad_signature"] += 1
            return
        votes = self._votes.setdefault((info.digest, msg.commit_hash), _VoteSet(info, msg.commit_hash))
        if sender in votes.sigs:
            return
        votes.sigs[sender] = msg.sig
        if len(votes.sigs) == self.cfg.quorum:
            qc = m.QuorumCert(info, msg.commit_hash, tuple(sorted(votes.sigs.items())))
            self._verified.add(info.digest + msg.commit_hash)
            self._process_qc(qc)

    # --------------------------------------------------------------- commits

    def _block(self, block_hash: bytes) -> Block | None:
        block = self.pending.get(block_hash)
        if block is None and block_hash in self._chain_heights:
            block = self.chain.get(self._chain_heights[block_hash])
        return block

    def _insert(self, block: Block) -> None:
        self._wanted.pop(block.hash, None)
        if block.height > self.committed_height and block.hash not in self.pending:
            self.pending[block.hash] = block

    def _branch(self, block_hash: bytes) -> list[bytes]:
        """Hashes of the uncommitted blocks from `block_hash` back to the committed tip."""
        out = []
        block = self.pending.get(block_hash)
        while block is not None:
            out.append(block.hash)
            block = self.pending.get(block.prev_hash)
        return out

    def _try_commit(self) -> None:
        """Ledger.commit of the 2-chain's first block and its uncommitted ancestors, fetching gaps."""
        qc = self.high_commit_qc
        if qc is None or qc.vote_info.height - 1 <= self.committed_height:
            return
        chain: list[Block] = []
        cursor = qc.commit_hash
        tip = self.chain[self.committed_height].hash
        while cursor != tip:
            block = self.pending.get(cursor)
            if block is None:
                self._fetch(cursor, None)
                return
            if block.height <= self.committed_height:
                raise SafetyViolation(f"node {self.me}: commit QC conflicts with height {self.committed_height}")
            chain.append(block)
            cursor = block.prev_hash
        for block in reversed(chain):
            self._commit(block, qc.commit_cert() if block.hash == qc.commit_hash else None)
        self._deliver_ready()

    def _commit(self, block: Block, cert: CommitCert | None) -> None:
        height = block.height
        self.committed_height = height
        self.chain[height] = block
        self._chain_heights[block.hash] = height
        self.mempool.remove_committed(block.tx_ids)
        self.pending = {h: b for h, b in self.pending.items() if b.height > height}
        if cert is not None:
            self.certs[height] = cert
            return
        sig = self._signer.sign(ledger_info_message(self.cfg.chain_id, block.hash, ZERO_HASH))
        self._my_attests[height] = m.Attest(height, block.hash, sig)
        self._broadcast(self._my_attests[height])

    def _on_attest(self, sender: int, msg: m.Attest) -> None:
        window = self.delivered_height + 4 * self.cfg.checkpoint_interval
        if msg.height <= self.delivered_height or msg.height > window:
            return
        message = ledger_info_message(self.cfg.chain_id, msg.block_hash, ZERO_HASH)
        if sender != self.me and not self._verifier.verify(sender, message, msg.sig):
            self.drops["bad_signature"] += 1
            return
        sigs = self._attests.setdefault((msg.height, msg.block_hash), {})
        sigs[sender] = msg.sig
        if len(sigs) >= self.cfg.quorum:
            self._attested(msg.height, msg.block_hash, sigs)

    def _attested(self, height: int, block_hash: bytes, sigs: dict[int, bytes]) -> None:
        block = self.chain.get(height) if height <= self.committed_height else None
        if block is not None and block.hash != block_hash:
            raise SafetyViolation(f"node {self.me}: quorum attests another block at height {height}")
        if block is not None and height not in self.certs:
            self.certs[height] = CommitCert(block_hash, ZERO_HASH, tuple(sorted(sigs.items())))
            self._deliver_ready()

    def _deliver_ready(self) -> None:
        """Hand blocks to the host in height order, each once it has its certificate (§4)."""
        while (height := self.delivered_height + 1) <= self.committed_height:
            if height not in self.certs:
                sigs = self._attests.get((height, self.chain[height].hash), {})
                if len(sigs) < self.cfg.quorum:
                    return
                self.certs[height] = CommitCert(self.chain[height].hash, ZERO_HASH, tuple(sorted(sigs.items())))
            self.delivered_height = height
            self._my_attests.pop(height, None)
            self._out.append(Deliver(self.chain[height], self.certs[height]))
            if height % self.cfg.checkpoint_interval == 0:
                self._checkpoint(height)

    def _checkpoint(self, height: int) -> None:
        """Stable checkpoint (PBFT §4.3 analogue): forget what is below the previous one (§5)."""
        floor = self.stable_checkpoint
        self.stable_checkpoint = height
        for old in [h for h in self.chain if h < floor]:
            del self._chain_heights[self.chain.pop(old).hash]
            self.certs.pop(old, None)
        self._attests = {k: v for k, v in self._attests.items() if k[0] > height}
        self._verified.clear()
        self._wanted.clear()

    # ------------------------------------------------- catch-up and fetching

    def _fetch(self, block_hash: bytes, peer: int | None) -> None:
        if block_hash in self._wanted:
            return
        target = peer if peer is not None and peer != self.me else self._next_peer()
        self._wanted[block_hash] = target
        self._out.append(Send(target, m.BlockRequest(block_hash, self.cfg.sync_batch)))

    def _next_peer(self) -> int:
        self._sync_peer = (self._sync_peer + 1) % self.cfg.n
        if self._sync_peer == self.me:
            self._sync_peer = (self._sync_peer + 1) % self.cfg.n
        return self._sync_peer

    def _on_block_request(self, sender: int, msg: m.BlockRequest) -> None:
        blocks: list[Block] = []
        cursor = self._block(msg.block_hash)
        while cursor is not None and len(blocks) < min(msg.count, m.MAX_SYNC_BLOCKS):
            blocks.append(cursor)
            cursor = self._block(cursor.prev_hash) if cursor.height > 0 else None
        if blocks:
            self._out.append(Send(sender, m.BlockResponse(tuple(blocks))))

    def _on_block_response(self, sender: int, msg: m.BlockResponse) -> None:
        """Accept only blocks we asked for by hash, and their ancestors linked by prev_hash."""
        expected: bytes | None = None
        for block in msg.blocks:
            if expected is None and block.hash not in self._wanted:
                self.drops["unsolicited_block"] += 1
                return
            if expected is not None and block.hash != expected:
                self.drops["unsolicited_block"] += 1
                return
            if not block.txs_match_root():
                self.drops["invalid_block"] += 1
                return
            self._wanted.pop(block.hash, None)
            self._insert(block)
            expected = block.prev_hash
            if self._block(expected) is not None and expected not in self.pending:
                break
        self._try_commit()
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            if waiting[1].block.round == self.round:
                self._on_proposal(*waiting)
        self._maybe_propose()

    def _on_sync_request(self, sender: int, msg: m.SyncRequest) -> None:
        start = msg.from_height
        if start > self.delivered_height or start < 1:
            return
        if start not in self.chain:
            self._out.append(ServeSync(sender, start, self.cfg.sync_batch))
            return
        end = min(self.delivered_height, start + self.cfg.sync_batch - 1)
        items = tuple((self.chain[h], self.certs[h]) for h in range(start, end + 1))
        self._out.append(Send(sender, m.SyncResponse(items)))

    def _on_sync_response(self, sender: int, msg: m.SyncResponse) -> None:
        """State transfer: certified blocks need no trust in the peer that served them."""
        for block, cert in msg.blocks:
            height = block.height
            if height <= self.delivered_height:
                continue
            previous = self.chain[self.delivered_height].hash
            if height != self.delivered_height + 1 or block.prev_hash != previous or cert.block_hash != block.hash:
                self.drops["sync_mismatch"] += 1
                return
            if not (
                block.txs_match_root() and cert.verify(self.cfg.chain_id, self._verifier, self.cfg.n, self.cfg.quorum)
            ):
                self.drops["bad_certificate"] += 1
                return
            known = self.chain.get(height) if height <= self.committed_height else None
            if known is not None and known.hash != block.hash:
                raise SafetyViolation(f"node {self.me}: certified block conflicts at height {height}")
            if known is None:
                self._insert(block)
                self._commit(block, cert)
            self.certs[height] = cert
            self._deliver_ready()
        self._try_commit()

    def _on_tick(self) -> None:
        """Retransmit what a lossy network may have eaten, and pull state when behind."""
        for attest in self._my_attests.values():
            self._out.append(Send(None, attest))
        for block_hash in self._wanted:
            self._wanted[block_hash] = peer = self._next_peer()
            self._out.append(Send(peer, m.BlockRequest(block_hash, self.cfg.sync_batch)))
        target = self.high_commit_qc.vote_info.height - 1 if self.high_commit_qc else 0
        stalled = self._last_sync_height == self.delivered_height
        if stalled and (target > self.delivered_height or self.committed_height > self.delivered_height):
            self._out.append(Send(self._next_peer(), m.SyncRequest(self.delivered_height + 1)))
        self._last_sync_height = self.delivered_height
        self._maybe_propose()

    # ------------------------------------------------------------- mempool

    def _add_txs(self, txs: tuple[bytes, ...] | list[bytes]) -> list[bytes]:
        added = []
        for tx in txs:
            reason = "tx_too_large" if len(tx) > self.cfg.max_tx_bytes else self.mempool.add(tx)
            if reason is None:
                added.append(tx)
            elif reason != "tx_duplicate":
                self.drops[reason] += 1
        return added

    def _flush_gossip(self) -> None:
        """Send pending transactions in chunks bounded by count *and* bytes, so that no TxBatch
        outgrows a transport frame (big transactions times batch_size would)."""
        self._last_gossip = self._now
        while self._gossip:
            end, size = 0, 0
            while end < len(self._gossip) and end < self.cfg.batch_size:
                size += len(self._gossip[end])
                if end and size > self.cfg.max_block_bytes:
                    break
                end += 1
            chunk, self._gossip = self._gossip[:end], self._gossip[end:]
            self._out.append(Send(None, m.TxBatch(tuple(chunk))))

    def _on_tx_batch(self, sender: int, msg: m.TxBatch) -> None:
        if self._add_txs(msg.txs):
            self._maybe_propose()


_HANDLERS = {
    m.Proposal: Replica._on_proposal,
    m.Vote: Replica._on_vote,
    m.Timeout: Replica._on_timeout,
    m.SyncInfo: Replica._on_sync_info,
    m.Attest: Replica._on_attest,
    m.TxBatch: Replica._on_tx_batch,
    m.SyncRequest: Replica._on_sync_request,
    m.SyncResponse: Replica._on_sync_response,
    m.BlockRequest: Replica._on_block_request,
    m.BlockResponse: Replica._on_block_response,
}
