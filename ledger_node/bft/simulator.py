"""Seeded, in-process, virtual-time simulator running the real Replica under faults (SPEC.md §7).

One seed fixes everything: network delays, reordering, duplication, loss, partitions and their
healing, crashes and restarts (each node restarts from its own MemoryBlockStore), which nodes are
Byzantine and how (equivocating leader, conflicting votes, silent leader, mute, replayed and garbled
frames), and when clients submit. Frames cross the simulated wire as bytes, so the codec is in the
loop. After the run: safety (no two honest nodes deliver different blocks at one height; a stored
prefix never changes; every certificate verifies), validity (only submitted transactions are valid,
none twice, all honest nodes agree on results) and liveness (after healing, every submitted
transaction commits at every honest node within a bounded virtual time).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from ledger_node.app import TxLogApp
from ledger_node.bft import messages as m
from ledger_node.bft.replica import (
    Deliver,
    Effect,
    PersistSafety,
    Replica,
    ReplicaConfig,
    SafetyViolation,
    Send,
    ServeSync,
    SetTimer,
)
from ledger_node.bft.signing import Ed25519Signer, Ed25519Verifier, ledger_info_message, timeout_message
from ledger_node.block import ZERO_HASH, Block, tx_id, verify_block
from ledger_node.blockstore import MemoryBlockStore

BEHAVIOURS = ("equivocate", "double_vote", "silent_leader", "mute", "replay", "garble", "stale_tc", "stale_timeout")


_CONSENSUS_TAGS = (m.encode_tag(m.Proposal), m.encode_tag(m.Vote), m.encode_tag(m.Timeout))


class Violation(AssertionError):
    """A safety, validity or liveness property failed for this seed."""


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (MemoryBlockStore's), so the sim stays single-threaded."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("coroutine suspended inside the simulator")


class SimKeys:
    """Keyed-BLAKE2b stand-in for Ed25519: same interface, microseconds instead of 100 µs.

    Unforgeable inside the simulation: a node's signer holds only its own key, and Byzantine code
    gets nothing else.
    """

    def __init__(self, rng: random.Random, n: int) -> None:
        self._secrets = [rng.randbytes(32) for _ in range(n)]

    def signer(self, node: int) -> _HashSigner:
        return _HashSigner(node, self._secrets[node])

    def verify(self, node: int, message: bytes, signature: bytes) -> bool:
        if not 0 <= node < len(self._secrets):
            return False
        return hashlib.blake2b(message, key=self._secrets[node], digest_size=32).digest() == signature


@dataclass
class _HashSigner:
    node_id: int
    secret: bytes

    def sign(self, message: bytes) -> bytes:
        return hashlib.blake2b(message, key=self.secret, digest_size=32).digest()


class Ed25519SimKeys:
    def __init__(self, rng: random.Random, n: int) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._keys = [Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)) for _ in range(n)]
        self._verifier = Ed25519Verifier({i: k.public_key().public_bytes_raw() for i, k in enumerate(self._keys)})

    def signer(self, node: int) -> Ed25519Signer:
        return Ed25519Signer(node, self._keys[node])

    def verify(self, node: int, message: bytes, signature: bytes) -> bool:
        return self._verifier.verify(node, message, signature)


@dataclass
class SimResult:
    seed: int
    nodes: int
    violation: str | None
    virtual_time: float
    events: int
    heights: dict[int, int]
    committed_txs: int
    byzantine: dict[int, tuple[str, ...]]
    crashes: int
    drops: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.violation is None


@dataclass
class _Schedule:
    chaos_end: float
    loss: float
    duplicate: float
    replay: float
    garble: float
    spike: float
    slow_consensus: float
    partitions: list[tuple[float, float, frozenset[int]]]
    crashes: list[tuple[float, float, int]]
    byzantine: dict[int, tuple[str, ...]]


def _make_schedule(rng: random.Random, n: int, chaos: float, adversary: tuple[str, ...] | None) -> _Schedule:
    """A random schedule; with `adversary`, exactly f Byzantine nodes all behave that way."""
    f = (n - 1) // 3
    nodes = list(range(n))
    byz_nodes = rng.sample(nodes, f if adversary else rng.randint(0, f))
    byzantine = {b: adversary or tuple(sorted(rng.sample(BEHAVIOURS, rng.randint(1, 3)))) for b in byz_nodes}
    honest = [i for i in nodes if i not in byzantine]
    partitions = []
    for _ in range(rng.randint(0, 3)):
        start = rng.uniform(0, chaos * 0.8)
        side = frozenset(rng.sample(nodes, rng.randint(1, n // 2)))
        partitions.append((start, min(chaos, start + rng.uniform(0.5, chaos / 3)), side))
    crashes = []
    for _ in range(rng.randint(0, 3)):
        start = rng.uniform(0, chaos * 0.8)
        crashes.append((start, min(chaos, start + rng.uniform(0.2, chaos / 3)), rng.choice(honest)))
    return _Schedule(
        chaos_end=chaos,
        loss=rng.choice((0.0, 0.01, 0.05, 0.15)),
        duplicate=rng.choice((0.0, 0.02, 0.1)),
        replay=rng.choice((0.0, 0.01, 0.05)),
        garble=rng.choice((0.0, 0.01, 0.05)),
        spike=rng.choice((0.0, 0.05, 0.2)),
        slow_consensus=rng.choice((0.0, 0.1, 0.3)),
        partitions=partitions,
        crashes=crashes,
        byzantine=byzantine,
    )


class _Node:
    def __init__(self, sim: Simulation, node_id: int) -> None:
        self.sim = sim
        self.id = node_id
        self.store = MemoryBlockStore()
        self.app = TxLogApp(accept=sim.client_accepts)
        self.behaviour = sim.schedule.byzantine.get(node_id, ())
        self.replica: Replica | None = None
        self.incarnation = 0
        self.valid: set[bytes] = set()
        self.drops: Counter = Counter()
        self.history: list[bytes] = []
        self.qcs: dict[int, m.QuorumCert] = {}

    @property
    def honest(self) -> bool:
        return not self.behaviour

    def boot(self) -> None:
        restored = run_sync(self.store.load())
        keys = self.sim.keys
        kind = self.sim.replica_class if self.honest else Replica
        self.replica = kind(self.sim.config(self.id), keys.signer(self.id), keys, restored)
        self.replica.observe_qc = self.sim.check_qc if self.honest else self._remember_qc
        self.handle(self.replica.start(self.sim.now))

    def crash(self) -> None:
        if self.replica is not None:
            self.drops.update(self.replica.drops)
        self.store.crash()
        self.replica = None
        self.incarnation += 1

    def handle(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.send(effect.to, m.encode(effect.message), effect.message)
            elif isinstance(effect, SetTimer):
                self.sim.at(
                    self.sim.now + effect.delay, ("timer", self.id, self.incarnation, effect.kind, effect.token)
                )
            elif isinstance(effect, PersistSafety):
                run_sync(self.store.save_safety(effect.state, effect.voted))
            elif isinstance(effect, Deliver):
                self.deliver(effect)
            elif isinstance(effect, ServeSync):
                blocks = run_sync(self.store.read_blocks(effect.from_height, effect.limit))
                if blocks:
                    self.send(effect.peer, m.encode(m.SyncResponse(tuple(blocks))), None)

    def send(self, to: int | None, frame: bytes, message: m.Message | None) -> None:
        targets = [to] if to is not None else [i for i in range(self.sim.n) if i != self.id]
        if self.behaviour:
            self._byzantine_send(targets, frame, message)
            return
        for target in targets:
            self.sim.transmit(self.id, target, frame)

    def _byzantine_send(self, targets: list[int], frame: bytes, message: m.Message | None) -> None:
        rng, b = self.sim.rng, self.behaviour
        if "mute" in b:
            return
        if isinstance(message, m.Proposal) and "silent_leader" in b:
            return
        if isinstance(message, m.Proposal) and "stale_tc" in b and message.last_tc is not None:
            stale = self._stale_proposal(message)
            if stale:
                for target in targets:
                    for out in stale:
                        self.sim.transmit(self.id, target, out)
                return
        if isinstance(message, m.Proposal) and "equivocate" in b and len(targets) > 1:
            # Either split the nodes between two blocks, or show both blocks to everyone in a
            # random order: an honest node must still vote for at most one of them.
            split = len(targets) // 2 if rng.random() < 0.5 else 0
            others = self._equivocation(message)
            for i, target in enumerate(targets):
                frames = others if i >= split else [frame]
                if split == 0:
                    frames = rng.sample([frame, *others], 3)
                for out in frames:
                    self.sim.transmit(self.id, target, out)
            return
        if isinstance(message, m.Timeout) and "stale_timeout" in b:
            frame = self._stale_timeout(message)
        if isinstance(message, m.Vote) and "double_vote" in b:
            for target in targets:
                self.sim.transmit(self.id, target, self._conflicting_vote(message))
        self.history.append(frame)
        for target in targets:
            out = frame
            if "garble" in b and rng.random() < 0.3:
                out = _garble(rng, frame)
            self.sim.transmit(self.id, target, out)
        if "replay" in b and self.history and rng.random() < 0.3:
            self.sim.transmit(self.id, rng.randrange(self.sim.n), rng.choice(self.history))

    def _equivocation(self, proposal: m.Proposal) -> list[bytes]:
        """A second, different block for the same round, and a vote for it."""
        b = proposal.block
        fake_tx = b"forged-" + self.sim.rng.randbytes(8)
        txs = (*b.txs[: len(b.txs) // 2], fake_tx)
        other = Block.build(b.height, b.round, b.prev_hash, self.id, b.header.timestamp_ms + 1, txs)
        info = m.VoteInfo(other.hash, other.round, other.height, proposal.qc.block_hash, proposal.qc.round)
        commit = proposal.qc.block_hash if other.round == proposal.qc.round + 1 else bytes(32)
        sig = self.sim.keys.signer(self.id).sign(ledger_info_message(self.sim.chain_id, commit, info.digest))
        return [
            m.encode(m.Proposal(other, proposal.qc, proposal.last_tc, proposal.high_commit_qc)),
            m.encode(m.Vote(info, commit, sig)),
        ]

    def _remember_qc(self, qc: m.QuorumCert) -> None:
        self.qcs.setdefault(qc.round, qc)

    def _stale_proposal(self, proposal: m.Proposal) -> list[bytes]:
        """After a view change, extend an older QC than the one the leader holds, with a vote for it.

        Half the time the QC is below the TC's highest high-QC round (honest nodes must refuse: the
        TC lock), half the time exactly at it (legal, and safe only because a node that timed out of
        a round never votes in it). Either way the block forks away from the leader's high QC.
        """
        tc, rng = proposal.last_tc, self.sim.rng
        below = [qc for r, qc in self.qcs.items() if r < tc.max_high_qc_round]
        at = [qc for r, qc in self.qcs.items() if r == tc.max_high_qc_round and r < proposal.qc.round]
        choices = (below, at) if rng.random() < 0.5 else (at, below)
        pool = choices[0] or choices[1]
        if not pool:
            return []
        qc = max(pool, key=lambda q: q.round) if rng.random() < 0.5 else rng.choice(pool)
        b = proposal.block
        block = Block.build(qc.vote_info.height + 1, b.round, qc.block_hash, self.id, b.header.timestamp_ms, b.txs)
        info = m.VoteInfo(block.hash, block.round, block.height, qc.block_hash, qc.round)
        commit = qc.block_hash if block.round == qc.round + 1 else bytes(32)
        sig = self.sim.keys.signer(self.id).sign(ledger_info_message(self.sim.chain_id, commit, info.digest))
        return [
            m.encode(m.Proposal(block, qc, tc, proposal.high_commit_qc)),
            m.encode(m.Vote(info, commit, sig)),
        ]

    def _stale_timeout(self, timeout: m.Timeout) -> bytes:
        """A timeout claiming an older high QC than the node holds, to drag a TC's lock down."""
        older = [qc for r, qc in self.qcs.items() if r < timeout.high_qc.round]
        if not older:
            return m.encode(timeout)
        qc = self.sim.rng.choice(older)
        sig = self.sim.keys.signer(self.id).sign(timeout_message(self.sim.chain_id, timeout.round, qc.round))
        return m.encode(m.Timeout(timeout.round, qc, sig, timeout.last_tc, timeout.high_commit_qc))

    def _conflicting_vote(self, vote: m.Vote) -> bytes:
        vi = vote.vote_info
        info = m.VoteInfo(self.sim.rng.randbytes(32), vi.round, vi.height, vi.parent_hash, vi.parent_round)
        sig = self.sim.keys.signer(self.id).sign(ledger_info_message(self.sim.chain_id, vote.commit_hash, info.digest))
        return m.encode(m.Vote(info, vote.commit_hash, sig))

    def deliver(self, effect: Deliver) -> None:
        sim, block = self.sim, effect.block
        if self.honest and not verify_block(block, effect.cert, sim.chain_id, sim.keys, sim.n, sim.quorum):
            raise Violation(f"node {self.id} delivered height {block.height} with an invalid certificate")
        applied = self.app.apply_block(block, self.store)
        try:
            self.store.stage(block, effect.cert, applied)
        except ValueError as gap:
            raise Violation(f"node {self.id}: {gap}") from gap
        run_sync(self.store.flush())
        if self.honest:
            sim.check_block(self, block, applied.results)


def _garble(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data[: rng.randint(1, len(data))] if rng.random() < 0.3 else data)


class Simulation:
    def __init__(
        self,
        seed: int,
        n: int,
        txs: int = 40,
        chaos: float = 10.0,
        bound: float = 60.0,
        real_crypto: bool = False,
        replica_class: type[Replica] = Replica,
        adversary: tuple[str, ...] | None = None,
        slow_consensus: float | None = None,
    ) -> None:
        """`replica_class` runs the honest nodes (tests pass ablated subclasses to prove the checker
        catches a missing safety rule); `adversary` makes exactly f nodes Byzantine in that way;
        `slow_consensus` fixes the share of proposals, votes and timeouts that arrive around the timeout."""
        self.seed, self.n = seed, n
        self.replica_class = replica_class
        self.rng = random.Random(f"{seed}/{n}")
        self.chain_id = b"sim"
        self.keys = (Ed25519SimKeys if real_crypto else SimKeys)(self.rng, n)
        self.quorum = ReplicaConfig(0, n).quorum
        self.schedule = _make_schedule(self.rng, n, chaos, adversary)
        if slow_consensus is not None:
            self.schedule.slow_consensus = slow_consensus
        self.heal_time = chaos
        self.deadline = chaos + bound
        self.now = 0.0
        self.events = 0
        self._queue: list[tuple[float, int, tuple]] = []
        self._seq = 0
        self._client_key = self.rng.randbytes(16)
        self.submitted: dict[bytes, bytes] = {}
        self.canonical: dict[int, bytes] = {}
        self.results: dict[int, tuple] = {}
        self.certified: dict[int, bytes] = {}
        # Every certified block (hash -> its VoteInfo) and every directly committed one (hash -> round).
        self.certified_info: dict[bytes, m.VoteInfo] = {}
        self.direct: dict[bytes, tuple[int, int]] = {}
        self.nodes = [_Node(self, i) for i in range(n)]
        self.up = [True] * n
        self.tx_count = txs

    def config(self, node: int) -> ReplicaConfig:
        return ReplicaConfig(
            node_id=node,
            n=self.n,
            chain_id=self.chain_id,
            batch_size=16,
            round_timeout=0.5,
            max_round_timeout=4.0,
            tick_interval=0.25,
            checkpoint_interval=10,
            sync_batch=8,
        )

    # ------------------------------------------------------------ clients

    def _make_tx(self, index: int) -> bytes:
        body = f"seed={self.seed};tx={index};".encode()
        return body + hashlib.blake2b(body, key=self._client_key, digest_size=16).digest()

    def client_accepts(self, tx: bytes) -> bool:
        body, mac = tx[:-16], tx[-16:]
        return hashlib.blake2b(body, key=self._client_key, digest_size=16).digest() == mac

    # ------------------------------------------------------------ network

    def at(self, time: float, event: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, event))

    def _chaotic(self) -> bool:
        return self.now < self.heal_time

    def _partitioned(self, a: int, b: int) -> bool:
        return any(
            start <= self.now < end and ((a in side) != (b in side)) for start, end, side in self.schedule.partitions
        )

    def transmit(self, src: int, dst: int, frame: bytes) -> None:
        s, rng = self.schedule, self.rng
        if dst == src:
            return
        copies = 1
        if self._chaotic():
            if rng.random() < s.loss:
                return
            if rng.random() < s.duplicate:
                copies = 2
            if rng.random() < s.garble:
                # The transport's per-frame MAC catches a frame garbled on the wire (SPEC.md §6).
                self.nodes[dst].drops["bad_mac"] += 1
                return
            if rng.random() < s.replay:
                self.at(self.now + rng.uniform(1.0, 5.0), ("frame", src, dst, frame))
        for _ in range(copies):
            delay = rng.uniform(0.001, 0.02)
            if self._chaotic() and frame[:1] in _CONSENSUS_TAGS and rng.random() < s.slow_consensus:
                # Proposals, votes and timeouts arriving around the round timeout: a round then ends with a QC
                # at some nodes and a TC at others, and nodes time out before they would vote, which
                # is where the view-change rules matter.
                delay += rng.uniform(0.5, 1.5) * self.config(dst).round_timeout
            elif self._chaotic() and rng.random() < s.spike:
                delay += rng.uniform(0.05, 0.5)
            self.at(self.now + delay, ("frame", src, dst, frame))

    # ------------------------------------------------------------- checks

    def check_block(self, node: _Node, block: Block, results: list) -> None:
        known = self.canonical.setdefault(block.height, block.hash)
        if known != block.hash:
            raise Violation(f"safety: node {node.id} delivered a different block at height {block.height}")
        signature = tuple((r.valid, r.reason) for r in results)
        if self.results.setdefault(block.height, signature) != signature:
            raise Violation(f"validity: node {node.id} disagrees on results at height {block.height}")
        for tx, result in zip(block.txs, results, strict=True):
            if not result.valid:
                continue
            key = tx_id(tx)
            if key not in self.submitted:
                raise Violation(f"validity: node {node.id} committed a transaction nobody submitted")
            if key in node.valid:
                raise Violation(f"validity: node {node.id} committed a transaction twice")
            node.valid.add(key)

    def check_qc(self, qc: m.QuorumCert) -> None:
        """Every QC an honest node accepts: one certified block per round, and the commit lemma.

        Commit lemma ([J] and [D], the core of the 2-chain safety proof): once a block D is committed
        directly (a QC of the next round on its child), every block certified in a later round
        extends D. It catches a broken voting rule at the first certified fork, before two nodes
        ever deliver different blocks (which needs a second round on the fork).
        """
        if self.certified.setdefault(qc.round, qc.block_hash) != qc.block_hash:
            raise Violation(f"safety: two blocks certified in round {qc.round}")
        info = qc.vote_info
        if info.block_hash not in self.certified_info:
            self.certified_info[info.block_hash] = info
            below = [(r, h) for h, (_, r) in self.direct.items() if r < info.round]
            if below:
                self._check_extends(info, max(below)[1])
        if qc.commit_hash != ZERO_HASH and qc.commit_hash not in self.direct:
            self.direct[qc.commit_hash] = (info.height - 1, info.parent_round)
            for later in [i for i in self.certified_info.values() if i.round > info.parent_round]:
                self._check_extends(later, qc.commit_hash)

    def _check_extends(self, info: m.VoteInfo, committed: bytes) -> None:
        height, round_ = self.direct[committed]
        cursor: m.VoteInfo | None = info
        while cursor is not None and cursor.height > height:
            parent = cursor.parent_hash
            if cursor.height == height + 1:
                if parent != committed:
                    raise Violation(
                        f"safety: block certified in round {info.round} does not extend the block committed "
                        f"in round {round_} (height {height})"
                    )
                return
            cursor = self.certified_info.get(parent)
        if cursor is not None and cursor.block_hash != committed:
            raise Violation(f"safety: block certified in round {info.round} conflicts with a committed block")

    def _final_checks(self) -> None:
        for node in self.nodes:
            if not node.honest:
                continue
            for stored in node.store.blocks:
                if self.canonical.get(stored.block.height) != stored.block.hash:
                    raise Violation(f"safety: node {node.id}'s stored prefix changed at {stored.block.height}")

    def _all_committed(self) -> bool:
        return all(len(node.valid) == len(self.submitted) for node in self.nodes if node.honest)

    # --------------------------------------------------------------- run

    def _plan(self) -> None:
        for index in range(self.tx_count):
            tx = self._make_tx(index)
            self.submitted[tx_id(tx)] = tx
            self.at(self.rng.uniform(0, self.heal_time), ("submit", tx))
        for start, end, node in self.schedule.crashes:
            self.at(start, ("crash", node))
            self.at(end, ("restart", node))
        self.at(self.heal_time, ("heal",))
        self.at(self.heal_time + 2.0, ("retry",))

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "frame":
            _, src, dst, frame = event
            node = self.nodes[dst]
            if node.replica is not None and not self._partitioned(src, dst):
                node.handle(node.replica.on_frame(self.now, src, frame))
        elif kind == "timer":
            _, dst, incarnation, timer, token = event
            node = self.nodes[dst]
            if node.replica is not None and node.incarnation == incarnation:
                node.handle(node.replica.on_timer(self.now, timer, token))
        elif kind == "submit":
            node = self.nodes[self.rng.randrange(self.n)]
            if node.replica is not None:
                node.handle(node.replica.submit(self.now, [event[1]]))
        elif kind == "crash":
            self.nodes[event[1]].crash()
        elif kind == "restart":
            if self.nodes[event[1]].replica is None:
                self.nodes[event[1]].boot()
        elif kind == "heal":
            for node in self.nodes:
                if node.replica is None:
                    node.boot()
        elif kind == "retry":
            self._retry()

    def _retry(self) -> None:
        """Clients resubmit what has not committed yet, as a gateway's outbox does."""
        honest = [node for node in self.nodes if node.honest]
        missing = [tx for key, tx in self.submitted.items() if any(key not in node.valid for node in honest)]
        for tx in missing:
            self.at(self.now + self.rng.uniform(0, 0.5), ("submit", tx))
        self.at(self.now + 2.0, ("retry",))

    def run(self) -> SimResult:
        violation = None
        try:
            self._plan()
            for node in self.nodes:
                node.boot()
            while self._queue:
                self.now, _, event = heapq.heappop(self._queue)
                if self.now > self.deadline:
                    raise Violation(
                        f"liveness: not all transactions committed {self.deadline - self.heal_time:.0f} s after healing"
                    )
                self.events += 1
                self._handle(event)
                if self.now >= self.heal_time and self._all_committed():
                    break
            self._final_checks()
        except Violation as failure:
            violation = str(failure)
        except SafetyViolation as failure:
            violation = f"safety: {failure}"
        return self._result(violation)

    def _result(self, violation: str | None) -> SimResult:
        drops: Counter = Counter()
        for node in self.nodes:
            drops.update(node.drops)
            if node.replica is not None:
                drops.update(node.replica.drops)
        return SimResult(
            seed=self.seed,
            nodes=self.n,
            violation=violation,
            virtual_time=round(self.now, 3),
            events=self.events,
            heights={node.id: node.store.height for node in self.nodes},
            committed_txs=min((len(node.valid) for node in self.nodes if node.honest), default=0),
            byzantine=dict(self.schedule.byzantine),
            crashes=len(self.schedule.crashes),
            drops=drops,
        )


def simulate(seed: int, nodes: int, real_crypto: bool = False) -> SimResult:
    return Simulation(seed, nodes, real_crypto=real_crypto).run()
