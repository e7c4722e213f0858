"""`edgeprov query ...`: every ledger query of the node API, human-readable or `--json`.

edgeprov query --node http://127.0.0.1:7700 record vacc1/main/2
edgeprov query lineage dp4/main/1 --direction backward --depth 10
edgeprov query history air1 --trace location
edgeprov query completeness dev-042 [--epoch 2]
edgeprov query datapoint vacc1 | device dev-042 | tx <proposal id> | block 12 | verifications <record>
edgeprov query --node URL0,URL1,URL2,URL3 proof dev-042@1#7 --out bundle.json   (f+1 attestations merged)
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import httpx

from ledger_node.api.client import ApiError, LedgerApi


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("query", help="query a ledger node's API (records, lineage, completeness, ...)")
    parser.add_argument("--node", default="http://127.0.0.1:7700", help="node API base URL(s), comma-separated")
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    sub = parser.add_subparsers(dest="query_command", required=True)
    for name, arg, help_text in (
        ("record", "id", "one provenance record"),
        ("verifications", "id", "stored provenance verifications of a record"),
        ("datapoint", "dp", "a data point: owner and traces"),
        ("device", "device", "a device's registration entry"),
        ("tx", "proposal_id", "transaction status and reason"),
    ):
        sub.add_parser(name, help=help_text).add_argument(arg)
    sub.add_parser("block", help="a committed block").add_argument("height", type=int)
    p = sub.add_parser("status", help="node height and endorsement quorum")
    p = sub.add_parser("lineage", help="lineage/derivation graph of a record")
    p.add_argument("id")
    p.add_argument("--direction", choices=("backward", "forward"), default="backward")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--prov", type=Path, help="also write the graph as W3C PROV-JSON to this file")
    p.add_argument("--svg", type=Path, help="also draw the graph as SVG to this file")
    p = sub.add_parser("history", help="the records of one trace of a data point")
    p.add_argument("dp")
    p.add_argument("--trace", default="main")
    p.add_argument("--limit", type=int, default=100)
    p = sub.add_parser("proof", help="a reading's proof bundle, attested by f+1 of the --node list")
    p.add_argument("id")
    p.add_argument("--out", type=Path, required=True, help="write the bundle here (for `edgeprov verify`)")
    p = sub.add_parser("completeness", help="counter ranges present for a device and the gaps")
    p.add_argument("device")
    p.add_argument("--epoch", type=int)
    parser.set_defaults(func=run)


async def fetch(args: argparse.Namespace) -> object:
    async with LedgerApi([u.strip().rstrip("/") for u in args.node.split(",")]) as api:
        match args.query_command:
            case "record":
                return await api.record(args.id)
            case "verifications":
                return await api.verifications(args.id)
            case "datapoint":
                return await api.data_point(args.dp)
            case "device":
                return await api.device(args.device)
            case "tx":
                return await api.tx_status(args.proposal_id)
            case "block":
                return await api.block(args.height)
            case "status":
                return await api.status()
            case "lineage":
                return await api.lineage(args.id, args.direction, args.depth, args.limit)
            case "history":
                return await api.history(args.dp, args.trace, args.limit)
            case "completeness":
                return await api.completeness(args.device, args.epoch)
            case "proof":
                return await api.proof_bundle(args.id)
    raise ValueError(args.query_command)


def human(command: str, answer: object) -> str:
    """A short readable rendering; --json gives everything."""
    if command == "lineage":
        lines = [f"{answer['direction']} lineage of {answer['root']}: {len(answer['nodes'])} records"]
        for rid, node in answer["nodes"].items():
            state = "valid" if node.get("valid", True) else "INVALIDATED"
            lines.append(f"  {rid}  [{node.get('kind', '?')}, {state}] {', '.join(node.get('flags') or [])}")
        lines += [f"  {a} <- {b}" for a, b in answer["edges"]]
        return "\n".join(lines + (["  (truncated by depth or limit)"] if answer["truncated"] else []))
    if command == "completeness":
        ranges = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in answer["ranges"]) or "none"
        gaps = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in answer["gaps"]) or "none"
        return f"{answer['device']} epoch {answer['epoch']}: {answer['count']} readings; present {ranges}; gaps {gaps}"
    if command == "history":
        rows = [f"  {r['id']}  {json.dumps(r.get('context', r.get('values')))}" for r in answer["records"]]
        return "\n".join([f"{answer['dp']} trace {answer['trace']}: {len(rows)} records", *rows])
    if command == "proof":
        attested = len(answer["record"]["result"]["attestations"])
        return f"proof bundle of block {answer['record']['header']['height']}, {attested} result attestations"
    if command == "tx":
        where = f" at height {answer['height']} index {answer['index']}" if answer.get("height") else ""
        return f"{answer['proposal_id']}: {answer['status']}{where} {answer.get('reason', '')}".rstrip()
    if isinstance(answer, dict):
        return "\n".join(f"{k}: {json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in answer.items())
    return json.dumps(answer, indent=2)


def run(args: argparse.Namespace) -> int:
    try:
        answer = asyncio.run(fetch(args))
    except ApiError as exc:
        print(f"error: {exc.detail}")
        return 1
    except httpx.TransportError as exc:
        print(f"error: cannot reach {args.node}: {exc}")
        return 2
    print(json.dumps(answer, indent=2, sort_keys=True) if args.json else human(args.query_command, answer))
    if args.query_command == "lineage":
        _export_lineage(answer, args.prov, args.svg)
    if args.query_command == "proof":
        args.out.write_text(json.dumps(answer, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _export_lineage(answer: dict, prov: Path | None, svg: Path | None) -> None:
    from ledger_node.lineage_export import prov_json, to_svg

    for path, render in ((prov, prov_json), (svg, to_svg)):
        if path is not None:
            path.write_text(render(answer))
            print(f"wrote {path}")
