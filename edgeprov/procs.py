"""A group of child processes that start together and stop together (demo, local clusters, benches, tests).

Each child logs to its own file, so a failing fleet can be read afterwards; `stop` asks politely
(SIGTERM), then insists (SIGKILL) after a grace period, so Ctrl-C never leaves orphans behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float = 30.0) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s") from None
            time.sleep(0.05)


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class ProcessGroup:
    log_dir: Path
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Child:
        """Start `argv` as child `name`, stdout and stderr into `<log_dir>/<name>.log` (appended)."""
        if name in self.children and self.children[name].alive():
            raise RuntimeError(f"{name} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop children in order
            )
        child = Child(name, argv, log_path, proc)
        self.children[name] = child
        return child

    def kill(self, name: str) -> None:
        """SIGKILL one child (crash tests) and reap it."""
        child = self.children[name]
        if child.alive():
            child.proc.kill()
        child.proc.wait()

    def stop(self, name: str, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; returns the exit code."""
        child = self.children[name]
        if child.alive():
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        return child.proc.returncode

    def stop_all(self, grace_s: float = 10.0) -> None:
        """Stop children in reverse start order (devices before the gateway before the ledger)."""
        for name in reversed(list(self.children)):
            self.stop(name, grace_s)

    def dead(self) -> list[Child]:
        return [c for c in self.children.values() if not c.alive()]

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
