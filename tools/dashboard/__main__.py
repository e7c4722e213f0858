"""`python -m tools.dashboard ARGS` = `edgeprov dashboard ARGS`, for tests and the demo's child process."""

from __future__ import annotations

import argparse
import sys

from tools.dashboard import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dashboard")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dashboard", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
