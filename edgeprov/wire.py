"""Device <-> gateway messages over MQTT (DESIGN.md §5): topics and the canonical byte encodings.

The firmware has its own MicroPython copy of these encoders (`firmware/lib/wire.py`); the
shared vectors in tests keep the two byte-identical. Integers are big-endian. Sensor values are
signed integers in milli-units (4.25 °C is 4250), so MicroPython and CPython never disagree
about float formatting.

Reading frame, topic `edgeprov/v1/<gateway>/<device>/reading`, QoS 1::

    u8 version=1 ‖ u8 flags ‖ u8 len(id) ‖ id ‖ u32 epoch ‖ u64 ctr ‖ u64 ts_ms
    ‖ u16 len(msg) ‖ msg ‖ share

`flags` bit 0: the share is `W_dev` Jacobian (144) ‖ `R_dev` (48), otherwise compressed 48 ‖ 48
(spec §5 "device → gateway share"). Other flag bits must be zero. `msg` is the reading payload
below, signed inside the statement (spec §2), so the gateway and ledger check it byte for byte.

Reading payload `msg`::

    u8 version=1 ‖ u8 n_values ‖ (u8 len(name) ‖ name ‖ i32 value_milli)* ‖ u8 n_inputs ‖ (u8 len(ref) ‖ ref)*

Names are ASCII `[a-z0-9_]`, 1..32 bytes, strictly increasing bytewise (one canonical form);
input references (DESIGN.md §2 step 3) are record ids, 1..64 bytes each.

Ack frame, topic `.../ack` (gateway -> device), QoS 1::

    u8 version=1 ‖ u32 epoch ‖ u64 ctr ‖ u8 status ‖ u8 len(reason) ‖ reason

Status frame, topic `.../status`, retained, and the device's last will: ASCII `online` / `offline`.
"""

from __future__ import annotations

import itertools
import re
import struct
from dataclasses import dataclass, field

WIRE_VERSION = 1
TOPIC_ROOT = "edgeprov/v1"
FLAG_JACOBIAN = 0x01
MAX_ID = 64
MAX_MSG = 4096
MAX_VALUES = 32
MAX_INPUTS = 32
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
_NAME = re.compile(rb"[a-z0-9_]{1,32}")
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

ACK_RELAYED, ACK_COMMITTED, ACK_REJECTED = 0, 1, 2
STATUS_ONLINE, STATUS_OFFLINE = b"online", b"offline"


class WireError(ValueError):
    """A frame that is not in the one canonical encoding; `str()` says what is wrong."""


def topic(gateway: str, device: str, kind: str) -> str:
    """`edgeprov/v1/<gateway>/<device>/<kind>`; ids are restricted so they cannot contain `/`, `+` or `#`."""
    for name in (gateway, device):
        if not _ID.fullmatch(name):
            raise WireError(f"id {name!r} is not 1..64 of [A-Za-z0-9_.-]")
    return f"{TOPIC_ROOT}/{gateway}/{device}/{kind}"


def parse_topic(name: str) -> tuple[str, str, str]:
    """Inverse of `topic`: (gateway, device, kind)."""
    parts = name.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise WireError(f"topic {name!r} is not {TOPIC_ROOT}/<gateway>/<device>/<kind>")
    topic(parts[2], parts[3], parts[4])
    return parts[2], parts[3], parts[4]


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = memoryview(data), 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WireError(f"{self.what} is truncated at byte {self.pos}")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise WireError(f"{self.what} has {len(self.data) - self.pos} trailing bytes")


@dataclass(frozen=True)
class Payload:
    """The reading payload `msg`: named integer values (milli-units) and input record references."""

    values: tuple[tuple[str, int], ...]
    inputs: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        names = [n.encode() for n, _ in self.values]
        if not 1 <= len(names) <= MAX_VALUES or any(not _NAME.fullmatch(n) for n in names):
            raise WireError(f"1..{MAX_VALUES} values with names of 1..32 [a-z0-9_] are required")
        if any(a >= b for a, b in itertools.pairwise(names)):
            raise WireError("value names must be strictly increasing")
        if any(not I32_MIN <= v <= I32_MAX for _, v in self.values):
            raise WireError("values are i32 milli-units")
        if len(self.inputs) > MAX_INPUTS or any(not 1 <= len(r) <= MAX_ID for r in self.inputs):
            raise WireError(f"at most {MAX_INPUTS} inputs of 1..{MAX_ID} bytes")

    @classmethod
    def of(cls, values: dict[str, int], inputs: tuple[bytes, ...] = ()) -> Payload:
        return cls(tuple(sorted(values.items())), inputs)

    def encode(self) -> bytes:
        out = bytearray([WIRE_VERSION, len(self.values)])
        for name, value in self.values:
            out += bytes([len(name)]) + name.encode() + struct.pack(">i", value)
        out.append(len(self.inputs))
        for ref in self.inputs:
            out += bytes([len(ref)]) + ref
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Payload:
        r = _Reader(data, "reading payload")
        if r.uint(1) != WIRE_VERSION:
            raise WireError("reading payload has an unknown version")
        values = []
        for _ in range(r.uint(1)):
            name = r.take(r.uint(1))
            values.append((name.decode("ascii", "replace"), struct.unpack(">i", r.take(4))[0]))
        inputs = tuple(r.take(r.uint(1)) for _ in range(r.uint(1)))
        r.end()
        return cls(tuple(values), inputs)

    def value(self, name: str) -> int | None:
        return dict(self.values).get(name)


@dataclass(frozen=True)
class Reading:
    """One reading frame: the statement fields the device signed plus its share bytes."""

    device_id: str
    epoch: int
    ctr: int
    ts_ms: int
    msg: bytes
    share: bytes
    jacobian: bool = False
    payload: Payload = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.device_id):
            raise WireError("device id is not 1..64 of [A-Za-z0-9_.-]")
        if not 1 <= self.epoch < 2**32 or not 0 < self.ctr < 2**64 or not 0 <= self.ts_ms < 2**64:
            raise WireError("epoch must be a u32 >= 1, ctr a u64 >= 1, ts_ms a u64")
        if len(self.msg) > MAX_MSG:
            raise WireError(f"reading payload exceeds {MAX_MSG} bytes")
        if len(self.share) != (192 if self.jacobian else 96):
            raise WireError("share must be 96 bytes (compressed) or 192 (Jacobian W_dev)")
        object.__setattr__(self, "payload", Payload.decode(self.msg))

    def encode(self) -> bytes:
        dev = self.device_id.encode()
        head = struct.pack(">BBB", WIRE_VERSION, FLAG_JACOBIAN if self.jacobian else 0, len(dev))
        fields = struct.pack(">IQQH", self.epoch, self.ctr, self.ts_ms, len(self.msg))
        return head + dev + fields + self.msg + self.share

    @classmethod
    def decode(cls, data: bytes) -> Reading:
        r = _Reader(data, "reading frame")
        if r.uint(1) != WIRE_VERSION:
            raise WireError("reading frame has an unknown version")
        flags = r.uint(1)
        if flags & ~FLAG_JACOBIAN:
            raise WireError(f"reading frame has unknown flags {flags:#04x}")
        device_id = r.take(r.uint(1)).decode("ascii", "replace")
        epoch, ctr, ts_ms = r.uint(4), r.uint(8), r.uint(8)
        msg = r.take(r.uint(2))
        share = r.take(192 if flags & FLAG_JACOBIAN else 96)
        r.end()
        return cls(device_id, epoch, ctr, ts_ms, msg, share, bool(flags & FLAG_JACOBIAN))


@dataclass(frozen=True)
class Ack:
    """The gateway's answer to one reading: relayed, committed or rejected (with a reason)."""

    epoch: int
    ctr: int
    status: int
    reason: str = ""

    def encode(self) -> bytes:
        reason = self.reason.encode()[:255]
        return struct.pack(">BIQBB", WIRE_VERSION, self.epoch, self.ctr, self.status, len(reason)) + reason

    @classmethod
    def decode(cls, data: bytes) -> Ack:
        r = _Reader(data, "ack frame")
        if r.uint(1) != WIRE_VERSION:
            raise WireError("ack frame has an unknown version")
        epoch, ctr, status = r.uint(4), r.uint(8), r.uint(1)
        if status not in (ACK_RELAYED, ACK_COMMITTED, ACK_REJECTED):
            raise WireError(f"ack frame has an unknown status {status}")
        reason = r.take(r.uint(1)).decode("utf-8", "replace")
        r.end()
        return cls(epoch, ctr, status, reason)
