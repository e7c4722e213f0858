"""Real parts for the dashboard's browser tests: Mosquitto, a 4-node ledger, the dashboard, Debian's Chromium.

Every process is started on free loopback ports in a temp dir and stopped by its fixture.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from edgeprov.procs import free_port
from ledger_node.config import load_config
from tests.contracts.cluster import ContractCluster
from tests.contracts.ledger_harness import Fleet

MOSQUITTO = "/usr/sbin/mosquitto"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULTS = Path(__file__).resolve().parents[2] / "results" / "screenshots"


def wait_until(check, what: str, attempts: int = 300) -> None:
    """Poll `check()` every 0.1 s; a part that never comes up fails the fixture with its name."""
    for _ in range(attempts):
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} never came up")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Mosquitto on a free port; anonymous, since the broker account tool (tools/broker.py) is another issue's."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (scripts/setup installs it)")
    directory = tmp_path_factory.mktemp("mosquitto")
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with open(directory / "mosquitto.log", "w") as log:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_until(lambda: _port_open(port), "mosquitto")
        yield port
    finally:
        stop(proc)


def run_async(coro):
    """Run a coroutine to completion on a thread of its own: Playwright's sync API owns this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Ledger:
    """A running contracts cluster (tests/contracts/cluster.py) and the authority side that feeds it."""

    def __init__(self, cluster: ContractCluster, fleet: Fleet) -> None:
        self.cluster, self.fleet = cluster, fleet
        self.configs: list[Path] = cluster.configs
        self.urls: list[str] = cluster.urls
        self.token: str = cluster.token


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """A real 4-process ledger with contracts and the HTTP API, as the contracts tests run it.

    Other test runs on this machine take ports too: a cluster whose node lost a port race is
    stopped and started again on other ports.
    """
    fleet = Fleet(b"dashboard tests")
    for attempt in range(3):
        cluster = ContractCluster(tmp_path_factory.mktemp(f"cluster{attempt}"), fleet.system.mpk, fleet.aa.public_key())
        cluster.start()
        try:
            run_async(cluster.ready())
            ready = True
        except RuntimeError:
            ready = False
        if ready and all(proc.poll() is None for proc in cluster.procs.values()):
            break
        cluster.stop()
    else:
        raise RuntimeError("the ledger cluster did not start in three attempts (see cluster*/node*.log)")
    try:
        yield Ledger(cluster, fleet)
    finally:
        cluster.stop()


def metrics_url(config: Path) -> str:
    return f"http://{load_config(config).metrics_listen}/metrics"


class Dashboard:
    def __init__(self, url: str, proc: subprocess.Popen, log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log


@pytest.fixture(scope="module")
def dashboard(broker: int, ledger: Ledger, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    directory = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    token_file = directory / "token"
    token_file.write_text(ledger.token + "\n")
    token_file.chmod(0o600)
    metrics = ",".join(metrics_url(c) for c in ledger.configs)
    command = [sys.executable, "-m", "tools.dashboard", "--broker", f"127.0.0.1:{broker}", "--metrics", metrics]
    command += ["--ledger", ",".join(ledger.urls), "--token-file", str(token_file), "--listen", f"127.0.0.1:{port}"]
    log_path = directory / "dashboard.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[2])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/api/fleet", timeout=1).json()["broker"]["connected"], "dashboard")
        yield Dashboard(url, proc, log_path)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (scripts/setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
