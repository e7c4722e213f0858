"""The dashboard's in-memory fleet model: devices, their recent readings, counter gaps and live events.

Fed by the MQTT subscriber (DESIGN.md §5 topics) and read by the web app. Nothing here is
authoritative: the ledger's completeness query (DESIGN.md §4) is; this is what the broker showed
the dashboard since it started, kept small (a ring of recent readings per device).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from edgeprov.wire import ACK_COMMITTED, ACK_REJECTED, ACK_RELAYED, STATUS_OFFLINE, STATUS_ONLINE, Ack, Reading

# Alarm bands per value name, in milli-units as on the wire: the vaccine cold chain's 2–8 °C.
BANDS: dict[str, tuple[int, int]] = {"temp_c": (2_000, 8_000)}
ACK_NAMES = {ACK_RELAYED: "relayed", ACK_COMMITTED: "committed", ACK_REJECTED: "rejected"}
RECENT_READINGS = 500
EVENT_QUEUE = 1_000


def now_ms() -> int:
    return int(time.time() * 1000)


def excursions(values: dict[str, int]) -> list[str]:
    """Names of the values outside their band (the cold chain's excursions)."""
    return [name for name, v in values.items() if name in BANDS and not BANDS[name][0] <= v <= BANDS[name][1]]


@dataclass
class ReadingView:
    """One reading as seen on the broker, and what the gateway's acks said about it since."""

    gateway: str
    device: str
    epoch: int
    ctr: int
    ts_ms: int
    received_ms: int
    values: dict[str, int]
    inputs: list[str]
    excursions: list[str]
    status: str = "published"
    reason: str = ""
    status_ms: int = 0

    @property
    def key(self) -> tuple[str, int, int]:
        return self.device, self.epoch, self.ctr


def missing_counters(seen: set[int], limit: int = 20) -> tuple[list[list[int]], int]:
    """Gaps in 1..max(seen) as inclusive [first, last] ranges (at most `limit`), and the missing count."""
    ranges: list[list[int]] = []
    missing, expected = 0, 1
    for ctr in sorted(seen):
        if ctr > expected:
            missing += ctr - expected
            if len(ranges) < limit:
                ranges.append([expected, ctr - 1])
        expected = ctr + 1
    return ranges, missing


@dataclass
class DeviceView:
    gateway: str
    device: str
    online: bool | None = None  # None: no retained status seen yet
    status_ms: int = 0
    epoch: int = 0
    counters: set[int] = field(default_factory=set)
    readings: deque[ReadingView] = field(default_factory=lambda: deque(maxlen=RECENT_READINGS))

    def summary(self) -> dict:
        gaps, missing = missing_counters(self.counters)
        last = self.readings[-1] if self.readings else None
        return {
            "gateway": self.gateway,
            "device": self.device,
            "online": self.online,
            "status_ms": self.status_ms,
            "epoch": self.epoch,
            "readings_seen": len(self.counters),
            "max_ctr": max(self.counters, default=0),
            "gaps": gaps,
            "missing": missing,
            "last": asdict(last) if last else None,
        }


class Fleet:
    """Devices keyed by (gateway, device); every change is also pushed to the live subscribers."""

    def __init__(self) -> None:
        self.devices: dict[tuple[str, str], DeviceView] = {}
        self.malformed = 0
        self.broker = {"connected": False, "error": "", "since_ms": now_ms()}
        self._subscribers: set[asyncio.Queue] = set()

    def _device(self, gateway: str, device: str) -> DeviceView:
        return self.devices.setdefault((gateway, device), DeviceView(gateway, device))

    def on_status(self, gateway: str, device: str, payload: bytes) -> None:
        """Retained status / last will (DESIGN.md §5): `online` or `offline`; anything else is malformed."""
        if payload not in (STATUS_ONLINE, STATUS_OFFLINE):
            self.on_malformed()
            return
        view = self._device(gateway, device)
        view.online, view.status_ms = payload == STATUS_ONLINE, now_ms()
        self.publish("device", view.summary())

    def on_reading(self, gateway: str, device: str, reading: Reading) -> ReadingView | None:
        if reading.device_id != device:
            self.on_malformed()  # a frame whose id disagrees with its topic is not this device's reading
            return None
        view = self._device(gateway, device)
        if reading.epoch > view.epoch:
            view.epoch, view.counters = reading.epoch, set()
        values = dict(reading.payload.values)
        item = ReadingView(
            gateway, device, reading.epoch, reading.ctr, reading.ts_ms, now_ms(), values,
            [ref.decode("ascii", "replace") for ref in reading.payload.inputs], excursions(values),
        )  # fmt: skip
        if reading.epoch == view.epoch:
            view.counters.add(reading.ctr)
        view.readings.append(item)
        self.publish("reading", asdict(item))
        self.publish("device", view.summary())
        return item

    def on_ack(self, gateway: str, device: str, ack: Ack) -> None:
        view = self.devices.get((gateway, device))
        item = view and self.find(device, ack.epoch, ack.ctr)
        if not item:
            return
        item.status, item.reason, item.status_ms = ACK_NAMES[ack.status], ack.reason, now_ms()
        self.publish("ack", asdict(item))

    def on_malformed(self) -> None:
        self.malformed += 1

    def set_broker(self, connected: bool, error: str = "") -> None:
        self.broker = {"connected": connected, "error": error, "since_ms": now_ms()}
        self.publish("broker", self.broker)

    def find(self, device: str, epoch: int, ctr: int) -> ReadingView | None:
        for view in self.devices.values():
            if view.device == device:
                for item in reversed(view.readings):
                    if item.key == (device, epoch, ctr):
                        return item
        return None

    def readings(self, device: str) -> list[dict]:
        return [asdict(r) for view in self.devices.values() if view.device == device for r in view.readings]

    def snapshot(self) -> dict:
        devices = sorted(self.devices.values(), key=lambda v: (v.gateway, v.device))
        return {
            "broker": self.broker,
            "malformed": self.malformed,
            "bands": BANDS,
            "devices": [v.summary() for v in devices],
        }

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(EVENT_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def publish(self, kind: str, data: dict) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # a slow browser loses its oldest events, never stalls the subscriber
            queue.put_nowait((kind, data))
