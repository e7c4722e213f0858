"""Provenance Verification contract (first seed paper's validation flow; DESIGN.md §2 step 8).

`verify` {record}: re-checks a stored record on request and stores the outcome with who asked
(the creator key, or "anonymous" for an unsigned proposal) under `vf|<record>|<proposal id>`;
"when" is the commit time of that key. Checks:
- inclusion: the record is in committed state, at the (height, tx index) of its version;
- signature (readings): ABS-IOT-V1 against the Device Registration entry of the record's own
  epoch (`dep|<id>|<epoch>`, spec §3.6 step 0 for auditors), full equation, no caches;
- path (readings): every hop against its gateway's registered key;
- validity: not invalidated, and every input still exists and is valid.
Response and stored value: {record, asked_by, inclusion, signature, path, valid, ok}, where each
check is "ok", "n/a" or a reason.
"""

from __future__ import annotations

from ledger_node.contracts import ContractError, arg, check_record_id, readings, registry, storage
from ledger_node.state import TxContext, key

NAME = "verification"


def _reading_checks(ctx: TxContext, doc: dict) -> tuple[str, str]:
    args = {k: doc[k] for k in ("device", "epoch", "ctr", "ts_ms", "msg", "pd", "signature", "hops")}
    if doc.get("disclosed") is not None:
        args["disclosed"] = doc["disclosed"]
    reading = readings.parse(args)
    entry = ctx.get(registry.epoch_key(doc["device"], doc["epoch"]))
    if entry is None:
        return "no registration for the record's epoch", "n/a"
    reg = readings.RegistryEntry(doc["device"].encode(), entry["epoch"],
                                 registry.registry_policy(entry["policy"], ctx.env.mpk.d))  # fmt: skip
    try:
        readings.check_signature(readings.signature_reason(ctx, reading, entry, reg, readings.Verdicts()))
        signature = "ok"
    except ContractError as exc:
        signature = exc.code
    try:
        readings.check_path(ctx, reading, entry)
        path = "ok"
    except ContractError as exc:
        path = exc.code
    return signature, path


def _validity(ctx: TxContext, doc: dict) -> str:
    if not doc["valid"]:
        return "invalidated"
    for source in doc["inputs"]:
        found = ctx.get(storage.record_key(source))
        if found is None or not found["valid"]:
            return f"input {source} is missing or invalidated"
    return "ok"


def verify(ctx: TxContext, args: dict) -> dict:
    record = check_record_id(arg(args, "record", str))
    stored = ctx.stored(storage.record_key(record))
    if stored is None:
        raise ContractError("UNKNOWN_RECORD", f"record {record} does not exist")
    doc = stored.value
    signature, path = _reading_checks(ctx, doc) if doc["kind"] == "reading" else ("n/a", "n/a")
    result = {
        "record": record,
        "asked_by": ctx.creator or "anonymous",
        "inclusion": {"height": stored.version[0], "index": stored.version[1], "committed_ms": stored.ts_ms},
        "signature": signature,
        "path": path,
        "valid": _validity(ctx, doc),
    }
    result["ok"] = all(result[k] in ("ok", "n/a") for k in ("signature", "path", "valid"))
    ctx.put(key("vf", record, ctx.proposal_id), result)
    return result


FUNCTIONS = {"verify": verify}
