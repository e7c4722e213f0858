"""The gateway follows the ledger's Device Registration (rule G1, spec abs-scheme.md §3.5; DESIGN.md).

G1: the gateway signs only for known, current devices. Its bundles (devices.py) say which devices it
serves and at which epoch; the ledger's registry (ledger_node/contracts/registry.py, `GET
/v1/devices/{device}`) says whether that epoch is still current. `RegistryFollower` asks for the
entry of every served device at start and then every `registry_poll_s`, and `standing()` turns an
entry into what the gateway does with the device's next reading:

- revoked on the ledger: refused as "revoked" (a revoked device stays revoked, any epoch);
- a ledger epoch above the bundle's (re-keyed, L5): refused as "stale-epoch", the ledger would refuse
  the old epoch anyway; the gateway needs the new bundle;
- the device unknown to the ledger, or the bundle's epoch not registered yet: relayed (the ledger
  answers UNKNOWN_DEVICE / STALE_EPOCH itself), logged once;
- the ledger unreachable: the last known standing is kept.

This is an early refusal only: the endorsers check the registry for every reading (readings.py:
REVOKED_DEVICE, STALE_EPOCH), so a reading the
gateway relays on stale knowledge is still refused by the ledger. Readings already in the outbox are
left to the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from gateway.devices import DeviceKey
from gateway.ledger_link import LedgerLink, LedgerUnavailable
from gateway.metrics import Metrics
from gateway.refusal import Refused

log = logging.getLogger("edgeprov.gateway.registry")


class Standing(Enum):
    """A served device as the ledger's registry last described it; the value is the metrics label."""

    UNSEEN = "unseen"  # no answer from the ledger yet: relayed
    ACTIVE = "active"
    UNREGISTERED = "unregistered"  # the ledger does not know the device: relayed, the ledger refuses it
    EPOCH_PENDING = "epoch-pending"  # the bundle's epoch is newer than the ledger's: relayed
    REVOKED = "revoked"
    STALE_EPOCH = "stale-epoch"


REFUSED = {Standing.REVOKED, Standing.STALE_EPOCH}


def standing(bundle_epoch: int, entry: dict | None) -> Standing:
    """What the ledger's current entry (None: no entry) means for a bundle of `bundle_epoch`."""
    if entry is None:
        return Standing.UNREGISTERED
    if entry["status"] == "revoked":
        return Standing.REVOKED
    if entry["epoch"] > bundle_epoch:
        return Standing.STALE_EPOCH
    if entry["epoch"] < bundle_epoch:
        return Standing.EPOCH_PENDING
    return Standing.ACTIVE


def checked(name: str, entry: object) -> dict | None:
    """The entry if it has what `standing` reads; an answer without it counts as no answer (state kept)."""
    if entry is None or (
        isinstance(entry, dict) and type(entry.get("epoch")) is int and isinstance(entry.get("status"), str)
    ):
        return entry
    raise ValueError(f"malformed registry entry for {name}: {str(entry)[:200]}")


class RegistryFollower:
    """The served devices' standings, refreshed from the ledger; `check` is the session's G1 gate."""

    def __init__(
        self, link: LedgerLink, devices: dict[str, DeviceKey], metrics: Metrics, nodes: int, concurrency: int = 8
    ) -> None:
        self.link, self.devices, self.metrics, self.nodes = link, devices, metrics, nodes
        self.limit = asyncio.Semaphore(concurrency)
        self.standings = {name: Standing.UNSEEN for name in devices}
        self.ledger_epochs: dict[str, int] = {}
        self.reachable: bool | None = None  # None until the first round
        self._set_gauges()

    def check(self, device: DeviceKey) -> None:
        """Raise Refused when the ledger's registry says this device's readings must not be signed."""
        found = self.standings.get(device.device_id, Standing.UNSEEN)
        if found is Standing.REVOKED:
            raise Refused("revoked", f"{device.device_id} is revoked on the ledger", quiet=True)
        if found is Standing.STALE_EPOCH:
            ledger = self.ledger_epochs[device.device_id]
            raise Refused("stale-epoch", f"ledger epoch {ledger}, bundle epoch {device.epoch}", quiet=True)

    async def run(self, period_s: float) -> None:
        """Poll forever; the first round is `poll` at start (Gateway.run)."""
        while True:
            await asyncio.sleep(period_s)
            await self.poll()

    async def poll(self) -> None:
        """One round: every served device's entry; a device whose entry could not be read keeps its standing."""
        entries = await asyncio.gather(*(self._entry(name) for name in self.devices), return_exceptions=True)
        failed = [e for e in entries if isinstance(e, Exception)]
        for name, entry in zip(self.devices, entries, strict=True):
            if not isinstance(entry, Exception):
                self._learn(name, entry)
        self._set_reachable(len(failed) < len(entries) or not entries, failed)
        self._set_gauges()

    async def _entry(self, name: str) -> dict | None:
        """The device's current entry, on the link's node, trying each node once before giving up."""
        async with self.limit:
            for _ in range(self.nodes):
                try:
                    return checked(name, await self.link.registration(name))
                except LedgerUnavailable as exc:
                    error = exc
            raise error

    def _learn(self, name: str, entry: dict | None) -> None:
        device = self.devices[name]
        now, before = standing(device.epoch, entry), self.standings[name]
        if entry is not None:
            self.ledger_epochs[name] = entry["epoch"]
        self.standings[name] = now
        if now is before:
            return
        if now is Standing.REVOKED:
            log.warning("device %s is revoked on the ledger (epoch %d): refusing its readings", name, entry["epoch"])
        elif now is Standing.STALE_EPOCH:
            log.warning(
                "device %s was re-keyed: the ledger is at epoch %d, this gateway holds epoch %d; refusing its"
                " readings until the new gateway bundle is installed",
                name,
                entry["epoch"],
                device.epoch,
            )
        elif now is Standing.UNREGISTERED:
            log.warning("device %s is not registered on the ledger; relaying, the ledger decides", name)
        elif now is Standing.EPOCH_PENDING:
            log.warning("device %s epoch %d is not registered yet (ledger: %d); relaying", name, device.epoch,
                        entry["epoch"])  # fmt: skip
        else:
            log.info("device %s is %s on the ledger at epoch %d", name, now.value, device.epoch)

    def _set_reachable(self, reachable: bool, failed: list[Exception]) -> None:
        if failed:
            self.metrics.registry_failures.inc(len(failed))
        if not reachable and self.reachable is not False:
            log.warning("ledger registry unreachable (%s); keeping the last known device standings", failed[0])
        elif reachable and self.reachable is False:
            log.info("ledger registry reachable again")
        self.reachable = reachable

    def _set_gauges(self) -> None:
        for kind in Standing:
            count = sum(1 for s in self.standings.values() if s is kind)
            self.metrics.registry_devices.labels(kind.value).set(count)
