"""Lineage interchange: W3C PROV-JSON (via the `prov` package) and an SVG picture (issue 4 §5).

Input is the lineage answer of `ledger_node.api.queries.lineage`::

    {"root": id, "direction": "backward" | "forward",
     "nodes": {record id: {"kind", "dp", "trace", "creator", "device", "gateway", "ctr", "values",
                           "valid", "committed_ms", ...} | {"missing": true}},
     "edges": [[record, input], ...], "truncated": bool}

PROV mapping (DESIGN.md §4): each record is an entity, created by one activity (its transaction)
that `used` the record's inputs; the record `wasGeneratedBy` that activity and `wasDerivedFrom`
each input. Devices, gateways and signing principals are agents: a record `wasAttributedTo` its
device (or creator), the activity `wasAssociatedWith` it and with the relaying gateway. Records are
`specializationOf` their data point, so parallel traces of one data point stay connected.
"""

from __future__ import annotations

import html
import json
import re
from collections import deque
from typing import Any
from urllib.parse import quote

from prov.model import ProvDocument

NAMESPACE = ("edgeprov", "https://edgeprov.dev/ns/prov#")
_SCALAR_FIELDS = ("kind", "dp", "trace", "device", "ctr", "valid", "committed_ms", "late")


class LineageError(ValueError):
    """A lineage graph that is not in the shape the API returns; the message says what is wrong."""


def _check(graph: Any) -> tuple[str, dict[str, dict], list[tuple[str, str]]]:
    if (
        not isinstance(graph, dict)
        or not isinstance(graph.get("nodes"), dict)
        or not isinstance(graph.get("edges"), list)
    ):
        raise LineageError("a lineage graph is {root, nodes: {id: record}, edges: [[record, input]]}")
    nodes = graph["nodes"]
    if not all(isinstance(k, str) and k and isinstance(v, dict) for k, v in nodes.items()):
        raise LineageError("nodes map non-empty record ids to objects")
    edges = []
    for edge in graph["edges"]:
        if not (isinstance(edge, list) and len(edge) == 2 and all(e in nodes for e in edge)):
            raise LineageError(f"edge {edge!r} is not [record, input] between listed nodes")
        edges.append((edge[0], edge[1]))
    root = graph.get("root")
    if root not in nodes and nodes:
        raise LineageError("the root is not among the nodes")
    return root, nodes, edges


def _qid(kind: str, name: str) -> str:
    # Record ids contain '@', '#' and '/', which are not QName characters; percent-encode them.
    return f"edgeprov:{kind}/{quote(name, safe='')}"


def to_prov(graph: dict) -> ProvDocument:
    _, nodes, edges = _check(graph)
    doc = ProvDocument()
    doc.add_namespace(*NAMESPACE)
    for rid, rec in nodes.items():
        attrs = {f"edgeprov:{k}": rec[k] for k in _SCALAR_FIELDS if isinstance(rec.get(k), str | int | bool)}
        attrs["edgeprov:record"] = rid
        if isinstance(rec.get("values"), dict):
            attrs["edgeprov:values"] = json.dumps(rec["values"], sort_keys=True)
        if rec.get("missing"):
            attrs["edgeprov:missing"] = True
        entity = doc.entity(_qid("record", rid), attrs)
        if isinstance(rec.get("dp"), str):
            doc.specializationOf(entity, doc.entity(_qid("dp", rec["dp"])))
        if rec.get("missing"):
            continue
        activity = doc.activity(_qid("create", rid))
        doc.wasGeneratedBy(entity, activity)
        for role, who in (("device", rec.get("device")), ("principal", rec.get("creator"))):
            if isinstance(who, str) and who:
                agent = doc.agent(_qid(role, who))
                doc.wasAttributedTo(entity, agent)
                doc.wasAssociatedWith(activity, agent)
        if isinstance(rec.get("gateway"), str) and rec["gateway"]:
            doc.wasAssociatedWith(activity, doc.agent(_qid("gateway", rec["gateway"])))
    for derived, source in edges:
        doc.used(_qid("create", derived), _qid("record", source))
        doc.wasDerivedFrom(_qid("record", derived), _qid("record", source), _qid("create", derived))
    return doc


def prov_json(graph: dict) -> str:
    """PROV-JSON text, checked by reading it back with `prov` (prov.read) before it is returned."""
    doc = to_prov(graph)
    text = doc.serialize(format="json")
    if ProvDocument.deserialize(content=text, format="json") != doc:
        raise LineageError("PROV-JSON does not round-trip through prov")  # a bug here, not bad input
    return text


# ---- SVG ---------------------------------------------------------------------------------------

_COL, _ROW, _BOX_W, _BOX_H, _PAD = 250, 64, 200, 46, 20
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FILL = {"reading": "#e3f2fd", "missing": "#eeeeee", "invalid": "#ffebee"}


def _layers(root: str, nodes: dict, edges: list[tuple[str, str]]) -> dict[str, int]:
    """Column of each node: hops from the root along edges (either way), so the root is left."""
    adjacent: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        adjacent[a].append(b)
        adjacent[b].append(a)
    level, queue = {}, deque()
    for start in [root, *nodes]:  # disconnected parts (should not happen) still get a column
        if start in nodes and start not in level:
            level[start] = 0 if start == root else max(level.values(), default=-1) + 1
            queue.append(start)
        while queue:
            current = queue.popleft()
            for other in adjacent[current]:
                if other not in level:
                    level[other] = level[current] + 1
                    queue.append(other)
    return level


def _text(value: str) -> str:
    """Escaped for XML, with the characters XML 1.0 cannot carry at all replaced."""
    return html.escape(_NOT_XML.sub("\ufffd", value))


def _label(rid: str, rec: dict) -> tuple[str, str]:
    kind = "missing" if rec.get("missing") else str(rec.get("kind", "record"))
    values = rec.get("values")
    detail = ", ".join(f"{k}={v}" for k, v in values.items()) if isinstance(values, dict) else str(rec.get("dp", ""))
    return (rid if len(rid) <= 30 else rid[:29] + "…"), (f"{kind}: {detail}"[:34])


def to_svg(graph: dict) -> str:
    """A left-to-right picture: the root on the left, each record pointing at the inputs it came from."""
    root, nodes, edges = _check(graph)
    level = _layers(root, nodes, edges)
    rows: dict[int, int] = {}
    pos = {}
    for rid in sorted(nodes, key=lambda r: (level[r], r)):
        col = level[rid]
        pos[rid] = (_PAD + col * _COL, _PAD + rows.get(col, 0) * _ROW)
        rows[col] = rows.get(col, 0) + 1
    width = _PAD * 2 + (max(rows, default=0)) * _COL + _BOX_W
    height = _PAD * 2 + max(rows.values(), default=1) * _ROW
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for derived, source in edges:
        (x1, y1), (x2, y2) = pos[derived], pos[source]
        start, end = (x1 + _BOX_W, x2) if x2 > x1 else (x1, x2 + _BOX_W)
        out.append(
            f'<line x1="{start}" y1="{y1 + _BOX_H // 2}" x2="{end}" y2="{y2 + _BOX_H // 2}" stroke="#555" '
            'marker-end="url(#arrow)"/>'
        )
    for rid, rec in nodes.items():
        x, y = pos[rid]
        title, line = _label(rid, rec)
        kind = "missing" if rec.get("missing") else "invalid" if rec.get("valid") is False else rec.get("kind")
        stroke = ' stroke-width="2.5"' if rid == root else ""
        out += [
            f'<g><title>{_text(rid)}</title><rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            f'fill="{_FILL.get(kind, "#f1f8e9")}" stroke="#333"{stroke}/>',
            f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{_text(title)}</text>',
            f'<text x="{x + 8}" y="{y + 35}">{_text(line)}</text></g>',
        ]
    if graph.get("truncated"):
        out.append(
            f'<text x="{_PAD}" y="{height - 4}" fill="#b00">truncated: a depth or size limit cut the walk</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
