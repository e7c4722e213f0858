"""Shared pytest options: `--port` enables hardware-in-the-loop tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeprov.procs import free_port


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--port", default=None, help="serial port of an attached board (enables hil tests)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--port"):
        return
    skip = pytest.mark.skip(reason="hil: no board attached (pass --port /dev/ttyUSB0)")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


MOSQUITTO = "/usr/sbin/mosquitto"


class Broker:
    """A real Mosquitto on 127.0.0.1:port; `config` follows the `listener` line (TLS, auth, persistence)."""

    def __init__(self, workdir: Path, port: int, config: str) -> None:
        self.host, self.port, self.workdir = "127.0.0.1", port, workdir
        self.conf = workdir / "mosquitto.conf"
        # As root, mosquitto would drop to its own user, which cannot write under pytest's 0700 tmp dirs.
        has_user = any(line.startswith("user ") for line in (config or "").splitlines())
        user = "user root\n" if os.geteuid() == 0 and not has_user else ""
        self.conf.write_text(f"{user}listener {port} 127.0.0.1\n{config or 'allow_anonymous true'}\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log, cwd=self.workdir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-800:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()[-800:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Broker]]:
    """Factory: `mosquitto_broker(config="", port=None)` starts a broker (stopped at teardown).

    `config` replaces the default `allow_anonymous true`; `broker.stop()` / `broker.start()` restart
    it on the same port. Use `persistence true` plus `persistence_location` for sessions that survive.
    """
    started: list[Broker] = []

    def start(config: str = "", port: int | None = None) -> Broker:
        broker = Broker(tmp_path_factory.mktemp("mosquitto"), port or free_port(), config)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()
