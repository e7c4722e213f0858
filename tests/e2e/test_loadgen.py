"""The load generator against a real LocalFleet: its readings commit on the 4-node ledger.

Fleet: Mosquitto with TLS and ACLs, gateway (ApiLink), 4 ledger nodes with contracts; no
firmware processes run, two devices are driven by tools/loadgen.py with their own keys and
broker accounts, from two worker processes. Shows that every reading the load generator
publishes gets ACK_COMMITTED, that the ledger holds exactly those counters for each device
(completeness query: one contiguous range from 1, no gaps), and that pre-signing reserved the
counters on disk (the device record's ctr advanced past them, spec §4 D2). Nothing is timed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.device import DeviceSigner
from tools import loadgen
from tools.fleet import LocalFleet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE, DURATION = 4.0, 2.0


@pytest.fixture
def idle_fleet(tmp_path: Path):
    """A fleet with no firmware running: the load generator alone drives its devices."""
    fleet = LocalFleet(tmp_path / "fleet")
    fleet.create(devices=2, device_kind="cpython")
    try:
        fleet.start(devices=[])
        yield fleet
    finally:
        fleet.stop()


def _record_ctr(folder: Path) -> int:
    bundle = DeviceBundle.decode((folder / "device.bundle").read_bytes())
    return DeviceSigner(bundle, folder / "device.record").record.ctr


async def _completeness(fleet: LocalFleet, device: str) -> dict:
    async with fleet.api() as api:
        return await api.completeness(device)


@pytest.mark.timeout(120)
def test_loadgen_readings_commit(idle_fleet: LocalFleet) -> None:
    fleet = idle_fleet
    devices = loadgen.fleet_devices(fleet)
    load = loadgen.Load(RATE, DURATION, drain_s=30.0)
    result = loadgen.run_load(loadgen.fleet_broker(fleet), devices, load, procs=2)
    summary = result.summary()

    per_device = int(RATE * DURATION)
    assert summary["published"] == per_device * len(devices)
    assert summary["committed"] == summary["published"], summary
    assert summary["rejected"] == summary["no_outcome"] == summary["skipped_at_device_limit"] == 0
    assert all(s.outcome_s > 0 and s.relay_s is not None and s.relay_s <= s.outcome_s for s in result.samples)
    for device in devices:
        assert _record_ctr(device.folder) == per_device
        held = asyncio.run(_completeness(fleet, device.device_id))
        assert held["ranges"] == [[1, per_device]], held
