"""The device's single-use state (spec §4, rules D1–D5): CPython reference of what the firmware does.

One record holds the key epoch, pool_index, ctr and the unused pool entries, with a MAC, and is
replaced atomically. `DeviceSigner.sign` removes the entry and advances ctr *on disk* before it
computes the share (D2): a crash costs an entry and leaves a counter gap, never a reuse. A missing,
corrupt or other-epoch record stops signing until re-key (D4).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgeprov.crypto.abs_iot import complete, precompute
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.hashing import expand_message_xmd
from edgeprov.crypto.objects import DeviceShare, PoolEntry
from edgeprov.crypto.points import DecodeError
from edgeprov.crypto.rng import Rng, SystemRng
from edgeprov.crypto.statement import Statement

RECORD_HEADER = 4 + 8 + 8
MAC_SIZE = 32
DST_RECORD_MAC = b"ABS-IOT-V1-RECORD-MAC"


class RecordLost(Exception):
    """D4: the record is missing, corrupt or of another epoch; the device must be re-keyed."""


def record_mac_key(nonce_seed: bytes) -> bytes:
    """The record's MAC key, derived from the device secret nonce_seed (domain-separated)."""
    return expand_message_xmd(nonce_seed, DST_RECORD_MAC, 32)


@dataclass
class DeviceRecord:
    """`u32 epoch ‖ u64 pool_index ‖ u64 ctr ‖ entries ‖ MAC 32` (spec §5), MAC = HMAC-SHA256."""

    epoch: int
    pool_index: int = 0
    ctr: int = 0
    entries: list[PoolEntry] = field(default_factory=list)

    def encode(self, mac_key: bytes) -> bytes:
        body = self.epoch.to_bytes(4, "big") + self.pool_index.to_bytes(8, "big") + self.ctr.to_bytes(8, "big")
        body += b"".join(e.encode() for e in self.entries)
        return body + hmac.new(mac_key, body, hashlib.sha256).digest()

    @classmethod
    def decode(cls, data: bytes, mac_key: bytes, epoch: int) -> DeviceRecord:
        body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        if len(data) < RECORD_HEADER + MAC_SIZE or (len(body) - RECORD_HEADER) % PoolEntry.SIZE:
            raise RecordLost("device record has a wrong length")
        if not hmac.compare_digest(mac, hmac.new(mac_key, body, hashlib.sha256).digest()):
            raise RecordLost("device record MAC does not verify")
        record_epoch = int.from_bytes(body[:4], "big")
        if record_epoch != epoch:
            raise RecordLost(f"device record is for epoch {record_epoch}, key is epoch {epoch}")
        entries = body[RECORD_HEADER:]
        try:
            pool = [PoolEntry.decode(entries[i : i + PoolEntry.SIZE]) for i in range(0, len(entries), PoolEntry.SIZE)]
        except DecodeError as exc:
            raise RecordLost(f"device record holds a malformed entry ({exc})") from None
        return cls(epoch, int.from_bytes(body[4:12], "big"), int.from_bytes(body[12:20], "big"), pool)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class SignedShare:
    """What a device publishes for one reading (Flow M, spec §3.5)."""

    ctr: int
    ts_ms: int
    msg: bytes
    pd: bytes
    share: DeviceShare


class DeviceSigner:
    """K_iot plus its persistent record; the only way to spend a pool entry."""

    def __init__(self, bundle: DeviceBundle, record_path: Path, rng: Rng | None = None) -> None:
        self.bundle = bundle
        self.path = record_path
        self.rng = rng or SystemRng()
        self.mac_key = record_mac_key(bundle.nonce_seed)
        try:
            data = record_path.read_bytes()
        except FileNotFoundError:
            raise RecordLost(f"device record {record_path} is missing") from None
        self.record = DeviceRecord.decode(data, self.mac_key, bundle.epoch)

    @staticmethod
    def provision(bundle: DeviceBundle, record_path: Path) -> None:
        """Write the fresh record that comes with a new key (spec §3.2); refuses to overwrite one."""
        fd = os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        write_atomically(record_path, DeviceRecord(bundle.epoch).encode(record_mac_key(bundle.nonce_seed)))

    def _persist(self) -> None:
        write_atomically(self.path, self.record.encode(self.mac_key))

    def precompute(self, count: int = 1) -> None:
        """Add `count` entries while idle (D3): pool_index advances in the same record write."""
        for _ in range(count):
            entry = precompute(
                self.bundle.h1, self.bundle.G_iot, self.bundle.nonce_seed, self.record.pool_index, self.rng
            )
            self.record.entries.append(entry)
            self.record.pool_index += 1
        self._persist()

    def sign(self, ts_ms: int, msg: bytes, pd: bytes | None = None) -> SignedShare:
        """Complete a share for the next counter: entry removed and ctr advanced on disk first (D2)."""
        pd = pd or self.bundle.pds[0]
        if pd not in self.bundle.pds:
            raise ValueError("the device was not provisioned for this policy digest")
        if not self.record.entries:
            self.precompute(1)
        entry = self.record.entries.pop(0)
        self.record.ctr += 1
        self._persist()
        stmt = Statement(self.bundle.aa_fp, pd, self.bundle.device_id, self.bundle.epoch, self.record.ctr, ts_ms, msg)
        return SignedShare(self.record.ctr, ts_ms, msg, pd, complete(self.bundle.u1, entry, stmt.c))
