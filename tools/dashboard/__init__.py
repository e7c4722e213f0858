"""`edgeprov dashboard`: the operator's live view of the fleet and the ledger (issue 7, README.md here)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _split_urls(text: str) -> list[str]:
    return [u.strip() for u in text.split(",") if u.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dashboard", help="web dashboard: live fleet, readings, ledger health, lineage")
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker (omit to run without live readings)")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate of the broker's TLS listener")
    parser.add_argument("--username", help="the dashboard's own (read-only) broker account")
    parser.add_argument("--password", help="that account's password (visible in `ps`: prefer --password-file)")
    parser.add_argument("--password-file", type=Path, help="file holding that account's password (mode 0600)")
    parser.add_argument("--ledger", type=_split_urls, default=[], metavar="URL[,URL...]", help="ledger API URLs")
    parser.add_argument(
        "--metrics", type=_split_urls, default=[], metavar="URL[,URL...]", help="ledger nodes' Prometheus URLs"
    )
    parser.add_argument("--token-file", type=Path, help="bearer token (mode 0600) that enables writes")
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between ledger health polls")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from tools.dashboard.server import serve

    return serve(args)
