"""`edgeprov loadgen`: many CPython devices publishing real signed readings at a set rate (issue 6 item 4).

Each simulated device uses the provisioned bundle and record of a real device of a LocalFleet
(tools/fleet.py), the CPython reference of the firmware's signing (edgeprov.crypto.device, spec §3.4 and §4), and its
own MQTT account, so the broker's ACLs, the gateway's sessions and the ledger's contracts treat it
exactly like a board. Signing is done before the timed part: every device reserves its pool
entries and counters in one record write (spec §4 D2: entries leave the record and ctr advances
on disk before any share is computed, so a crash leaves a counter gap, never a reuse), then
completes one share per scheduled reading with the timestamp it is scheduled for. The timed part
only publishes frames (edgeprov.wire, QoS 1) on schedule and timestamps the gateway's Acks
arriving on the device's `.../ack` topic.

What is measured, per reading, on one clock (time.time()) in the device's own process:

- relay latency: publish call -> ACK_RELAYED received (the gateway admitted and signed the
  reading and it is durable in its outbox);
- commit latency: publish call -> ACK_COMMITTED received (the gateway learnt from the ledger that
  the reading's block is committed, and published the Ack; see tools/bench/README.md).

Devices publish every 1/rate s at evenly staggered phases (device j of n starts j/n of a period
late), as independent devices would; in step, every slot would be a burst of n readings.

A device keeps at most `max_outstanding` readings without an outcome, like the firmware's
buffer: when a scheduled slot comes round with the limit reached, that slot is skipped and
counted, so overload shows as skipped slots and a bounded queue rather than a backlog that grows
for the rest of the run. Readings are pre-signed for the first slots (`max_frames` of them, by
default all) and used in order, so a skipped slot costs no signature and, under overload, a
reading's timestamp is that of an earlier slot than the one it is published in (never later:
the ledger refuses readings from the future, spec §3.6 L2). Readings pre-signed but never
published leave a counter gap before the next run's readings, as a crash would (D2): never a
reuse. One asyncio process drives many device connections; `procs` worker processes (spawned,
each with its share of the devices) reach higher rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import multiprocessing
import ssl
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from edgeprov import wire
from edgeprov.crypto.abs_iot import complete
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.device import DeviceSigner
from edgeprov.crypto.statement import Statement
from tools.fleet import GATEWAY, HOST, LocalFleet

COMMITTED, REJECTED, NO_OUTCOME = "committed", "rejected", "no-outcome"
SIGN_S_PER_READING = 0.0012  # measured: precompute + complete ≈ 1 ms; used only to plan the start time


@dataclass(frozen=True)
class Broker:
    """Where the devices connect: the broker's device listener (TLS exactly when `ca_file` is set)."""

    host: str
    port: int
    gateway: str
    ca_file: Path | None = None


@dataclass(frozen=True)
class Device:
    """One device account: a folder with its device.bundle and device.record, and its broker password."""

    device_id: str
    folder: Path
    password: str = field(repr=False)

    def signer(self) -> DeviceSigner:
        bundle = DeviceBundle.decode((self.folder / "device.bundle").read_bytes())
        return DeviceSigner(bundle, self.folder / "device.record")


@dataclass(frozen=True)
class Load:
    rate_per_device: float  # readings/s each device is scheduled to publish
    duration_s: float
    max_outstanding: int = 64  # readings without an outcome a device keeps before skipping slots
    max_frames: int | None = None  # pre-signed readings per device (default: one per slot)
    drain_s: float = 30.0  # after the schedule ends, how long to wait for outstanding outcomes


@dataclass(frozen=True)
class Sample:
    """One published reading: publish time (epoch s) and its latencies in s (None: no such Ack)."""

    sent: float
    relay_s: float | None
    outcome_s: float | None
    status: str


@dataclass
class Result:
    start: float
    load: Load
    devices: int
    samples: list[Sample] = field(default_factory=list)
    skipped: int = 0
    unsigned: int = 0  # slots after a device used up its pre-signed readings
    reject_reasons: Counter = field(default_factory=Counter)

    def merge(self, other: Result) -> None:
        self.samples += other.samples
        self.skipped += other.skipped
        self.unsigned += other.unsigned
        self.reject_reasons.update(other.reject_reasons)

    def summary(self) -> dict:
        """Figures over the scheduled window [start, start + duration]; latencies in ms."""
        end = self.start + self.load.duration_s
        window = [s for s in self.samples if s.sent <= end]
        committed = [s for s in window if s.status == COMMITTED]
        in_window = sum(1 for s in committed if s.sent + s.outcome_s <= end)
        latencies = sorted(s.outcome_s * 1000 for s in committed)
        relays = sorted(s.relay_s * 1000 for s in window if s.relay_s is not None)
        duration = self.load.duration_s
        return {
            "devices": self.devices,
            "rate_per_device": self.load.rate_per_device,
            "duration_s": duration,
            "offered_readings_per_s": round(self.devices * self.load.rate_per_device, 1),
            "published_readings_per_s": round(len(window) / duration, 1),
            "committed_readings_per_s": round(in_window / duration, 1),
            "published": len(window),
            "committed": len(committed),
            "rejected": sum(1 for s in window if s.status == REJECTED),
            "no_outcome": sum(1 for s in window if s.status == NO_OUTCOME),
            "skipped_at_device_limit": self.skipped,
            "slots_without_presigned_reading": self.unsigned,
            "reject_reasons": dict(self.reject_reasons),
            "latency_p50_ms": percentile(latencies, 0.50),
            "latency_p99_ms": percentile(latencies, 0.99),
            "latency_mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
            "relay_latency_p50_ms": percentile(relays, 0.50),
            "relay_latency_p99_ms": percentile(relays, 0.99),
        }


def percentile(ordered: list[float], q: float) -> float | None:
    return round(ordered[int(q * (len(ordered) - 1))], 2) if ordered else None


# ---- signing before the timed part ------------------------------------------------------------


def presign(signer: DeviceSigner, stamps: list[int], values: list[int]) -> list[tuple[int, bytes]]:
    """(ctr, frame) for readings at `stamps` (ms); all entries and counters reserved in one write (D2)."""
    count = len(stamps)
    missing = count - len(signer.record.entries)
    if missing > 0:
        signer.precompute(missing)
    record = signer.record
    entries, record.entries = record.entries[:count], record.entries[count:]
    first = record.ctr + 1
    record.ctr += count
    signer._persist()  # D2: reserved on disk before any share exists (DeviceSigner has no batch sign)
    bundle = signer.bundle
    device_id, pd = bundle.device_id.decode(), bundle.pds[0]
    frames = []
    for i, (entry, ts_ms, value) in enumerate(zip(entries, stamps, values, strict=True)):
        msg = wire.Payload.of({"temp": value}).encode()
        ctr = first + i
        stmt = Statement(bundle.aa_fp, pd, bundle.device_id, bundle.epoch, ctr, ts_ms, msg)
        share = complete(bundle.u1, entry, stmt.c).encode()
        frames.append((ctr, wire.Reading(device_id, bundle.epoch, ctr, ts_ms, msg, share).encode()))
    return frames


def _schedule(load: Load, start: float, phase: float = 0.0) -> list[float]:
    """Slot times of one device: every 1/rate s from `start`, shifted by `phase` (a fraction of a period)."""
    count = max(1, math.ceil(load.rate_per_device * load.duration_s))
    return [start + (k + phase) / load.rate_per_device for k in range(count)]


def _phases(count: int) -> list[float]:
    """Evenly staggered phases: independent devices do not publish in step, and a common phase would
    turn every slot into a burst of `count` readings at the same instant."""
    return [j / count for j in range(count)]


# ---- the timed part -------------------------------------------------------------------------------


class _DeviceRun:
    """One device's connection: publishes its frames on schedule and records its Acks."""

    def __init__(self, broker: Broker, device: Device, frames: list[tuple[int, bytes]], load: Load,
                 phase: float) -> None:  # fmt: skip
        self.broker, self.device, self.frames, self.load, self.phase = broker, device, frames, load, phase
        self.topic = wire.topic(broker.gateway, device.device_id, "reading")
        self.sent: dict[int, float] = {}  # ctr -> publish time, outcome pending
        self.relayed: dict[int, float] = {}
        self.samples: list[Sample] = []
        self.skipped = self.unsigned = 0
        self.reasons: Counter = Counter()
        self.settled = asyncio.Event()

    def client(self) -> aiomqtt.Client:
        ca = self.broker.ca_file
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.device.device_id,
            password=self.device.password,
            identifier=f"loadgen-{self.device.device_id}",
            tls_context=ssl.create_default_context(cafile=str(ca)) if ca else None,
            max_inflight_messages=max(20, self.load.max_outstanding),
        )

    async def run(self, client: aiomqtt.Client, start: float) -> None:
        await client.subscribe(wire.topic(self.broker.gateway, self.device.device_id, "ack"), qos=1)
        listener = asyncio.create_task(self._listen(client))
        publishes: set[asyncio.Task] = set()
        try:
            frames = iter(self.frames)
            slots = _schedule(self.load, start, self.phase)
            for slot, due in enumerate(slots):
                if (delay := due - time.time()) > 0:
                    await asyncio.sleep(delay)
                if len(self.sent) >= self.load.max_outstanding:
                    self.skipped += 1
                    continue
                if (item := next(frames, None)) is None:
                    self.unsigned = len(slots) - slot
                    break
                ctr, frame = item
                self.sent[ctr] = time.time()
                task = asyncio.create_task(client.publish(self.topic, frame, qos=1))
                publishes.add(task)
                task.add_done_callback(publishes.discard)
            await asyncio.gather(*publishes, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), self.load.drain_s)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        for ctr, sent in self.sent.items():
            relayed = self.relayed.pop(ctr, None)
            self.samples.append(Sample(sent, None if relayed is None else relayed - sent, None, NO_OUTCOME))

    async def _drained(self) -> None:
        while self.sent:
            self.settled.clear()
            await self.settled.wait()

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                ack = wire.Ack.decode(bytes(message.payload))
            except (wire.WireError, TypeError):
                continue  # not ours to judge: the bench counts only Acks it can read
            self._on_ack(ack, time.time())

    def _on_ack(self, ack: wire.Ack, now: float) -> None:
        sent = self.sent.get(ack.ctr)
        if sent is None:
            return  # a resent Ack of a settled reading
        if ack.status == wire.ACK_RELAYED:
            self.relayed.setdefault(ack.ctr, now)
            return
        del self.sent[ack.ctr]
        relayed = self.relayed.pop(ack.ctr, None)
        status = COMMITTED if ack.status == wire.ACK_COMMITTED else REJECTED
        if status == REJECTED:
            self.reasons[ack.reason or "unspecified"] += 1
        self.samples.append(Sample(sent, None if relayed is None else relayed - sent, now - sent, status))
        self.settled.set()


async def drive(
    broker: Broker, plans: list[tuple[Device, float, list[tuple[int, bytes]]]], load: Load, start: float
) -> Result:
    """Connect every device, publish from `start` (epoch s) on schedule, drain; one asyncio loop."""
    runs = [_DeviceRun(broker, device, frames, load, phase) for device, phase, frames in plans]
    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(*(stack.enter_async_context(r.client()) for r in runs))
        await asyncio.gather(*(r.run(c, start) for r, c in zip(runs, clients, strict=True)))
    result = Result(start, load, len(runs))
    for r in runs:
        result.merge(Result(start, load, 0, r.samples, r.skipped, r.unsigned, r.reasons))
    return result


def _worker(conn, broker: Broker, devices: list[Device], phases: list[float], load: Load, planned_start: float) -> None:
    """Child process: pre-sign, report ready, wait for the common start time, drive, send the Result."""
    # aiomqtt warns above 10 publishes awaiting their PUBACK; here that is the load, not a fault.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    try:
        plans = []
        for n, (device, phase) in enumerate(zip(devices, phases, strict=True)):
            stamps = [int(t * 1000) for t in _schedule(load, planned_start, phase)][: load.max_frames]
            values = [20_000 + (n * 37 + k) % 5_000 for k in range(len(stamps))]
            plans.append((device, phase, presign(device.signer(), stamps, values)))
        conn.send(("ready", None))
        start = conn.recv()
        conn.send(("done", asyncio.run(drive(broker, plans, load, start))))
    except Exception as exc:  # the parent reports it; a child traceback alone would be lost
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_load(broker: Broker, devices: list[Device], load: Load, procs: int = 1) -> Result:
    """Run `load` on `devices` split over `procs` worker processes; all start together, each device
    at its own phase of the period (`_phases`)."""
    if not devices:
        raise ValueError("no devices to drive")
    procs = max(1, min(procs, len(devices)))
    frames = len(devices) * len(_schedule(load, 0.0)[: load.max_frames])
    planned = time.time() + 1.0 + frames * SIGN_S_PER_READING / procs
    ctx = multiprocessing.get_context("spawn")
    phases = _phases(len(devices))
    workers = []
    for i in range(procs):
        parent, child = ctx.Pipe()
        args = (child, broker, devices[i::procs], phases[i::procs], load, planned)
        proc = ctx.Process(target=_worker, args=args, daemon=True)
        proc.start()
        child.close()
        workers.append((proc, parent))
    try:
        for _, conn in workers:
            _expect(conn, "ready")
        start = max(planned, time.time() + 0.5)  # a late pre-sign only makes timestamps earlier, never future
        for _, conn in workers:
            conn.send(start)
        result = Result(start, load, len(devices))
        for _, conn in workers:
            result.merge(_expect(conn, "done"))
        return result
    finally:
        for proc, conn in workers:
            conn.close()
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _expect(conn, what: str):
    try:
        kind, value = conn.recv()
    except EOFError:
        raise RuntimeError("a load generator process died") from None
    if kind != what:
        raise RuntimeError(f"load generator process failed: {value}")
    return value


# ---- CLI ----------------------------------------------------------------------------------------


def fleet_devices(fleet: LocalFleet, names: list[str] | None = None) -> list[Device]:
    """The accounts of a LocalFleet's devices (default: all), signing from each device's own folder.

    The folder is the one `edgeprov provision` wrote for the firmware, so a device's record is
    shared with its firmware run: never drive a device while its MicroPython process runs.
    """
    names = names or fleet.state.devices
    unknown = sorted(set(names) - set(fleet.state.devices))
    if unknown:
        raise ValueError(f"not devices of the fleet in {fleet.root}: {', '.join(unknown)}")
    return [Device(name, fleet.device_dir(name), fleet.password(name)) for name in names]


def fleet_broker(fleet: LocalFleet) -> Broker:
    return Broker(HOST, fleet.state.mqtt_port, GATEWAY, fleet.broker / "ca.crt")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("loadgen", help="CPython devices publishing signed readings at a set rate")
    p.add_argument("--fleet", type=Path, required=True, help="a running LocalFleet folder (`edgeprov demo`)")
    p.add_argument("--devices", nargs="*", help="device ids (default: all; none may be running its firmware)")
    p.add_argument("--rate", type=float, default=2.0, help="readings/s per device")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")
    p.add_argument("--procs", type=int, default=1, help="worker processes")
    p.add_argument("--max-outstanding", type=int, default=64)
    p.add_argument("--json", type=Path, help="write the summary as JSON to this file")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    fleet = LocalFleet(args.fleet)
    if fleet.state is None:
        raise SystemExit(f"{args.fleet} holds no fleet (fleet.json); create one with `edgeprov demo`")
    devices, broker = fleet_devices(fleet, args.devices), fleet_broker(fleet)
    load = Load(args.rate, args.duration, args.max_outstanding)
    summary = run_load(broker, devices, load, args.procs).summary()
    summary["device_kind"] = "cpython-loadgen"
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 0 if summary["committed"] else 1
