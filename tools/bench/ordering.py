"""`edgeprov bench ordering`: a 4-node cluster on this machine ordering 200-byte transactions.

Four node processes on loopback (as `edgeprov ledger up` runs them) and one load generator with
one authenticated client connection per node. Two phases on the same cluster:

1. saturation: a closed loop keeps IN_FLIGHT transactions outstanding; this gives the maximum
   committed tx/s (and latency at saturation, which is mostly queueing: Little's law);
2. offered-load sweep: an open loop submits at 25/50/75/100 % of that maximum, and reports
   committed tx/s and p50/p99 submit-to-commit latency at each rate (the latency budget applies
   below saturation).

Latency is per transaction, from submit to the node's acknowledgement that its block is durably
committed; figures cover each phase's window after a warm-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ledger_node.cli import node_command
from ledger_node.client import ClientCredential, LedgerClient, load_credential
from ledger_node.config import CREDENTIALS_FILE, LOCAL_CLIENT, free_base_port, init_cluster, load_config

NODES = 4
TX_BYTES = 200
BATCH = 250
IN_FLIGHT = 8000
BLOCK_TXS = 2000
SWEEP = (0.25, 0.5, 0.75, 1.0)
TICK_S = 0.01


@dataclass
class _Tracker:
    """Submit times of outstanding transactions; (submit time, latency) of committed ones."""

    sent: dict[bytes, float] = field(default_factory=dict)
    samples: list[tuple[float, float]] = field(default_factory=list)
    outstanding: asyncio.Event = field(default_factory=asyncio.Event)

    def submitted(self, ids: list[bytes], at: float) -> None:
        self.sent.update(dict.fromkeys(ids, at))

    def committed(self, txid: bytes, height: int, valid: bool) -> None:
        sent = self.sent.pop(txid, None)
        if sent is not None:
            self.samples.append((sent, time.perf_counter() - sent))
            self.outstanding.set()

    async def drain(self, timeout: float) -> None:
        end = time.perf_counter() + timeout
        while self.sent and time.perf_counter() < end:
            self.outstanding.clear()
            await asyncio.wait([asyncio.ensure_future(self.outstanding.wait())], timeout=0.2)


def _tx_source():
    """Unique 200-byte transactions without a urandom call each: random prefix, counter suffix."""
    prefix = os.urandom(TX_BYTES - 8)
    count = 0

    def make(k: int) -> list[bytes]:
        nonlocal count
        out = [prefix + struct.pack(">Q", count + i) for i in range(k)]
        count += k
        return out

    return make


async def _connect(port: int, credential: ClientCredential, tracker: _Tracker) -> LedgerClient:
    for _ in range(300):
        client = LedgerClient("127.0.0.1", port, credential, on_commit=tracker.committed)
        try:
            await client.connect()
            return client
        except (OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.1)
    raise RuntimeError(f"node on client port {port} did not start")


def _summary(samples: list[tuple[float, float]], start: float, duration: float) -> dict:
    window = sorted(lat * 1000 for sent, lat in samples if start <= sent <= start + duration)
    if not window:
        raise RuntimeError("no transaction committed in the measured window")
    return {
        "committed_tx_per_s": round(len(window) / duration, 1),
        "latency_p50_ms": round(statistics.median(window), 2),
        "latency_p99_ms": round(window[int(0.99 * (len(window) - 1))], 2),
    }


async def _saturate(clients: list[LedgerClient], tracker: _Tracker, warmup: float, duration: float) -> float:
    """Closed loop; returns the window start (perf_counter)."""
    make = _tx_source()
    end = time.perf_counter() + warmup + duration

    async def generator(client: LedgerClient) -> None:
        while time.perf_counter() < end:
            if len(tracker.sent) >= IN_FLIGHT:
                tracker.outstanding.clear()
                await tracker.outstanding.wait()
                continue
            ids = await client.submit(make(BATCH))
            tracker.submitted(ids, time.perf_counter())

    start = time.perf_counter() + warmup
    await asyncio.gather(*(generator(c) for c in clients))
    return start


async def _offer(clients: list[LedgerClient], tracker: _Tracker, rate: float, warmup: float, duration: float) -> float:
    """Open loop at `rate` tx/s, spread over the clients every TICK_S; returns the window start."""
    make = _tx_source()
    begin = time.perf_counter()
    start, end = begin + warmup, begin + warmup + duration
    due = 0.0
    turn = 0
    while (now := time.perf_counter()) < end:
        owed = int(rate * (now - begin)) - int(due)
        if owed > 0:
            client = clients[turn % len(clients)]
            turn += 1
            ids = await client.submit(make(owed))
            tracker.submitted(ids, now)
            due += owed
        await asyncio.sleep(TICK_S)
    return start


async def _load(ports: list[int], credential: ClientCredential, quick: bool) -> dict:
    tracker = _Tracker()
    clients = [await _connect(port, credential, tracker) for port in ports]
    duration, warmup, step, step_warmup = (10.0, 2.0, 4.0, 1.0) if quick else (60.0, 3.0, 15.0, 3.0)
    start = await _saturate(clients, tracker, warmup, duration)
    await tracker.drain(15.0)
    results = _summary(tracker.samples, start, duration)
    results["duration_s"] = duration
    results["throughput_timeline"] = _timeline(tracker.samples, start, duration)
    results["sweep"] = []
    for fraction in SWEEP:
        tracker.samples.clear()
        rate = fraction * results["committed_tx_per_s"]
        start = await _offer(clients, tracker, rate, step_warmup, step)
        await tracker.drain(15.0)
        point = _summary(tracker.samples, start, step)
        results["sweep"].append({"offered_fraction": fraction, "offered_tx_per_s": round(rate, 1), **point})
    for client in clients:
        await client.close()
    return results


def run(quick: bool) -> dict:
    # Other work on the machine changes every figure here; the load average says how much there was.
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="edgeprov-bench-") as tmp:
        configs = init_cluster(Path(tmp), NODES, base_port=free_base_port(NODES), batch_size=BLOCK_TXS)
        credential = load_credential(Path(tmp) / CREDENTIALS_FILE, LOCAL_CLIENT)
        procs = [
            subprocess.Popen(node_command(c), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in configs
        ]
        try:
            ports = [int(load_config(c).client_listen.rpartition(":")[2]) for c in configs]
            results = asyncio.run(_load(ports, credential, quick))
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
    load = {"load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]}
    return {"nodes": NODES, "tx_bytes": TX_BYTES, "block_txs": BLOCK_TXS, **load, **results}


def _timeline(samples: list[tuple[float, float]], start: float, duration: float) -> list[tuple[int, int]]:
    per_second: dict[int, int] = {}
    for sent, latency in samples:
        if start <= sent <= start + duration:
            second = int(sent + latency - start)
            per_second[second] = per_second.get(second, 0) + 1
    return sorted(per_second.items())


def report(results: dict) -> str:
    lines = [
        f"ordering: {results['nodes']} nodes, {results['tx_bytes']}-byte transactions, blocks of up to "
        f"{results['block_txs']}, saturation for {results['duration_s']} s",
        f"  committed at saturation {results['committed_tx_per_s']:>10,.1f} tx/s  (goal >= 10,000)",
        f"  submit->commit p50      {results['latency_p50_ms']:>10.2f} ms    (saturated: queueing)",
        f"  submit->commit p99      {results['latency_p99_ms']:>10.2f} ms",
        f"  machine load average    {results['load_avg_1m_before']:.1f} before, "
        f"{results['load_avg_1m_after']:.1f} after (other processes share the 2 cores)",
        "  offered load sweep (goal p50 <= 50 ms below saturation):",
    ]
    for point in results["sweep"]:
        lines.append(
            f"    {point['offered_fraction']:>4.0%} {point['offered_tx_per_s']:>9,.0f} tx/s offered: "
            f"{point['committed_tx_per_s']:>9,.0f} committed, p50 {point['latency_p50_ms']:>8.1f} ms, "
            f"p99 {point['latency_p99_ms']:>8.1f} ms"
        )
    return "\n".join(lines)


def plot(results: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    seconds, counts = zip(*results["throughput_timeline"], strict=True) if results["throughput_timeline"] else ((), ())
    left.plot(seconds, counts, marker=".")
    left.axhline(10_000, color="grey", linestyle="--", label="goal 10,000 tx/s")
    left.set_xlabel("time (s)")
    left.set_ylabel("committed tx/s")
    left.set_title(f"saturation: {results['committed_tx_per_s']:,.0f} tx/s")
    left.legend()
    sweep = results["sweep"]
    offered = [p["offered_tx_per_s"] for p in sweep]
    right.plot(offered, [p["latency_p50_ms"] for p in sweep], marker="o", label="p50")
    right.plot(offered, [p["latency_p99_ms"] for p in sweep], marker="s", label="p99")
    right.axhline(50, color="grey", linestyle="--", label="p50 goal 50 ms")
    right.set_yscale("log")
    right.set_xlabel("offered load (tx/s)")
    right.set_ylabel("submit-to-commit latency (ms)")
    right.set_title("latency vs offered load")
    right.legend()
    path = out_dir / "ordering_throughput.png"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return [path]
