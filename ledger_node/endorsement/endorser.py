"""The endorser: execute proposals against a state snapshot, sign the read/write sets (DESIGN.md §2 step 5).

Execution is deterministic over one snapshot. Nothing is written: the read/write set goes back to
the client, signed, and only ordering plus validation commit it. Endorsing runs in three steps so
the node's event loop does only small work (contracts/README.md "Batched readings"):

1. `plan` (loop): check each proposal's shape and creator signature; readings (an unsigned
   readings.submit, or every item of a readings.submit_batch) become items, with the state keys
   they will read (`readings.state_keys`);
2. `run_items` (worker process or thread, reading_batch.py): those keys' values, read in one query
   by `prefetch`, go with the items to the reading contract: one ABS-IOT-V1 batch verification for
   all of them (spec §3.7), path hops, ledger rules, one read/write set or refusal per reading;
3. `finish` (loop): other contracts run here (registrations and the like: few and small), and
   each proposal's result is signed, one Ed25519 signature per proposal, so one per reading batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger_node.app import get_states
from ledger_node.bft.signing import Signer
from ledger_node.contracts import ContractError, Env, contracts, readings
from ledger_node.endorsement.proposal import (
    ITEM_FN,
    Proposal,
    ProposalError,
    batch_items,
    endorsement_message,
    is_batch,
    parse_proposal,
    result_digest,
)
from ledger_node.endorsement.reading_batch import Outcome, Span, execute_items, rwset_of
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
class Plan:
    """Parsed proposals; the reading items of those that are readings (`spans[where[i]]` = proposal
    i's (first item, count, is_batch)) and the state keys the items read."""

    parsed: list[Proposal | Refused] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    where: dict[int, int] = field(default_factory=dict)
    items: list[tuple[dict, str]] = field(default_factory=list)
    keys: dict[bytes, None] = field(default_factory=dict)

    def add(self, doc: object) -> None:
        try:
            p = parse_proposal(doc)
        except ProposalError as exc:
            self.parsed.append(Refused("", exc.code, exc.message))
            return
        body = p.body
        if is_batch(body):
            items = batch_items(body)
        elif (body["contract"], body["fn"], body["creator"]) == (readings.NAME, ITEM_FN, ""):
            items = [(body["args"], body["nonce"])]  # its proposal id is its item id
        else:
            items = []
        if items:
            self.where[len(self.parsed)] = len(self.spans)
            self.spans.append((len(self.items), len(items), is_batch(body)))
            self.items += items
            for args, _ in items:
                self.keys.update((k.encode(), None) for k in readings.state_keys(args))
        self.parsed.append(p)

    def extend(self, other: Plan) -> None:
        """Append another plan's proposals (one worker run for several requests)."""
        offset, shift = len(self.parsed), len(self.items)
        self.where |= {i + offset: s + len(self.spans) for i, s in other.where.items()}
        self.spans += [(first + shift, count, batch) for first, count, batch in other.spans]
        self.parsed += other.parsed
        self.items += other.items
        self.keys |= other.keys


class Endorser:
    def __init__(self, env: Env, signer: Signer, chain_id: bytes) -> None:
        self.env, self.signer, self.chain_id = env, signer, chain_id
        self.table = contracts()

    def plan(self, docs: list[object]) -> Plan:
        plan = Plan()
        for doc in docs:
            plan.add(doc)
        return plan

    @staticmethod
    def prefetch(snapshot: Snapshot, plan: Plan) -> dict[bytes, bytes | None]:
        """The values of every key the plan's readings read, in one query when the store batches."""
        found = get_states(snapshot, list(plan.keys))
        return {k: found.get(k) for k in plan.keys}

    def run_items(self, plan: Plan, values: dict[bytes, bytes | None]) -> Outcome:
        """Step 2 in this process (a worker process runs worker.endorse_items instead)."""
        return execute_items(self.env, plan.items, values, plan.spans)

    def finish(self, snapshot: Snapshot, plan: Plan, outcome: Outcome, index: int) -> Endorsed | Refused:
        """Proposal `index` of the plan, endorsed (signed) or refused."""
        p = plan.parsed[index]
        if isinstance(p, Refused):
            return p
        if index not in plan.where:
            return self.execute(snapshot, p)
        first, count, batch = plan.spans[plan.where[index]]
        digest = outcome.digests[plan.where[index]]
        if batch:
            rwset, response = outcome.batch(first, count)
        else:
            rwset, response = outcome.single(first)
            if rwset is None:
                return Refused(p.id, response["code"], response["message"])
        return self._sign(p.id, rwset, response, digest)

    def _sign(self, proposal_id: str, rwset: dict, response: dict, digest: bytes) -> Endorsed:
        message = endorsement_message(self.chain_id, proposal_id, digest)
        return Endorsed(proposal_id, rwset, response, self.signer.node_id, self.signer.sign(message).hex())

    def execute(self, snapshot: Snapshot, proposal: Proposal) -> Endorsed | Refused:
        """Run one non-batched proposal on the snapshot and sign the outcome."""
        body = proposal.body
        fn = self.table.get(body["contract"], {}).get(body["fn"])
        if fn is None:
            return Refused(proposal.id, "UNKNOWN_FUNCTION", f"no function {body['contract']}.{body['fn']}")
        if not proposal.creator and body["contract"] not in UNSIGNED_OK:
            return Refused(proposal.id, "UNAUTHENTICATED", f"{body['contract']} needs a signed proposal")
        ctx = TxContext(snapshot, proposal.creator, proposal.id, self.env)
        try:
            response = fn(ctx, body["args"])
        except ContractError as exc:
            return Refused(proposal.id, exc.code, exc.message)
        rwset = rwset_of(ctx)
        return self._sign(proposal.id, rwset, response, result_digest(rwset, response))

    def endorse(self, snapshot: Snapshot, docs: list[object]) -> list[Endorsed | Refused]:
        """All three steps in this process (tests, tools)."""
        plan = self.plan(docs)
        outcome = self.run_items(plan, self.prefetch(snapshot, plan))
        return [self.finish(snapshot, plan, outcome, i) for i in range(len(plan.parsed))]
