"""A real 4-process ledger cluster on loopback with contracts and the HTTP API enabled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from ledger_node.api.client import LedgerApi
from ledger_node.cli import node_command
from ledger_node.config import ContractOptions, api_urls, client_token, free_base_port, init_cluster


def write_authority(directory: Path, mpk, aa_public) -> Path:
    """The public authority.json a node loads (format of tools/authority.py)."""
    from tools.authority import FILE_VERSION, PUBLIC_FORMAT

    directory.mkdir(parents=True, exist_ok=True)
    doc = {"format": PUBLIC_FORMAT, "version": FILE_VERSION, "d": mpk.d, "mpk": mpk.encode().hex(),
           "aa_fp": mpk.aa_fp.hex(), "signing_public_key": aa_public.public_bytes_raw().hex()}  # fmt: skip
    (directory / "authority.json").write_text(json.dumps(doc))
    return directory


class ContractCluster:
    """Configured by init_cluster with contracts on, as `edgeprov ledger init-cluster --aa-dir` does."""

    def __init__(self, directory: Path, mpk, aa_public, n: int = 4) -> None:
        self.directory = directory
        self.aa_dir = write_authority(directory / "aa-public", mpk, aa_public)
        self.configs = init_cluster(directory, n, base_port=free_base_port(n), batch_size=500,
                                    contracts=ContractOptions(self.aa_dir))  # fmt: skip
        self.urls = api_urls(directory)
        self.token = client_token(directory, "tools")
        self.procs: dict[int, subprocess.Popen] = {}

    def start(self) -> None:
        for i, path in enumerate(self.configs):
            log = open(path.with_suffix(".log"), "a")  # noqa: SIM115
            self.procs[i] = subprocess.Popen(node_command(path), stdout=log, stderr=log)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @contextlib.contextmanager
    def running(self) -> Iterator[ContractCluster]:
        """Started and answering on every node's API; stopped on exit."""
        self.start()
        try:
            asyncio.run(self.ready())
            yield self
        finally:
            self.stop()

    def api(self) -> LedgerApi:
        return LedgerApi(self.urls, self.token)

    async def ready(self) -> None:
        async with LedgerApi(self.urls) as api:
            for i in range(len(self.urls)):
                for _ in range(300):
                    try:
                        await api.status(i)
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                else:
                    raise RuntimeError(f"node {i} API never came up")
