"""`edgeprov bench ordering`: a 4-node cluster on this machine ordering 200-byte transactions.

Four node processes on loopback (as `edgeprov ledger up` runs them) and one load generator with
one client connection per node. The generator keeps a bounded number of transactions in flight
and records, per transaction, the time from submit to the node's acknowledgement that its block
is durably committed. Figures cover the sustained window after a warm-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ledger_node.cli import node_command
from ledger_node.client import LedgerClient
from ledger_node.config import init_cluster, load_config

NODES = 4
TX_BYTES = 200
BATCH = 250
IN_FLIGHT = 8000
WARMUP_S = 3.0


async def _connect(port: int) -> LedgerClient:
    for _ in range(300):
        client = LedgerClient("127.0.0.1", port)
        try:
            await client.connect()
            return client
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"node on client port {port} did not start")


async def _load(ports: list[int], duration: float) -> tuple[list[tuple[float, float]], float]:
    """Returns (submit time, latency) per committed transaction, and the measured window start."""
    clients = [await _connect(port) for port in ports]
    samples: list[tuple[float, float]] = []
    budget = asyncio.Semaphore(IN_FLIGHT // BATCH)
    end = time.perf_counter() + WARMUP_S + duration

    async def track(client: LedgerClient, ids: list[bytes], sent: float) -> None:
        for txid in ids:
            await client.committed(txid)
            samples.append((sent, time.perf_counter() - sent))
            del client.commits[txid]
            client._events.pop(txid, None)
        budget.release()

    async def generator(client: LedgerClient) -> None:
        pending = []
        while time.perf_counter() < end:
            await budget.acquire()
            sent = time.perf_counter()
            ids = await client.submit([os.urandom(TX_BYTES) for _ in range(BATCH)])
            pending.append(asyncio.create_task(track(client, ids, sent)))
        await asyncio.wait(pending, timeout=10)

    start = time.perf_counter()
    await asyncio.gather(*(generator(c) for c in clients))
    for client in clients:
        await client.close()
    return [(sent - start, latency) for sent, latency in samples], WARMUP_S


def run(quick: bool) -> dict:
    duration = 15.0 if quick else 60.0
    with tempfile.TemporaryDirectory(prefix="edgeprov-bench-") as tmp:
        configs = init_cluster(Path(tmp), NODES, base_port=23400, batch_size=2000)
        procs = [
            subprocess.Popen(node_command(c), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in configs
        ]
        try:
            ports = [int(load_config(c).client_listen.rpartition(":")[2]) for c in configs]
            samples, warmup = asyncio.run(_load(ports, duration))
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
    window = [(t, lat) for t, lat in samples if warmup <= t <= warmup + duration]
    latencies = sorted(lat * 1000 for _, lat in window)
    if not latencies:
        raise RuntimeError("no transaction committed in the measured window")
    return {
        "nodes": NODES,
        "tx_bytes": TX_BYTES,
        "duration_s": duration,
        "committed_txs": len(window),
        "committed_tx_per_s": round(len(window) / duration, 1),
        "commit_latency_p50_ms": round(statistics.median(latencies), 2),
        "commit_latency_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "throughput_timeline": _timeline(window),
    }


def _timeline(window: list[tuple[float, float]]) -> list[tuple[int, int]]:
    per_second: dict[int, int] = {}
    for sent, latency in window:
        second = int(sent + latency)
        per_second[second] = per_second.get(second, 0) + 1
    return sorted(per_second.items())


def report(results: dict) -> str:
    return "\n".join(
        [
            f"ordering: {results['nodes']} nodes, {results['tx_bytes']}-byte transactions, {results['duration_s']} s",
            f"  committed          {results['committed_tx_per_s']:>10,.1f} tx/s  (goal >= 10,000)",
            f"  submit->commit p50 {results['commit_latency_p50_ms']:>10.2f} ms    (goal <= 50)",
            f"  submit->commit p99 {results['commit_latency_p99_ms']:>10.2f} ms",
        ]
    )


def plot(results: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds, counts = zip(*results["throughput_timeline"], strict=True) if results["throughput_timeline"] else ((), ())
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(seconds, counts, marker=".")
    ax.axhline(10_000, color="grey", linestyle="--", label="goal 10,000 tx/s")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("committed tx/s")
    ax.set_title(
        f"ordering, 4 nodes: p50 {results['commit_latency_p50_ms']} ms, p99 {results['commit_latency_p99_ms']} ms"
    )
    ax.legend()
    path = out_dir / "ordering_throughput.png"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return [path]
