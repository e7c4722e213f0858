"""The simulator's checker catches a replica with a safety rule switched off (SPEC.md §7).

Each ablation is a test-only Replica subclass that overrides one rule of the Safety module
(replica.py, "Safety rules"); the simulator runs it as every honest node, against a Byzantine
adversary that exploits exactly that rule. The test passes only if some seed in the budget ends in a
*safety* violation (a conflicting certificate or commit, not a stall), and the same seeds and
adversary show none with the real replica, so the detection is the rule's doing.
"""

from __future__ import annotations

import dataclasses

import pytest

from ledger_node.bft import messages as m
from ledger_node.bft.replica import Replica, ReplicaConfig
from ledger_node.bft.simulator import Simulation
from ledger_node.block import ZERO_HASH

pytestmark = pytest.mark.sim

# Seeds scanned per ablation, in order; each test stops at the first safety violation.
BUDGET = 1000


class VotesTwicePerRound(Replica):
    """No 'vote once per round': an equivocating leader gets two blocks certified in one round."""

    def votes_once_per_round(self, block_round: int) -> bool:
        return True


class NoTcLock(Replica):
    """No 'extend at least the TC's highest high QC': a leader may fork below a committed block."""

    def safe_to_extend(self, block_round: int, qc_round: int, tc: m.TimeoutCert | None) -> bool:
        return tc is not None and block_round == tc.round + 1


class CommitsWithoutConsecutiveRounds(Replica):
    """The 2-chain rule without 'consecutive rounds': a QC on any child commits its parent."""

    def commit_candidate(self, block_round: int, qc: m.QuorumCert) -> bytes:
        return qc.block_hash

    def commit_field_ok(self, info: m.VoteInfo, commit_hash: bytes) -> bool:
        return commit_hash in (ZERO_HASH, info.parent_hash)


@dataclasses.dataclass(frozen=True)
class _SmallQuorum(ReplicaConfig):
    @property
    def quorum(self) -> int:
        return (self.n + self.f) // 2


class TooSmallQuorum(Replica):
    """Quorums of 2f instead of 2f+1: two quorums need not share an honest node."""

    def __init__(self, config: ReplicaConfig, *args) -> None:
        super().__init__(_SmallQuorum(**dataclasses.asdict(config)), *args)


def _first_safety_violation(replica_class: type[Replica], **sim: object) -> tuple[int, str] | None:
    for seed in range(BUDGET):
        result = Simulation(seed, 4, replica_class=replica_class, **sim).run()
        if not result.ok and result.violation.startswith("safety"):
            return seed, result.violation
    return None


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("ablated", "sim"),
    [
        (VotesTwicePerRound, {"adversary": ("equivocate",)}),
        (NoTcLock, {"adversary": ("stale_tc",)}),
        (CommitsWithoutConsecutiveRounds, {"adversary": ("stale_tc",), "slow_consensus": 0.6}),
        (TooSmallQuorum, {"adversary": ("equivocate",)}),
    ],
    ids=["vote-once-per-round", "tc-lock", "consecutive-round-commit", "quorum-2f+1"],
)
def test_ablated_safety_rule_is_caught(ablated: type[Replica], sim: dict) -> None:
    found = _first_safety_violation(ablated, **sim)
    assert found is not None, f"no safety violation in {BUDGET} seeds"
    last = found[0]
    # Control: the real replica on the same seeds and adversary violates nothing at all.
    for seed in range(last + 1):
        result = Simulation(seed, 4, **sim).run()
        assert result.ok, f"seed {seed}: {result.violation}"
