"""Real 4-process cluster on loopback: SIGKILL and restart a follower, stop and restart a leader.

Asserts outcomes only (no timing): every acknowledged transaction is stored afterwards, the
restarted node caught up, and all nodes hold identical block hashes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from ledger_node.cli import node_command
from ledger_node.client import ClientCredential, LedgerClient, load_credential
from ledger_node.config import CREDENTIALS_FILE, LOCAL_CLIENT, free_base_port, init_cluster, load_config
from ledger_node.node import block_hashes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T = TypeVar("T")


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.configs = init_cluster(directory, 4, base_port=free_base_port(4), batch_size=200)
        self.credential = load_credential(directory / CREDENTIALS_FILE, LOCAL_CLIENT)
        self.procs: dict[int, subprocess.Popen] = {}
        self.stopped: set[int] = set()

    def start(self, i: int) -> None:
        log = open(self.configs[i].with_suffix(".log"), "a")  # noqa: SIM115
        self.procs[i] = subprocess.Popen(node_command(self.configs[i]), stdout=log, stderr=log)
        self.stopped.discard(i)

    def client_port(self, i: int) -> int:
        return int(load_config(self.configs[i]).client_listen.rpartition(":")[2])

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """Await a cluster step, failing at once (with the log) if a node process that should run died.

        Without this a node that cannot start leaves the others without a quorum and the test only
        ends at its overall timeout, with no hint why.
        """
        task = asyncio.ensure_future(awaitable)
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if done:
                return task.result()
            for i, proc in self.procs.items():
                if proc.poll() is not None and i not in self.stopped:
                    task.cancel()
                    log = self.configs[i].with_suffix(".log").read_text()[-3000:]
                    raise AssertionError(f"node {i} exited with {proc.returncode}:\n{log}")

    async def kill(self, i: int, sig: signal.Signals) -> None:
        """Signal a node and wait for it to exit (a SIGTERM'd node must shut down, not hang)."""
        self.stopped.add(i)
        self.procs[i].send_signal(sig)
        await asyncio.to_thread(self.procs[i].wait, 60)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            proc.wait(timeout=30)


async def _connect(port: int, credential: ClientCredential) -> LedgerClient:
    for _ in range(200):
        client = LedgerClient("127.0.0.1", port, credential)
        try:
            await client.connect()
            return client
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"node on client port {port} never came up")


async def _commit_batch(client: LedgerClient, count: int) -> dict[bytes, tuple[int, bool]]:
    ids = await client.submit([os.urandom(200) for _ in range(count)])
    results = await asyncio.gather(*(client.committed(i) for i in ids))
    return dict(zip(ids, results, strict=True))


async def _wait_height(client: LedgerClient, height: int) -> None:
    while (await client.status())[0] < height:
        await asyncio.sleep(0.2)


@pytest.mark.timeout(180)
def test_cluster_survives_kill_and_leader_stop(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    for i in range(4):
        cluster.start(i)

    async def scenario() -> dict[bytes, tuple[int, bool]]:
        acked: dict[bytes, tuple[int, bool]] = {}
        client = await _connect(cluster.client_port(1), cluster.credential)
        acked |= await cluster.guard(_commit_batch(client, 500))
        # SIGKILL follower 3 with a batch in flight, then restart it from its own disk.
        batch = asyncio.ensure_future(_commit_batch(client, 500))
        await cluster.kill(3, signal.SIGKILL)
        acked |= await cluster.guard(batch)
        cluster.start(3)
        # Stop node 0 (leader of every fourth round) with a batch in flight: the others must replace
        # it by view change.
        batch = asyncio.ensure_future(_commit_batch(client, 500))
        await cluster.kill(0, signal.SIGTERM)
        acked |= await cluster.guard(batch)
        cluster.start(0)
        acked |= await cluster.guard(_commit_batch(client, 300))
        top = max(h for h, _ in acked.values())
        for i in (0, 3):
            restarted = await cluster.guard(_connect(cluster.client_port(i), cluster.credential))
            await cluster.guard(_wait_height(restarted, top))
            await restarted.close()
        await client.close()
        return acked

    try:
        acked = asyncio.run(asyncio.wait_for(scenario(), 150))
    finally:
        cluster.stop_all()

    chains = [block_hashes(tmp_path / f"node{i}") for i in range(4)]
    shortest = min(len(c) for c in chains)
    assert shortest >= max(h for h, _ in acked.values()), [len(c) for c in chains]
    assert all(chain[:shortest] == chains[0][:shortest] for chain in chains)
    assert len(acked) == 1800 and all(valid for _, valid in acked.values())
    import sqlite3

    for i in range(4):
        with sqlite3.connect(tmp_path / f"node{i}" / "ledger.sqlite3") as db:
            stored = {row[0] for row in db.execute("SELECT txid FROM txs WHERE valid = 1")}
        assert set(acked) <= stored, f"node {i} lost acknowledged transactions"
