"""The `edgeprov` command: one entry point whose subcommands live with the role they drive.

Each module in COMMAND_MODULES exposes `register(subparsers)`, adding its subcommands with a
`func(args) -> int` default, so this file only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "tools.authority",
    "tools.bench",
    "ledger_node.cli",
    "tools.query",
    "tools.provision",
    "tools.flash",
    "tools.dashboard",
    "tools.verify",
    "gateway.cli",
    "tools.broker",
    "tools.loadgen",
    "tools.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeprov", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
