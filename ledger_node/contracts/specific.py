"""Specific provenance layer (second seed paper §4.4): what every use-case contract shares.

A use case fixes its context schema (a `check_context(trace, context) -> flags` function) and who
may mint data points. Minting policies (seed §4.4): "allowlist" (the admin and listed clients mint
directly) and "pending" (a client asks, the admin approves or denies). State: `uc|<name>` =
{admin, policy, issued_at_ms}; `ucl|<name>|<client>` allow-list entries; `ucr|<name>|<dp>` =
{requester, status}.

The attribute authority designates the admin with a signed grant (edgeprov.admin_grant), checked
with the authority key in the endorser's Env, so calling first wins nothing.

Functions (args → response), creator = the proposal's signing key:
- `setup` {grant}: once; the grant must be for this use case and name the creator; stores its
  admin, policy and issued_at_ms → {usecase, admin, policy}. Refusals: BAD_GRANT (missing or
  malformed), BAD_GRANT_SIGNATURE, WRONG_USECASE, NOT_GRANTEE (the creator is not the named
  admin), ALREADY_SET_UP.
- `transfer_admin` {grant}: hand-over, presented by the new admin: a grant newer than the stored
  one (issued_at_ms strictly greater, else STALE_GRANT) replaces admin and policy. Allow-list
  entries and pending requests stay; the old admin keeps no rights unless listed.
- `allow` / `disallow` {client}: admin only.
- `mint` {dp}: allow-list: mints to the creator; pending: files a request → {"pending": true}.
- `approve_request` / `deny_request` {dp}: admin only; approval mints to the requester.
- `record` {dp, trace, inputs, context}: a new record (derivation and lineage via inputs).
- `update` {record, context}: a new version on the same trace whose input is the old record.
- `invalidate` {record, reason}: marks a record unusable as a future input.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeprov.admin_grant import AdminGrant
from edgeprov.signed_doc import BadSignature
from ledger_node.contracts import (
    ContractError,
    Function,
    arg,
    check_dp,
    check_principal,
    generic,
    need_creator,
    storage,
)
from ledger_node.state import TxContext, key

MAX_CONTEXT_KEYS = 32
ContextCheck = Callable[[str, dict], list[str]]


def number(context: dict, name: str, low: float, high: float, required: bool = False) -> float | None:
    """A finite number within [low, high]; bools are not numbers."""
    value = context.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ContractError("BAD_CONTEXT", f"context.{name} must be a number in [{low}, {high}]")
    return value


def text(context: dict, name: str, required: bool = False, choices: tuple[str, ...] = ()) -> str | None:
    value = context.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 256 or (choices and value not in choices):
        allowed = f" one of {', '.join(choices)}" if choices else " 1..256 characters"
        raise ContractError("BAD_CONTEXT", f"context.{name} must be{allowed}")
    return value


def known_fields(context: object, allowed: set[str]) -> dict:
    if not isinstance(context, dict) or len(context) > MAX_CONTEXT_KEYS:
        raise ContractError("BAD_CONTEXT", "context must be an object of at most 32 fields")
    extra = sorted(set(context) - allowed)
    if extra:
        raise ContractError("BAD_CONTEXT", f"unknown context fields: {', '.join(extra)}")
    text(context, "agent", required=True)
    number(context, "time_ms", 0, 2**63)
    return context


def make_functions(name: str, check_context: ContextCheck) -> dict[str, Function]:
    """The function table of one use case."""
    uc_key = key("uc", name)

    def config(ctx: TxContext) -> dict:
        doc = ctx.get(uc_key)
        if doc is None:
            raise ContractError("NOT_SET_UP", f"use case {name} has no admin yet (call setup)")
        return doc

    def admin(ctx: TxContext) -> dict:
        doc = config(ctx)
        if need_creator(ctx) != doc["admin"]:
            raise ContractError("NOT_ADMIN", f"only the {name} admin may do this")
        return doc

    def granted(ctx: TxContext, args: dict) -> AdminGrant:
        """The AA-signed grant in args, for this use case and naming the proposal's creator."""
        creator = need_creator(ctx)
        if not isinstance(args.get("grant"), dict):
            raise ContractError("BAD_GRANT", "argument 'grant' must be an admin grant signed by the authority")
        try:
            grant = AdminGrant.verify(args["grant"], ctx.env.aa_key)
        except BadSignature as exc:
            raise ContractError("BAD_GRANT_SIGNATURE", str(exc)) from None
        except ValueError as exc:
            raise ContractError("BAD_GRANT", str(exc)) from None
        if grant.usecase != name:
            raise ContractError("WRONG_USECASE", f"the grant is for use case {grant.usecase}, not {name}")
        if grant.admin != creator:
            raise ContractError("NOT_GRANTEE", "the grant names another admin; its admin must sign the proposal")
        return grant

    def install(ctx: TxContext, grant: AdminGrant) -> dict:
        ctx.put(uc_key, {"admin": grant.admin, "policy": grant.policy, "issued_at_ms": grant.issued_at_ms})
        return {"usecase": name, "admin": grant.admin, "policy": grant.policy}

    def setup(ctx: TxContext, args: dict) -> dict:
        grant = granted(ctx, args)
        if ctx.get(uc_key) is not None:
            raise ContractError("ALREADY_SET_UP", f"use case {name} already has an admin (hand over: transfer_admin)")
        return install(ctx, grant)

    def transfer_admin(ctx: TxContext, args: dict) -> dict:
        grant = granted(ctx, args)
        if grant.issued_at_ms <= config(ctx).get("issued_at_ms", 0):  # 0: set up before grants were dated
            raise ContractError("STALE_GRANT", "a hand-over needs a grant issued after the current admin's")
        return install(ctx, grant)

    def allow(ctx: TxContext, args: dict, allowed: bool = True) -> dict:
        admin(ctx)
        client = check_principal(arg(args, "client", str))
        ctx.put(key("ucl", name, client), {"allowed": allowed})
        return {"usecase": name, "client": client, "allowed": allowed}

    def mint(ctx: TxContext, args: dict) -> dict:
        dp = check_dp(arg(args, "dp", str))
        doc, creator = config(ctx), need_creator(ctx)
        if doc["policy"] == "pending" and creator != doc["admin"]:
            request_key = key("ucr", name, dp)
            if ctx.get(generic.dp_key(dp)) is not None or (ctx.get(request_key) or {}).get("status") == "pending":
                raise ContractError("DATA_POINT_EXISTS", f"{dp} exists or is already requested")
            ctx.put(request_key, {"requester": creator, "status": "pending"})
            return {"dp": dp, "pending": True}
        listed = (ctx.get(key("ucl", name, creator)) or {}).get("allowed")
        if creator != doc["admin"] and not listed:
            raise ContractError("NOT_ALLOWED", f"{creator[:16]}… is not on the {name} minting allow-list")
        return generic.mint(ctx, dp, creator, name)

    def decide(ctx: TxContext, args: dict, approve: bool) -> dict:
        admin(ctx)
        dp = check_dp(arg(args, "dp", str))
        request_key = key("ucr", name, dp)
        request = ctx.get(request_key)
        if request is None or request["status"] != "pending":
            raise ContractError("NO_REQUEST", f"no pending mint request for {dp}")
        ctx.put(request_key, {**request, "status": "approved" if approve else "denied"})
        if approve:
            return generic.mint(ctx, dp, request["requester"], name)
        return {"dp": dp, "denied": True}

    def record(ctx: TxContext, args: dict) -> dict:
        trace = check_dp(arg(args, "trace", str, "main"), "trace")
        context = arg(args, "context", dict)
        flags = check_context(trace, context)
        full = generic.add_record(ctx, arg(args, "dp", str), trace, arg(args, "inputs", list, []),
                                  {"context": context, "flags": flags}, name)  # fmt: skip
        return {"record": full["id"], "flags": flags}

    def update(ctx: TxContext, args: dict) -> dict:
        old = storage.read(ctx, arg(args, "record", str))
        if old.get("kind") != "generic":
            raise ContractError("BAD_ARGUMENT", "only generic records have versions")
        context = arg(args, "context", dict)
        flags = check_context(old["trace"], context)
        fields = {"context": context, "flags": flags, "updates": old["id"]}
        full = generic.add_record(ctx, old["dp"], old["trace"], [old["id"]], fields, name)
        return {"record": full["id"], "flags": flags, "updates": old["id"]}

    def invalidate(ctx: TxContext, args: dict) -> dict:
        reason = arg(args, "reason", str)
        if not 1 <= len(reason) <= 256:
            raise ContractError("BAD_ARGUMENT", "reason must be 1..256 characters")
        return {"record": generic.invalidate(ctx, arg(args, "record", str), reason)["id"], "valid": False}

    return {
        "setup": setup,
        "transfer_admin": transfer_admin,
        "allow": allow,
        "disallow": lambda ctx, args: allow(ctx, args, False),
        "mint": mint,
        "approve_request": lambda ctx, args: decide(ctx, args, True),
        "deny_request": lambda ctx, args: decide(ctx, args, False),
        "record": record,
        "update": update,
        "invalidate": invalidate,
    }
