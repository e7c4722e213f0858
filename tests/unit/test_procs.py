"""edgeprov.procs: children log to files, stop politely or by force, and never outlive the group."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from edgeprov.procs import ProcessGroup, free_port, wait_for_port

pytestmark = pytest.mark.unit

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def test_child_output_goes_to_its_log_and_exit_code_is_kept(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        child = group.start("hello", [sys.executable, "-c", "print('hello from child')"])
        child.proc.wait(10)
        assert "hello from child" in child.tail()
        assert group.stop("hello") == 0
        assert group.dead() == [child]


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    child = group.start("stubborn", [sys.executable, "-c", STUBBORN])
    while "up" not in child.tail():
        time.sleep(0.05)
    assert group.stop("stubborn", grace_s=0.5) == -9
    assert not child.alive()


def test_leaving_the_group_stops_every_child_in_reverse_order(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        children = [group.start(f"c{i}", [sys.executable, "-c", "import time; time.sleep(60)"]) for i in range(3)]
        with pytest.raises(RuntimeError, match="already running"):
            group.start("c0", [sys.executable, "-c", "pass"])
    assert all(not c.alive() for c in children)


def test_wait_for_port_sees_a_listener_and_times_out_without_one(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=str(port)):
        wait_for_port("127.0.0.1", port, timeout_s=0.2)
    with ProcessGroup(tmp_path) as group:
        server = f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(60)"
        group.start("listener", [sys.executable, "-c", server])
        wait_for_port("127.0.0.1", port, timeout_s=10)
