"""Storage layer: provenance records (second seed paper §4.2). Internal: no function table.

A record is ⟨data point, inputs, context⟩ plus its id, creator, kind and validity (DESIGN.md §4),
stored under `rec|<id>`. Records are never deleted: `invalidate` marks one unusable as a future
input; `update` writes a new version that names the old one as its input. Each input becomes two
edge keys, `eb|<record>|<input>` and `ef|<input>|<record>`, so lineage walks are prefix scans whose
cost grows with the lineage, not with the store.
"""

from __future__ import annotations

from ledger_node.contracts import ContractError, check_record_id
from ledger_node.state import TxContext, key

MAX_INPUTS = 32


def record_key(record: str) -> str:
    return key("rec", record)


def read(ctx: TxContext, record: str) -> dict:
    doc = ctx.get(record_key(check_record_id(record)))
    if doc is None:
        raise ContractError("UNKNOWN_RECORD", f"record {record} does not exist")
    return doc


def check_inputs(ctx: TxContext, inputs: object) -> list[str]:
    """Inputs must exist and be valid (seed §4.2); reading them puts them in the read set, so an
    invalidation racing with their use makes one of the two an MVCC conflict."""
    if not isinstance(inputs, list) or len(inputs) > MAX_INPUTS:
        raise ContractError("BAD_ARGUMENT", f"inputs must be a list of at most {MAX_INPUTS} record ids")
    if len(set(map(str, inputs))) != len(inputs):
        raise ContractError("BAD_ARGUMENT", "inputs must be distinct")
    for record in inputs:
        if not read(ctx, record)["valid"]:
            raise ContractError("INVALID_INPUT", f"record {record} is invalidated and cannot be an input")
    return list(inputs)


def create(ctx: TxContext, record: str, doc: dict, inputs: list[str]) -> dict:
    """Write a new record and its lineage edges; `inputs` must already be checked."""
    if ctx.get(record_key(record)) is not None:
        raise ContractError("DUPLICATE_RECORD", f"record {record} already exists")
    full = {**doc, "id": record, "inputs": inputs, "valid": True, "proposal": ctx.proposal_id}
    ctx.put(record_key(record), full)
    for source in inputs:
        ctx.put(key("eb", record, source), {})
        ctx.put(key("ef", source, record), {})
    return full


def invalidate(ctx: TxContext, record: str, reason: str) -> dict:
    doc = read(ctx, record)
    if not doc["valid"]:
        raise ContractError("INVALID_RECORD", f"record {record} is already invalidated")
    updated = {**doc, "valid": False, "invalidated": {"by": ctx.creator, "reason": reason, "proposal": ctx.proposal_id}}
    ctx.put(record_key(record), updated)
    return updated
