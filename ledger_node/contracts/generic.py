"""Generic provenance layer (second seed paper §4.3): data-point ownership, traces, lineage rules.

Data points are tokens (ERC-721 style): `dp|<dp>` = {dp, owner, approved, usecase}. Only the owner,
the party it approved for that data point, or an operator it approved for all its data points may
add provenance, transfer or invalidate (seed §4.3.1). Each data point has parallel traces
`tr|<dp>|<trace>` = {head, length} (seed §4.3.2); a record's id is `<dp>/<trace>/<n>` and
`hist|<dp>|<trace>|<n>` indexes it for history queries. Adding to a trace reads its head, so two
concurrent additions to one trace conflict (one commits) while parallel traces never do.

Exposed functions (creator = the proposal's signing key, hex):
- `transfer` {dp, to}: owner, approved party or operator; clears the approval.
- `approve` {dp, to} (to "" clears): owner or operator.
- `set_operator` {operator, approved: bool}: for all of the creator's data points.
Minting and record creation are internal: the specific use-case contracts call them with their
own minting policy and context schema (seed §4.4).
"""

from __future__ import annotations

from ledger_node.contracts import ContractError, arg, check_dp, check_principal, need_creator, storage
from ledger_node.state import TxContext, key

NAME = "generic"


def dp_key(dp: str) -> str:
    return key("dp", dp)


def operator_key(owner: str, operator: str) -> str:
    return key("op", owner, operator)


def data_point(ctx: TxContext, dp: str) -> dict:
    doc = ctx.get(dp_key(check_dp(dp)))
    if doc is None:
        raise ContractError("UNKNOWN_DATA_POINT", f"data point {dp} does not exist")
    return doc


def mint(ctx: TxContext, dp: str, owner: str, usecase: str) -> dict:
    if ctx.get(dp_key(check_dp(dp))) is not None:
        raise ContractError("DATA_POINT_EXISTS", f"data point {dp} already exists")
    doc = {"dp": dp, "owner": owner, "approved": "", "usecase": usecase}
    ctx.put(dp_key(dp), doc)
    return doc


def may_act(ctx: TxContext, doc: dict, who: str) -> bool:
    if who in (doc["owner"], doc["approved"]) and who:
        return True
    return bool((ctx.get(operator_key(doc["owner"], who)) or {}).get("approved"))


def require_right(ctx: TxContext, doc: dict) -> str:
    who = need_creator(ctx)
    if not may_act(ctx, doc, who):
        raise ContractError("NOT_OWNER", f"{who[:16]}… is neither the owner of {doc['dp']} nor approved by its owner")
    return who


def add_record(ctx: TxContext, dp: str, trace: str, inputs: object, fields: dict, usecase: str) -> dict:
    """Seed §4.3.2 Listing 2: the data point exists, the creator may act, inputs are valid."""
    doc = data_point(ctx, dp)
    if doc["usecase"] != usecase:
        raise ContractError("WRONG_USECASE", f"data point {dp} belongs to use case {doc['usecase']!r}")
    creator = require_right(ctx, doc)
    check_dp(trace, "trace")
    checked = storage.check_inputs(ctx, inputs)
    head_key = key("tr", dp, trace)
    head = ctx.get(head_key) or {"length": 0}
    n = head["length"]
    record = f"{dp}/{trace}/{n}"
    doc = {**fields, "kind": "generic", "dp": dp, "trace": trace, "creator": creator}
    full = storage.create(ctx, record, doc, checked)
    ctx.put(head_key, {"head": record, "length": n + 1})
    ctx.put(key("hist", dp, trace, f"{n:010d}"), {"record": record})
    return full


def invalidate(ctx: TxContext, record: str, reason: str) -> dict:
    doc = storage.read(ctx, record)
    if doc.get("kind") != "generic":
        raise ContractError("NOT_OWNER", "readings are invalidated by revoking their device, not by clients")
    require_right(ctx, data_point(ctx, doc["dp"]))
    return storage.invalidate(ctx, record, reason)


def transfer(ctx: TxContext, args: dict) -> dict:
    doc = data_point(ctx, arg(args, "dp", str))
    to = check_principal(arg(args, "to", str), "recipient")
    require_right(ctx, doc)
    ctx.put(dp_key(doc["dp"]), {**doc, "owner": to, "approved": ""})
    return {"dp": doc["dp"], "owner": to}


def approve(ctx: TxContext, args: dict) -> dict:
    doc = data_point(ctx, arg(args, "dp", str))
    to = arg(args, "to", str)
    if to:
        check_principal(to, "approved party")
    who = need_creator(ctx)
    if who != doc["owner"] and not (ctx.get(operator_key(doc["owner"], who)) or {}).get("approved"):
        raise ContractError("NOT_OWNER", f"only the owner of {doc['dp']} or its operator may approve")
    ctx.put(dp_key(doc["dp"]), {**doc, "approved": to})
    return {"dp": doc["dp"], "approved": to}


def set_operator(ctx: TxContext, args: dict) -> dict:
    owner = need_creator(ctx)
    operator = check_principal(arg(args, "operator", str), "operator")
    approved = arg(args, "approved", bool)
    ctx.put(operator_key(owner, operator), {"approved": approved})
    return {"owner": owner, "operator": operator, "approved": approved}


FUNCTIONS = {"transfer": transfer, "approve": approve, "set_operator": set_operator}
