"""Read-only queries over committed world state (issue 4 §3), shared by the API, the CLI and proofs.

Every query is point lookups plus prefix scans of one key family (ledger_node/state.py), so its
cost follows the size of the answer (records in a lineage, readings of a device), not the size of
the store. Answers are plain JSON-ready dicts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container
from itertools import pairwise

from ledger_node.app import get_states
from ledger_node.contracts import registry, storage
from ledger_node.endorsement.validator import attempt_key, status_key
from ledger_node.state import Snapshot, Stored, decode_value, get, key, scan

PAGE = 1000
MAX_DEPTH = 10_000
MAX_NODES = 20_000


def _with_meta(found: Stored, late_ms: int | None = None) -> dict:
    doc = {**found.value, "version": list(found.version), "committed_ms": found.ts_ms}
    if late_ms is not None and doc.get("kind") == "reading":
        doc["late"] = found.ts_ms - doc["ts_ms"] > late_ms
    return doc


def record(snapshot: Snapshot, record_id: str, late_ms: int) -> dict | None:
    found = get(snapshot, storage.record_key(record_id))
    return _with_meta(found, late_ms) if found else None


def tx_status(snapshot: Snapshot, proposal_id: str) -> dict:
    """committed (with height and index), invalid (every attempt with its reason code) or unknown."""
    return tx_statuses(snapshot, [proposal_id])[proposal_id]


def tx_statuses(snapshot: Snapshot, proposal_ids: list[str], undecided: Container[str] = ()) -> dict[str, dict]:
    """tx_status of many proposals: their `t|` keys in one read; attempts are scanned only for those
    not committed and not in `undecided` (proposals known to be in flight, whose answer is pending)."""
    keys = {pid: status_key(pid).encode() for pid in proposal_ids}
    found = get_states(snapshot, list(keys.values()))
    out = {}
    for pid, k in keys.items():
        if k in found:
            out[pid] = {"proposal_id": pid, "status": "committed", **decode_value(found[k]).value, "reason": ""}
            continue
        attempts = [] if pid in undecided else [s.value for _, s in scan(snapshot, attempt_key(pid, ""), 100)]
        if attempts:
            last = max(attempts, key=lambda a: (a["height"], a["index"]))
            out[pid] = {"proposal_id": pid, "status": "invalid", **last, "attempts": attempts}
        else:
            out[pid] = {"proposal_id": pid, "status": "unknown", "reason": ""}
    return out


def device(snapshot: Snapshot, device_id: str) -> dict | None:
    found = get(snapshot, registry.device_key(device_id))
    return _with_meta(found) if found else None


def data_point(snapshot: Snapshot, dp: str) -> dict | None:
    found = get(snapshot, key("dp", dp))
    if found is None:
        return None
    traces = {k.rsplit("|", 1)[1]: s.value for k, s in scan(snapshot, key("tr", dp, ""), PAGE)}
    return {**_with_meta(found), "traces": traces}


def history(snapshot: Snapshot, dp: str, trace: str, limit: int, after: int, late_ms: int) -> dict:
    """The records of one trace of a data point, oldest first, from sequence number `after` + 1."""
    start = key("hist", dp, trace, f"{after:010d}") if after >= 0 else ""
    rows = scan(snapshot, key("hist", dp, trace, ""), limit, start)
    records = [record(snapshot, s.value["record"], late_ms) for _, s in rows]
    return {"dp": dp, "trace": trace, "records": [r for r in records if r is not None]}


def lineage(snapshot: Snapshot, root: str, direction: str, depth: int, max_nodes: int, late_ms: int) -> dict:
    """Breadth-first walk over input edges: backward = where it came from, forward = what used it.

    Depth- and size-limited; `truncated` says whether a limit cut the walk short.
    """
    family = "eb" if direction == "backward" else "ef"
    first = record(snapshot, root, late_ms)
    if first is None:
        return {"root": root, "direction": direction, "nodes": {}, "edges": [], "truncated": False}
    nodes, edges = {root: _summary(first)}, []
    queue, truncated = deque([(root, 0)]), False
    while queue:
        current, level = queue.popleft()
        prefix = key(family, current, "")
        neighbours = [k[len(prefix) :] for k, _ in scan(snapshot, prefix, PAGE)]
        if neighbours and level >= depth:
            truncated = True
            continue
        for other in neighbours:
            edges.append([current, other] if direction == "backward" else [other, current])
            if other in nodes:
                continue
            if len(nodes) >= max_nodes:
                truncated = True
                continue
            found = record(snapshot, other, late_ms)
            nodes[other] = _summary(found) if found else {"missing": True}
            queue.append((other, level + 1))
    return {"root": root, "direction": direction, "nodes": nodes, "edges": edges, "truncated": truncated}


def _summary(doc: dict) -> dict:
    keep = ("kind", "dp", "trace", "creator", "valid", "flags", "context", "device", "ctr", "values", "late")
    return {k: doc[k] for k in keep if k in doc} | {"version": doc["version"], "committed_ms": doc["committed_ms"]}


def completeness(snapshot: Snapshot, device_id: str, epoch: int | None) -> dict | None:
    """Which counters of one device epoch are recorded: contiguous ranges and the gaps between them."""
    if epoch is None:
        entry = device(snapshot, device_id)
        if entry is None:
            return None
        epoch = entry["epoch"]
    prefix, after, ranges = key("cx", device_id, f"{epoch:010d}", ""), "", []
    while True:
        rows = scan(snapshot, prefix, PAGE, after)
        for k, _ in rows:
            ctr = int(k[len(prefix) :])
            if ranges and ranges[-1][1] + 1 == ctr:
                ranges[-1][1] = ctr
            else:
                ranges.append([ctr, ctr])
        if len(rows) < PAGE:
            break
        after = rows[-1][0]
    gaps = [[a[1] + 1, b[0] - 1] for a, b in pairwise(ranges)]
    count = sum(b - a + 1 for a, b in ranges)
    return {"device": device_id, "epoch": epoch, "count": count, "ranges": ranges, "gaps": gaps}


def verifications(snapshot: Snapshot, record_id: str) -> list[dict]:
    return [_with_meta(s) for _, s in scan(snapshot, key("vf", record_id, ""), PAGE)]
