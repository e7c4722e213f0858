"""`edgeprov provision`: build a device folder from the authority's output (issue 5, firmware/README.md).

    <out>/config.json     0600: ids, epoch, broker and credentials, sensor, board, intervals
    <out>/board.json      0600: the board profile from hardware/boards/
    <out>/device.bundle   0600: K_iot and comb tables, from aa/issued/<device>/e<epoch>/
    <out>/device.record   0600: the device's fresh single-use record (spec §4), same place
    <out>/ca.pem          0600: the broker's CA certificate, with --tls-ca

The folder is what `edgeprov flash` copies to a board, and the working directory of a unix-port
device. A generated MQTT password is written only to config.json; it is never printed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from tools.authority import Authority, AuthorityError, checked_name, write_secret

BOARDS_DIR = Path(__file__).resolve().parents[1] / "hardware" / "boards"
CONFIG_VERSION = 1


def board_profile(name: str) -> dict:
    path = BOARDS_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BOARDS_DIR.glob("*.json")))
        raise AuthorityError(f"unknown board {name!r}; profiles: {known}")
    return json.loads(path.read_text())


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AuthorityError(f"--broker {text!r} must be HOST:PORT")
    return host, int(port)


def build_config(args: argparse.Namespace, epoch: int, profile: dict) -> dict:
    host, port = parse_broker(args.broker)
    if args.sensor not in profile["sensors"]:
        wired = ", ".join(sorted(profile["sensors"]))
        raise AuthorityError(f"board {profile['name']} has no wiring for sensor {args.sensor!r} (has: {wired})")
    if (args.wifi_ssid is None) == bool(profile["wifi"]):
        raise AuthorityError(f"board {profile['name']}: --wifi-ssid is {'required' if profile['wifi'] else 'not used'}")
    return {
        "version": CONFIG_VERSION,
        "device_id": args.device,
        "gateway_id": args.gateway,
        "epoch": epoch,
        "bundle": "device.bundle",
        "record": "device.record",
        "broker": {
            "host": host,
            "port": port,
            "tls": args.tls_ca is not None,
            "ca": "ca.pem" if args.tls_ca else None,
            "username": args.username or args.device,
            "password": args.password or secrets.token_urlsafe(24),
            "keepalive": args.keepalive,
        },
        "wifi": {"ssid": args.wifi_ssid, "password": args.wifi_password or ""} if args.wifi_ssid else None,
        "sensor": args.sensor,
        "board": profile["name"],
        "interval_ms": args.interval_ms,
        "pool_target": args.pool_target,
        "buffer_slots": args.buffer_slots,
        "buffer_slot_size": 400,
        "jacobian": False,
        "sim_seed": args.sim_seed,
    }


def cmd_provision(args: argparse.Namespace) -> int:
    aa = Authority.load(args.aa_dir)
    device = checked_name("device", args.device)
    checked_name("gateway", args.gateway)
    entry = aa.devices().get(device)
    if entry is None or entry["status"] != "active":
        raise AuthorityError(f"{device} has no active key; run `edgeprov authority keygen` first")
    if entry["gateway"] != args.gateway:
        raise AuthorityError(f"{device} is registered to gateway {entry['gateway']}, not {args.gateway}")
    issued = args.aa_dir / "issued" / device / f"e{entry['epoch']}"
    profile = board_profile(args.board)
    config = build_config(args, entry["epoch"], profile)
    out: Path = args.out
    if (out / "device.record").exists():
        raise AuthorityError(f"{out} already holds a device record; a record must never be provisioned twice")
    write_secret(out / "device.bundle", (issued / "device.bundle").read_bytes())
    write_secret(out / "device.record", (issued / "device.record").read_bytes())
    write_secret(out / "board.json", (json.dumps(profile, indent=2) + "\n").encode())
    if args.tls_ca:
        write_secret(out / "ca.pem", args.tls_ca.read_bytes())
    write_secret(out / "config.json", (json.dumps(config, indent=2) + "\n").encode())
    print(f"{device} epoch {entry['epoch']} ({args.board}, {args.sensor}) provisioned in {out}")
    if not args.password:
        user = config["broker"]["username"]
        print(f"a new MQTT password for user {user!r} is in {out / 'config.json'}; add it to the broker's passwords")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("provision", help="build a device folder (config, bundle, record) for flashing")
    p.add_argument("--aa-dir", type=Path, default=Path("aa"), help="authority directory (default ./aa)")
    p.add_argument("--device", required=True, help="device id issued by `authority keygen`")
    p.add_argument("--gateway", required=True, help="the device's gateway id (as registered)")
    p.add_argument("--broker", required=True, help="MQTT broker HOST:PORT")
    p.add_argument("--tls-ca", type=Path, help="CA certificate of the broker (enables TLS)")
    p.add_argument("--username", help="MQTT username (default: the device id)")
    p.add_argument("--password", help="MQTT password (default: a fresh random one)")
    p.add_argument("--sensor", required=True, help="sensor profile: sim_coldchain, ds18b20 or bme280")
    p.add_argument("--board", required=True, help="profile in hardware/boards/: esp32_devkitc, esp32_s3, pico_w, unix")
    p.add_argument("--wifi-ssid", help="WiFi network (boards)")
    p.add_argument("--wifi-password", help="WiFi password (boards)")
    p.add_argument("--interval-ms", type=int, default=10000, help="reading interval")
    p.add_argument("--keepalive", type=int, default=60, help="MQTT keepalive in seconds")
    p.add_argument("--pool-target", type=int, default=4, help="pool entries kept precomputed (224 B each)")
    p.add_argument("--buffer-slots", type=int, default=256, help="offline ring capacity in frames")
    p.add_argument("--sim-seed", type=int, default=1, help="seed of the simulated sensor")
    p.add_argument("--out", type=Path, required=True, help="device folder to create")
    p.set_defaults(func=_guarded)


def _guarded(args: argparse.Namespace) -> int:
    try:
        return cmd_provision(args)
    except (AuthorityError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
