"""The Data Transfer contract for many readings at once, on prefetched state, away from the event loop.

Readings come as the items of reading batch proposals (readings.submit_batch) or as unsigned
readings.submit proposals (one item each). The node reads every state key they need in one query
(`readings.state_keys`) and hands the raw values with the items to this module, which runs in the
endorsement worker process (worker.py) or, without one, a thread. Here, with no access to the
node's store: every reading is parsed once, all ABS-IOT-V1 signatures are batch-verified together
(spec §3.7: grouped by pd, bisection isolates bad ones), then the contract runs per reading (path
hops, ledger rules) and each reading gets its own read/write set or its own refusal. A read of a
key that was not prefetched is never guessed: the reading is refused with STATE_NOT_PREFETCHED (a
bug in `readings.state_keys`, which lists every key the contract reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeprov.crypto import abs_iot
from ledger_node.contracts import ContractError, Env, readings
from ledger_node.endorsement.proposal import item_id, result_digest
from ledger_node.state import TxContext, canonical


class MissingState(LookupError):
    """Execution read a key the node did not prefetch."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.key = key


class Prefetched:
    """A Snapshot over the raw values read by the node (None: the key is absent from state)."""

    def __init__(self, values: dict[bytes, bytes | None]) -> None:
        self.values = values

    def get_state(self, key: bytes) -> bytes | None:
        if key not in self.values:
            raise MissingState(key)
        return self.values[key]

    def scan_state(self, prefix: bytes, limit: int, after: bytes = b"") -> list[tuple[bytes, bytes]]:
        raise MissingState(prefix)  # readings never scan; a contract that does is not batched


@dataclass
class Outcome:
    """Per item: `rwsets[k]` (None when refused) and `responses[k]` ({"id", "record"} or {"id", "code",
    "message"}); per span (a proposal's items) the digest its endorsement signs."""

    rwsets: list[dict | None] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)

    def single(self, k: int) -> tuple[dict | None, dict]:
        """Item k as a readings.submit proposal of its own: its rwset and response (no "id")."""
        return self.rwsets[k], {key: v for key, v in self.responses[k].items() if key != "id"}

    def batch(self, first: int, count: int) -> tuple[dict, dict]:
        """Items first..first+count-1 as one readings.submit_batch result: rwset and response."""
        rwsets, responses = self.rwsets[first : first + count], self.responses[first : first + count]
        return {"reads": [], "writes": [], "checks": {}, "items": rwsets}, {"items": responses}


Span = tuple[int, int, bool]  # a proposal's items: first, count, whether it is a batch


def rwset_of(ctx: TxContext, text_values: bool = False) -> dict:
    """The read/write set of one execution; `text_values`: write values as canonical JSON text (the
    form of reading batch items, proposal.py)."""
    writes = sorted(ctx.writes.items())
    return {
        "reads": [[k, None if v is None else list(v)] for k, v in sorted(ctx.reads.items())],
        "writes": [[k, canonical(v).decode()] for k, v in writes] if text_values else [[k, v] for k, v in writes],
        "checks": dict(ctx.checks),
    }


def execute_items(env: Env, items: list[tuple[dict, str]], values: dict[bytes, bytes | None],
                  spans: list[Span]) -> Outcome:  # fmt: skip
    """Run readings.submit for each (args, nonce) item on the prefetched `values`, signatures
    batch-verified, and digest each span's result (what its endorsement signs)."""
    snapshot = Prefetched(values)
    ids = [item_id(args, nonce) for args, nonce in items]
    parsed: dict[int, readings.Reading] = {}
    keys, jobs = [], []
    for k, (args, _) in enumerate(items):
        ctx = TxContext(snapshot, "", ids[k], env)
        try:
            reading = parsed[k] = readings.parse(args)
            entry, reg = readings.registry_entry(ctx, reading)
            readings.load_credential(ctx, reading, reg)
        except (ContractError, MissingState):
            continue  # execution below refuses it with its reason code
        keys.append(readings.verdict_key(reading, entry))
        jobs.append((reg, reading.record, reading.sig))
    rejected = abs_iot.batch_verify(env.mpk, jobs, env.credentials) if jobs else {}
    verdicts = readings.Verdicts((key, rejected.get(i, "")) for i, key in enumerate(keys))
    spans_batch = [batch for _, count, batch in spans for _ in range(count)]
    out = Outcome()
    for k, (args, _) in enumerate(items):
        ctx = TxContext(snapshot, "", ids[k], env)
        rwset, response = None, {"id": ids[k]}
        try:
            response |= _execute(ctx, parsed.get(k) or readings.parse(args), verdicts)
            rwset = rwset_of(ctx, text_values=spans_batch[k])
        except ContractError as exc:
            response |= {"code": exc.code, "message": exc.message}
        out.rwsets.append(rwset)
        out.responses.append(response)
    for first, count, is_batch in spans:
        rwset, response = out.batch(first, count) if is_batch else out.single(first)
        out.digests.append(result_digest(rwset, response) if rwset is not None else b"")
    return out


def _execute(ctx: TxContext, reading: readings.Reading, verdicts: readings.Verdicts) -> dict:
    try:
        return readings.execute(ctx, reading, verdicts)
    except MissingState as exc:
        raise ContractError("STATE_NOT_PREFETCHED", f"state key {exc.key!r} was not read ahead (node bug)") from None
