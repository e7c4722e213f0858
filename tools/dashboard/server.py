"""Turn `edgeprov dashboard` arguments into Settings and serve the app with uvicorn."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from tools.dashboard.app import Settings, create_app
from tools.dashboard.subscriber import BrokerSettings


class SettingsError(ValueError):
    """A bad argument or secret file; the message says which and why (never the secret)."""


def split_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{what} {text!r} is not HOST:PORT")
    return host, int(port)


def read_secret(path: Path, what: str) -> str:
    """A secret file must be private (like ledger_node.config.load_private_key) and non-empty."""
    try:
        if path.stat().st_mode & 0o077:
            raise SettingsError(f"{what} {path} must not be readable by group or others (chmod 600)")
        secret = path.read_text().strip()
    except OSError as exc:
        raise SettingsError(f"{what} {path}: {exc.strerror}") from None
    if not secret:
        raise SettingsError(f"{what} {path} is empty")
    return secret


def settings_from(args: argparse.Namespace) -> Settings:
    broker = None
    if args.broker:
        password = read_secret(args.password_file, "password file") if args.password_file else args.password
        host, port = split_address(args.broker, "--broker")
        broker = BrokerSettings(host, port, args.username, password, args.tls_ca)
    token = read_secret(args.token_file, "token file") if args.token_file else None
    if args.poll_interval <= 0:
        raise SettingsError("--poll-interval must be positive")
    return Settings(broker, args.ledger, args.metrics, token, args.poll_interval)


def serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        host, port = split_address(args.listen, "--listen")
    except SettingsError as exc:
        print(f"edgeprov dashboard: {exc}")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(f"dashboard on http://{host}:{port}/ ({'writes need the token' if settings.token else 'read-only'})")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning"))
    server.run()
    return 0
