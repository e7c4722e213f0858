"""`edgeprov demo`: the README's first command, a whole local fleet on one machine (issue 6 item 3).

Creates (or reuses) a fleet folder with tools/fleet.py, starts Mosquitto (TLS, ACLs), a 4-node
ledger with contracts and API, the gateway and N devices running the real firmware on the
MicroPython unix port, optionally the dashboard; prints progress read from the ledger (readings
committed per device, height, rejects) until Ctrl-C or `--duration`, stops everything, and prints
how to query and verify what this run produced.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from tools.fleet import FleetError, LocalFleet

PROGRESS_S = 2.0
DEVICE_KINDS = {
    "micropython": "real firmware on the MicroPython unix port",
    "cpython": "CPython reference devices (tools/simdevice.py: no MicroPython unix port on this host)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run a whole local fleet: broker, 4-node ledger, gateway, devices")
    p.add_argument("--devices", type=int, default=5, help="simulated devices (default 5)")
    p.add_argument("--dir", type=Path, default=Path("edgeprov-demo"), help="fleet folder, reused by a second run")
    p.add_argument("--wipe", action="store_true", help="delete the fleet folder first (new keys, empty ledger)")
    p.add_argument("--duration", type=float, default=0, help="stop after S seconds (default: run until Ctrl-C)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    p.add_argument("--interval-ms", type=int, default=1000, help="each device's reading interval (new folders)")
    p.set_defaults(func=cmd_demo)


def _ranges(ranges: list) -> str:
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges) or "-"


class Progress:
    """One line per interval: per-device committed counts, height, rejects and the committed rate."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None
        self.last: dict = {}

    def line(self, snap: dict) -> str:
        total = sum(d["count"] for d in snap["devices"].values())
        now = time.monotonic()
        if self.first is None:
            self.first = (now, total)
        elapsed = now - self.first[0]
        rate = (total - self.first[1]) / elapsed if elapsed > 0 else 0.0
        self.last = snap | {"total": total, "rate": rate}
        per_device = " ".join(f"{name}:{d['count']}" for name, d in snap["devices"].items())
        gw = snap["gateway"]
        rejects = int(gw.get("invalid", 0) + gw.get("refused", 0))
        return f"height {snap['height']:>5} | committed {total:>6} ({rate:5.1f}/s) | rejects {rejects} | {per_device}"


async def watch(fleet: LocalFleet, duration: float, progress: Progress) -> None:
    deadline = time.monotonic() + duration if duration > 0 else None
    async with fleet.api() as api:
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(PROGRESS_S if deadline is None else min(PROGRESS_S, deadline - time.monotonic()))
            dead = [c.name for c in fleet.group.dead()]
            if dead:
                raise FleetError(f"{', '.join(dead)} stopped; see {fleet.logs}")
            print(progress.line(await fleet.progress(api)), flush=True)


def summary(fleet: LocalFleet, progress: Progress) -> str:
    snap = progress.last
    if not snap:
        return "no progress was recorded"
    lines = [f"committed {snap['total']} readings ({snap['rate']:.1f}/s over the run), ledger height {snap['height']}"]
    lines += [f"  {name}: {d['count']} readings, counters {_ranges(d['ranges'])}, gaps {_ranges(d['gaps'])}"
              for name, d in snap["devices"].items()]  # fmt: skip
    example = next(((n, d) for n, d in snap["devices"].items() if d["ranges"]), None)
    if example is None:
        return "\n".join(lines)
    name, d = example
    record = f"{name}@{d['epoch']}#{d['ranges'][-1][1]}"
    node, nodes = fleet.state.api_urls[0], ",".join(fleet.state.api_urls)
    exe, root = Path(sys.executable).parent / "edgeprov", fleet.root
    lines += [
        "",
        f"What this run produced stays in {root}. To query it, run its ledger (another terminal, Ctrl-C stops it):",
        f"  {exe} ledger up --dir {root / 'ledger'}",
        "then:",
        f"  {exe} query --node {node} completeness {name}",
        f"  {exe} query --node {node} record '{record}'",
        f"  {exe} query --node {node} lineage '{record}'",
        f"  {exe} query --node {nodes} proof '{record}' --out proof.json && \\",
        f"    {exe} verify proof.json --nodes {fleet.nodes_file} --aa {root / 'aa'}",
        "Run the demo again to continue this fleet, or with --wipe to start over.",
    ]
    return "\n".join(lines)


def _interrupt(*_: object) -> None:
    """SIGTERM (a CI runner, `timeout`) stops the fleet as Ctrl-C does."""
    raise KeyboardInterrupt


def cmd_demo(args: argparse.Namespace) -> int:
    fleet = LocalFleet(args.dir)
    signal.signal(signal.SIGTERM, _interrupt)
    progress = Progress()
    try:
        if args.wipe:
            fleet.wipe()
        created = fleet.create(args.devices, args.interval_ms)
        print(f"{'created' if created else 'reusing'} fleet in {fleet.root}: {len(fleet.state.devices)} devices, "
              f"{DEVICE_KINDS[fleet.state.device_kind]}")  # fmt: skip
        print("starting Mosquitto (TLS, ACLs), 4 ledger nodes, registrations, gateway, devices ...", flush=True)
        url = fleet.start(dashboard=not args.no_dashboard)
        print(f"running; logs in {fleet.logs}" + (f"; dashboard: {url}" if url else ""))
        print("Ctrl-C stops everything" if args.duration <= 0 else f"stopping after {args.duration:.0f} s", flush=True)
        asyncio.run(watch(fleet, args.duration, progress))
    except KeyboardInterrupt:
        print("\nstopping ...")
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        fleet.stop()
    print(summary(fleet, progress))
    return 0
