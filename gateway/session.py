"""Per-device sessions (DESIGN.md §2 step 4): is this frame one the gateway may sign and relay?

Checks, cheapest first: frame size, topic shape and gateway, frame decoding, known device (G1),
topic id = frame id, registered epoch, the device's standing on the ledger's registry (G1, registry.py),
counter. Counters: a reading is unique by (id, epoch, ctr);
a lower unused counter is accepted (the device's offline buffer, §4 "Completeness"), a used one is
a duplicate when the frame is byte-identical and refused otherwise. Recent counters are kept in
memory (the replay window); older ones are looked up in the provenance DB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edgeprov import wire
from gateway.devices import DeviceKey
from gateway.refusal import Duplicate, Refused

Lookup = Callable[[str, int, int], Awaitable[bytes | None]]  # (device, epoch, ctr) -> frame digest
Standing = Callable[[DeviceKey], None]  # raises Refused for a device the ledger revoked or re-keyed


@dataclass(frozen=True)
class Admitted:
    device: DeviceKey
    reading: wire.Reading
    digest: bytes  # SHA-256 of the frame: tells a redelivery from a second reading with the same ctr


@dataclass
class CounterState:
    high: int = 0
    recent: dict[int, bytes] = field(default_factory=dict)  # ctr -> frame digest, ctr > high - window


class Sessions:
    def __init__(
        self,
        gateway_id: str,
        devices: dict[str, DeviceKey],
        max_frame: int,
        window: int,
        lookup: Lookup,
        standing: Standing | None = None,
    ):
        self.gateway_id, self.devices, self.max_frame, self.window = gateway_id, devices, max_frame, window
        self.lookup, self.standing = lookup, standing
        self.counters: dict[str, CounterState] = {}

    def preload(self, device: str, used: dict[int, bytes]) -> None:
        """Seed a device's window from the DB after a restart."""
        state = self.counters.setdefault(device, CounterState())
        state.recent.update(used)
        state.high = max([state.high, *used])

    def parse(self, topic: str, frame: bytes) -> tuple[DeviceKey, wire.Reading]:
        if len(frame) > self.max_frame:
            raise Refused("oversize", f"{len(frame)} bytes > {self.max_frame}")
        try:
            gateway, device_id, _ = wire.parse_topic(topic)
            reading = wire.Reading.decode(frame)
        except wire.WireError as exc:
            raise Refused("malformed", str(exc)) from None
        if gateway != self.gateway_id:
            raise Refused("wrong-gateway", f"topic names gateway {gateway!r}")
        device = self.devices.get(device_id)
        if device is None:
            raise Refused("unknown-device", device_id)
        if reading.device_id != device_id:
            raise Refused("topic-id-mismatch", f"topic {device_id!r}, frame {reading.device_id!r}")
        if reading.epoch != device.epoch:
            raise Refused("epoch", f"frame epoch {reading.epoch}, registered epoch {device.epoch}")
        if self.standing is not None:
            self.standing(device)
        return device, reading

    async def admit(self, topic: str, frame: bytes) -> Admitted:
        """Parse and check one frame; raise Refused or Duplicate. Claims the counter on success."""
        device, reading = self.parse(topic, frame)
        digest = hashlib.sha256(frame).digest()
        state = self.counters.setdefault(device.device_id, CounterState())
        seen = state.recent.get(reading.ctr)
        if seen is None and reading.ctr <= state.high - self.window:
            seen = await self.lookup(device.device_id, device.epoch, reading.ctr)
        if seen == digest:
            raise Duplicate(device.device_id, reading.epoch, reading.ctr)
        if seen is not None:
            raise Refused("counter-used", f"ctr {reading.ctr} already carried another reading")
        self.claim(state, reading.ctr, digest)
        return Admitted(device, reading, digest)

    def release(self, device: str, ctr: int) -> None:
        """Undo a claim whose reading could not be stored, so the broker's redelivery is not a duplicate."""
        self.counters[device].recent.pop(ctr, None)

    def claim(self, state: CounterState, ctr: int, digest: bytes) -> None:
        state.recent[ctr] = digest
        if ctr > state.high:
            state.high = ctr
            floor = ctr - self.window
            if len(state.recent) > 2 * self.window:  # amortised trim, not on every reading
                state.recent = {c: d for c, d in state.recent.items() if c > floor}
