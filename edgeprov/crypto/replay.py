"""Gateway rule G4 (spec §3.5, §4 D5): remember recent device nonce points and refuse a repeat.

A repeated R_dev under a different statement means a reused pool entry (a flash rollback or a
broken device): relaying it would let whoever holds both shares extract the device's key.
A byte-identical copy of a reading already handled is only a duplicate delivery.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"  # same ctr, c and share: drop silently
    NONCE_REUSE = "nonce-reuse"  # same R_dev, different statement: refuse and alert


class NonceGuard:
    """Per device, the last `window` R_dev with the (ctr, c, share) they were first seen with."""

    def __init__(self, window: int = 4096) -> None:
        self.window = window
        self._seen: dict[bytes, OrderedDict[bytes, tuple[int, int, bytes]]] = {}

    def check(self, device_id: bytes, R_dev: bytes, ctr: int, c: int, share: bytes) -> Verdict:
        """Classify a share and remember it if new. `R_dev` and `share` are canonical encodings."""
        seen = self._seen.setdefault(device_id, OrderedDict())
        first = seen.get(R_dev)
        if first is not None:
            return Verdict.DUPLICATE if first == (ctr, c, share) else Verdict.NONCE_REUSE
        seen[R_dev] = (ctr, c, share)
        if len(seen) > self.window:
            seen.popitem(last=False)
        return Verdict.NEW
