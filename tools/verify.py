"""`edgeprov verify BUNDLE --nodes NODES --aa AA`: check a proof bundle offline (ledger_node/PROOFS.md).

Knows only the node public keys (a node config written by `edgeprov ledger init-cluster`, or the
public-only export `edgeprov verify --export-nodes CONFIG OUT`) and the authority's public file
(`authority.json` from `edgeprov authority setup`). Never opens a network connection.
Exit status: 0 every check passed, 1 some check failed, 2 the inputs could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ledger_node.config import load_config
from ledger_node.proof import AuthorityKeys, BundleError, Check, NodeSet, parse_bundle, verify_bundle
from tools.authority import Authority, AuthorityError


def load_nodes(path: Path) -> NodeSet:
    """A node's TOML config (its [[nodes]] public keys and chain id) or a public-only nodes JSON."""
    if path.suffix == ".toml":
        config = load_config(path)
        return NodeSet(config.chain_id, tuple(p.public_key for p in sorted(config.nodes, key=lambda p: p.node_id)))
    try:
        return NodeSet.from_json(json.loads(path.read_text()))
    except ValueError as exc:
        raise BundleError(f"{path}: {exc}") from None


def load_authority(path: Path) -> AuthorityKeys:
    if not path.is_dir() and path.name != "authority.json":
        raise BundleError(f"{path}: pass the authority directory or its authority.json")
    aa = Authority.load(path if path.is_dir() else path.parent)
    return AuthorityKeys(aa.mpk, aa.signing_public)


def _label(check: Check) -> str:
    return "FAIL" if not check.ok else "skip" if check.skipped else "ok  "


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"  {_label(c)}  {c.name:<{width}}  {c.detail}" for c in checks]
    failed = sum(not c.ok for c in checks)
    verdict = "VERIFIED: every check passed" if not failed else f"REJECTED: {failed} of {len(checks)} checks failed"
    return "\n".join([*lines, verdict])


def _main(args: argparse.Namespace) -> int:
    try:
        if args.export_nodes:
            config, out = args.export_nodes
            out.write_text(json.dumps(load_nodes(config).to_json(), indent=2) + "\n")
            print(f"public node keys written to {out}")
            return 0
        if args.bundle is None or args.nodes is None or args.aa is None:
            raise BundleError("BUNDLE, --nodes and --aa are required")
        checks = verify_bundle(parse_bundle(args.bundle.read_bytes()), load_nodes(args.nodes), load_authority(args.aa))
    except (OSError, BundleError, AuthorityError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ok = all(c.ok for c in checks)
    if args.json:
        print(json.dumps({"verified": ok, "checks": [c.__dict__ for c in checks]}, indent=2))
    else:
        print(render(checks))
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("verify", help="verify a proof bundle offline (node keys and AA public key only)")
    parser.add_argument("bundle", type=Path, nargs="?", help="proof bundle JSON")
    parser.add_argument("--nodes", type=Path, help="node config TOML or public nodes JSON (the trusted node set)")
    parser.add_argument("--aa", type=Path, help="authority directory or its authority.json")
    parser.add_argument("--json", action="store_true", help="machine-readable result")
    parser.add_argument(
        "--export-nodes", nargs=2, type=Path, metavar=("CONFIG", "OUT"), help="write a public-only nodes file"
    )
    parser.set_defaults(func=_main)


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.verify ...`: the same command without loading every other role's CLI."""
    parser = argparse.ArgumentParser(prog="edgeprov")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["verify", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
