"""Gateway rule G4 (spec §3.5, §4 D5, §8.2): remember recent device nonce points and refuse a repeat.

A repeated R_dev under a different statement means a reused pool entry (a flash rollback or a
broken device): relaying it would let whoever holds both shares extract the device's key.
A byte-identical copy of a reading already handled is only a duplicate delivery.

What a first sighting is compared with is its mark, SHA-256(u64 ctr ‖ c (32 bytes) ‖ canonical share):
equal marks mean the same (ctr, c, share), so DUPLICATE and NONCE_REUSE stay exact, and a mark is
what a gateway persists next to each relayed reading to seed the guard after a restart.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from enum import Enum


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"  # same ctr, c and share: drop silently
    NONCE_REUSE = "nonce-reuse"  # same R_dev, different statement: refuse and alert


def nonce_mark(ctr: int, c: int, share: bytes) -> bytes:
    """Digest of what a duplicate repeats exactly; the fixed-width prefix keeps the encoding unambiguous."""
    return hashlib.sha256(ctr.to_bytes(8, "big") + c.to_bytes(32, "big") + share).digest()


class NonceGuard:
    """Per device, the last `window` R_dev with the mark of the (ctr, c, share) they were first seen with."""

    def __init__(self, window: int = 4096) -> None:
        self.window = window
        self._seen: dict[bytes, OrderedDict[bytes, bytes]] = {}

    def check(self, device_id: bytes, R_dev: bytes, ctr: int, c: int, share: bytes) -> Verdict:
        """Classify a share and remember it if new. `R_dev` and `share` are canonical encodings."""
        return self.check_mark(device_id, R_dev, nonce_mark(ctr, c, share))

    def check_mark(self, device_id: bytes, R_dev: bytes, mark: bytes) -> Verdict:
        seen = self._seen.setdefault(device_id, OrderedDict())
        first = seen.get(R_dev)
        if first is not None:
            return Verdict.DUPLICATE if first == mark else Verdict.NONCE_REUSE
        seen[R_dev] = mark
        self._trim(seen)
        return Verdict.NEW

    def seed(self, device_id: bytes, sightings: Iterable[tuple[bytes, bytes]]) -> None:
        """Restore (R_dev, mark) pairs, oldest first, e.g. from the gateway's store after a restart."""
        seen = self._seen.setdefault(device_id, OrderedDict())
        for R_dev, mark in sightings:
            seen.setdefault(R_dev, mark)  # the first sighting is the one a repeat is compared with
        self._trim(seen)

    def forget(self, device_id: bytes, R_dev: bytes, mark: bytes) -> None:
        """Drop a sighting whose reading was not kept, so the broker's redelivery of it counts as new."""
        seen = self._seen.get(device_id)
        if seen is not None and seen.get(R_dev) == mark:
            del seen[R_dev]

    def _trim(self, seen: OrderedDict[bytes, bytes]) -> None:
        while len(seen) > self.window:
            seen.popitem(last=False)
