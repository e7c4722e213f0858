"""The flash ring (firmware/lib/buffer.py) on the MicroPython VM: frames come back in order, leave only
when acknowledged (also out of order), survive a restart of the process, and when the ring is full
the oldest is dropped and counted."""

from __future__ import annotations

import pytest
from conftest import run_micropython

pytestmark = pytest.mark.integration

OPEN = "import buffer\nr = buffer.Ring('ring.dat', 4, 64)\n"


def test_frames_persist_in_order_until_acknowledged(tmp_path) -> None:
    run_micropython(OPEN + "for i in range(3):\n    r.push(b'frame-%d' % i)\nr.ack(1)\n", tmp_path)
    # A new process (a reboot): frame 1 was acked but frame 0 was not, so the tail stays at 0.
    out = run_micropython(OPEN + "print(r.tail, r.head, [r.get(s) for s in range(r.tail, r.head)])\n", tmp_path)
    assert out.strip() == "0 3 [b'frame-0', b'frame-1', b'frame-2']"
    out = run_micropython(OPEN + "r.ack(0)\nr.ack(1)\nprint(r.tail, r.head, len(r))\n", tmp_path)
    assert out.strip() == "2 3 1"
    out = run_micropython(OPEN + "print(r.tail, r.head, r.get(2))\n", tmp_path)
    assert out.strip() == "2 3 b'frame-2'"


def test_full_ring_drops_the_oldest_and_counts_it(tmp_path) -> None:
    out = run_micropython(
        OPEN + "for i in range(6):\n    r.push(b'f%d' % i)\nprint(r.tail, r.head, r.dropped, r.get(r.tail))\n", tmp_path
    )
    assert out.splitlines()[-1] == "2 6 2 b'f2'"
    assert out.count("buffer: full, dropped the oldest frame") == 2
    out = run_micropython(
        OPEN + "print(r.dropped)\ntry:\n    r.get(1)\nexcept buffer.RingError as e:\n    print(e)\n", tmp_path
    )
    assert out.splitlines() == ["2", "frame 1 is not in the ring"]


def test_oversized_frame_is_refused_and_uncommitted_slot_is_detected(tmp_path) -> None:
    out = run_micropython(OPEN + "try:\n    r.push(bytes(59))\nexcept buffer.RingError as e:\n    print(e)\n", tmp_path)
    assert "exceeds the buffer slot size" in out
    run_micropython(OPEN + "r.push(b'ok')\n", tmp_path)
    data = bytearray((tmp_path / "ring.dat").read_bytes())
    data[3] ^= 0xFF  # the slot's seq no longer matches: as if the meta write had not happened
    (tmp_path / "ring.dat").write_bytes(bytes(data))
    out = run_micropython(OPEN + "try:\n    r.get(0)\nexcept buffer.RingError as e:\n    print(e)\n", tmp_path)
    assert out.strip() == "slot for frame 0 is corrupt"
