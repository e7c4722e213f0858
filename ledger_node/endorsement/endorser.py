"""The endorser: execute proposals against a state snapshot, sign the read/write sets (DESIGN.md §2 step 5).

Execution is deterministic and synchronous over one snapshot. Readings are batch-verified first
(spec §3.7, grouped by pd inside `batch_verify`), which is the expensive part; the contract then
runs every rule and consults the batch verdicts instead of verifying again. Nothing is written:
the read/write set goes back to the client, signed, and only ordering plus validation commit it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeprov.crypto import abs_iot
from ledger_node.bft.signing import Signer
from ledger_node.contracts import ContractError, Env, contracts, readings
from ledger_node.endorsement.proposal import (
    Proposal,
    ProposalError,
    endorsement_message,
    parse_proposal,
    result_digest,
)
from ledger_node.state import Snapshot, TxContext

# Contracts whose inputs carry their own authority may be called by an unsigned proposal.
UNSIGNED_OK = {"registry", "readings", "verification"}


@dataclass(frozen=True)
class Endorsed:
    proposal_id: str
    rwset: dict
    response: dict
    node: int
    sig: str

    def to_json(self) -> dict:
        return {"ok": True, "proposal_id": self.proposal_id, "rwset": self.rwset, "response": self.response,
                "endorsement": [self.node, self.sig]}  # fmt: skip


@dataclass(frozen=True)
class Refused:
    proposal_id: str
    code: str
    message: str

    def to_json(self) -> dict:
        return {"ok": False, "proposal_id": self.proposal_id, "code": self.code, "message": self.message}


@dataclass
class Batch:
    """Readings awaiting batch verification: their verdict keys and (entry, record, signature)."""

    keys: list[bytes] = field(default_factory=list)
    items: list[tuple] = field(default_factory=list)


def rwset_of(ctx: TxContext) -> dict:
    return {
        "reads": [[k, None if v is None else list(v)] for k, v in sorted(ctx.reads.items())],
        "writes": [[k, v] for k, v in sorted(ctx.writes.items())],
        "checks": dict(ctx.checks),
    }


class Endorser:
    def __init__(self, env: Env, signer: Signer, chain_id: bytes) -> None:
        self.env, self.signer, self.chain_id = env, signer, chain_id
        self.table = contracts()

    def prepare(self, snapshot: Snapshot, docs: list[object]) -> tuple[list[Proposal | Refused], Batch]:
        """Parse every proposal and collect the readings to batch-verify (cheap state reads only)."""
        parsed: list[Proposal | Refused] = []
        for doc in docs:
            try:
                parsed.append(parse_proposal(doc))
            except ProposalError as exc:
                parsed.append(Refused("", exc.code, exc.message))
        batch = Batch()
        for p in parsed:
            if isinstance(p, Proposal) and (p.body["contract"], p.body["fn"]) == (readings.NAME, "submit"):
                self._collect(snapshot, p, batch)
        return parsed, batch

    def _collect(self, snapshot: Snapshot, p: Proposal, batch: Batch) -> None:
        ctx = TxContext(snapshot, p.creator, p.id, self.env)
        try:
            reading = readings.parse(p.body["args"])
            entry, reg = readings.registry_entry(ctx, reading)
            readings.load_credential(ctx, reading, reg)
        except (ContractError, ValueError):
            return  # execution reports it with its reason code
        batch.keys.append(readings.verdict_key(reading, entry))
        batch.items.append((reg, reading.record, reading.sig))

    def verify(self, batch: Batch) -> readings.Verdicts:
        """The expensive part (spec §3.7); touches no ledger state, so it may run off the event loop."""
        rejected = abs_iot.batch_verify(self.env.mpk, batch.items, self.env.credentials) if batch.items else {}
        return readings.Verdicts((k, rejected.get(i, "")) for i, k in enumerate(batch.keys))

    def execute(
        self, snapshot: Snapshot, proposal: Proposal | Refused, verdicts: readings.Verdicts
    ) -> Endorsed | Refused:
        """Run one proposal on the snapshot and sign the outcome."""
        if isinstance(proposal, Refused):
            return proposal
        body = proposal.body
        functions = self.table.get(body["contract"], {})
        fn = functions.get(body["fn"])
        if fn is None:
            return Refused(proposal.id, "UNKNOWN_FUNCTION", f"no function {body['contract']}.{body['fn']}")
        if not proposal.creator and body["contract"] not in UNSIGNED_OK:
            return Refused(proposal.id, "UNAUTHENTICATED", f"{body['contract']} needs a signed proposal")
        ctx = TxContext(snapshot, proposal.creator, proposal.id, self.env)
        try:
            if body["contract"] == readings.NAME:
                response = readings.submit(ctx, body["args"], verdicts)
            else:
                response = fn(ctx, body["args"])
        except ContractError as exc:
            return Refused(proposal.id, exc.code, exc.message)
        rwset = rwset_of(ctx)
        message = endorsement_message(self.chain_id, proposal.id, result_digest(rwset, response))
        return Endorsed(proposal.id, rwset, response, self.signer.node_id, self.signer.sign(message).hex())

    def endorse(self, snapshot: Snapshot, docs: list[object]) -> list[Endorsed | Refused]:
        parsed, batch = self.prepare(snapshot, docs)
        verdicts = self.verify(batch)
        return [self.execute(snapshot, p, verdicts) for p in parsed]
