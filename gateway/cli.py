"""`edgeprov gateway run CONFIG` and `edgeprov gateway install`: the gateway service and its systemd unit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
from pathlib import Path

import tomli_w

from gateway.config import LedgerConfig

UNIT_TEMPLATE = Path(__file__).with_name("edgeprov-gateway.service")
UNIT_NAME = "edgeprov-gateway.service"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gateway", help="edge gateway: run the service, install it under systemd")
    sub = parser.add_subparsers(dest="gateway_command", required=True)

    p = sub.add_parser("run", help="run the gateway from its TOML config until SIGTERM/Ctrl-C")
    p.add_argument("config", type=Path)
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("install", help="write the systemd unit and a config (under --root, default /)")
    p.add_argument("--root", type=Path, default=Path("/"), help="install root (a staging dir for packaging/tests)")
    p.add_argument("--gateway", required=True, help="gateway id")
    p.add_argument("--user", default="edgeprov", help="dedicated system user the service runs as")
    p.add_argument("--broker", default="127.0.0.1:8883", help="MQTT broker host:port")
    p.add_argument("--ledger", action="append", default=[], help="a ledger node's API URL (repeatable, one per node)")
    p.add_argument("--exec", dest="exec_path", default=None, help="edgeprov executable (default: this one)")
    p.set_defaults(func=cmd_install)


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config
    from gateway.service import Gateway

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # ApiLink: one line per HTTP call drowns the log
    try:
        config = load_config(args.config)
        config.ledger.token()  # a bad token file is a configuration error, not a traceback later
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Gateway(config).run(stop)

    asyncio.run(main())
    return 0


def default_config(gateway: str, broker: str, ledger: list[str], etc: Path, state: Path) -> dict:
    host, _, port = broker.rpartition(":")
    return {
        "gateway": {
            "id": gateway,
            "key_file": str(etc / "gateway.key"),
            "devices_dir": str(etc / "devices"),
            "data_dir": str(state),
        },
        "mqtt": {
            "host": host,
            "port": int(port),
            "username": gateway,
            "password_file": str(etc / "mqtt.password"),
            "ca_file": str(etc / "ca.crt"),
        },
        "ledger": {
            "api_urls": ledger or ["http://127.0.0.1:7700"],
            "token_file": str(etc / "ledger.token"),
            "registry_poll_s": LedgerConfig.registry_poll_s,  # revocations reach the gateway within this (G1)
        },
    }


def render_unit(exec_path: str, config: Path, user: str, data_dir: Path) -> str:
    text = UNIT_TEMPLATE.read_text()
    fields = {"@EXEC@": exec_path, "@CONFIG@": str(config), "@USER@": user, "@DATA_DIR@": str(data_dir)}
    fields["@DOCS@"] = str(Path(__file__).with_name("README.md"))
    for key, value in fields.items():
        text = text.replace(key, value)
    return text


def cmd_install(args: argparse.Namespace) -> int:
    etc, state = Path("/etc/edgeprov"), Path("/var/lib/edgeprov-gateway")
    exec_path = args.exec_path or shutil.which("edgeprov") or str(Path(sys.executable).with_name("edgeprov"))
    unit_path = args.root / "etc/systemd/system" / UNIT_NAME
    config_path = args.root / etc.relative_to("/") / "gateway.toml"
    unit_path.parent.mkdir(parents=True, exist_ok=True)
    unit_path.write_text(render_unit(exec_path, etc / "gateway.toml", args.user, state))
    print(f"wrote {unit_path}")
    if config_path.exists():
        print(f"kept existing {config_path}")
    else:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(tomli_w.dumps(default_config(args.gateway, args.broker, args.ledger, etc, state)))
        print(f"wrote {config_path}")
    print(
        f"next: put gateway.key, mqtt.password, ca.crt, ledger.token and devices/ in {etc}\n"
        f"  (owned by {args.user}, mode 0600), then\n"
        f"  useradd --system --no-create-home {args.user}; systemctl daemon-reload; systemctl enable --now {UNIT_NAME}"
    )
    return 0
