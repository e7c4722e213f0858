"""World state for the contracts: key schema, MVCC versions, and the read/write-set recorder.

Every state value the contracts write is stored as ``u64 height ‖ u32 tx index ‖ u64 block ts_ms ‖
canonical JSON``: the header is the value's MVCC version (Fabric's (block, tx) version) plus the
commit time, so "when was this written" is answered without another key. Keys are ASCII strings
joined by ``|``, a character no identifier may contain, so a prefix scan of ``eb|<record>|`` returns
exactly that record's input edges (spec §3.6 L1: one key per reading; DESIGN.md §4).

Key schema (one line per kind; ids are checked by `ids.check_*` before they reach a key):

    dev|<device>                      current Device Registration entry (registry contract)
    dep|<device>|<epoch:010d>         the entry of each epoch, for auditors re-verifying old records
    gw|<gateway>                      gateway registration: Ed25519 public key for path hops
    rec|<record>                      a provenance record (reading or generic)
    cx|<device>|<epoch:010d>|<ctr:020d>  completeness index: which counters are present
    cred|<cred_id>|<device>|<epoch>|<pd>  credential of a verified full-form signature (spec L4)
    eb|<record>|<input> / ef|<input>|<record>   lineage edges, backward and forward
    dp|<dp>                           data point: owner, approved party, use case
    op|<owner>|<operator>             operator approval
    tr|<dp>|<trace>                   trace head and length (parallel traces)
    hist|<dp>|<trace>|<n:010d>        the n-th record of a trace (history queries)
    uc|<usecase>                      use-case admin and minting policy
    ucl|<usecase>|<client>            allow-list entry;  ucr|<usecase>|<dp>  pending mint request
    vf|<record>|<proposal id>         a stored provenance verification
    t|<proposal id>                   the committed (valid) transaction of a proposal
    x|<proposal id>|<tx hash>         an invalid attempt and its reason code
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Protocol

HEADER = struct.Struct(">QIQ")
Version = tuple[int, int]
SEP = "|"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical(value: object) -> bytes:
    """The one JSON encoding that is signed, hashed and stored (one encoder: json.dumps with options
    builds a new one per call, a visible cost at one call per state write)."""
    return _CANONICAL.encode(value).encode()


def key(*parts: object) -> str:
    return SEP.join(str(p) for p in parts)


@dataclass(frozen=True, slots=True)
class Stored:
    """A decoded state value: the JSON document, its MVCC version and when it was committed."""

    value: dict
    version: Version
    ts_ms: int


def encode_value(value: dict, height: int, index: int, ts_ms: int) -> bytes:
    return HEADER.pack(height, index, ts_ms) + canonical(value)


def decode_value(raw: bytes) -> Stored:
    height, index, ts_ms = HEADER.unpack_from(raw)
    return Stored(json.loads(raw[HEADER.size :]), (height, index), ts_ms)


class Snapshot(Protocol):
    """What contracts and queries read: point lookups and ordered prefix scans of committed state."""

    def get_state(self, key: bytes) -> bytes | None: ...

    def scan_state(self, prefix: bytes, limit: int, after: bytes = b"") -> list[tuple[bytes, bytes]]: ...


def get(snapshot: Snapshot, k: str) -> Stored | None:
    raw = snapshot.get_state(k.encode())
    return decode_value(raw) if raw is not None else None


def scan(snapshot: Snapshot, prefix: str, limit: int, after: str = "") -> list[tuple[str, Stored]]:
    rows = snapshot.scan_state(prefix.encode(), limit, after.encode())
    return [(k.decode(), decode_value(v)) for k, v in rows]


class MemoryState:
    """An in-memory Snapshot with the same semantics as the node's store (unit tests, benchmarks)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get_state(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def scan_state(self, prefix: bytes, limit: int, after: bytes = b"") -> list[tuple[bytes, bytes]]:
        hits = sorted(k for k in self.data if k.startswith(prefix) and k > after)
        return [(k, self.data[k]) for k in hits[:limit]]

    def apply(self, writes: dict[bytes, bytes]) -> None:
        self.data.update(writes)


class TxContext:
    """Records what one proposal's execution read (key -> version) and wants to write.

    Reads of a key the transaction itself wrote see the new value and record nothing, as in Fabric.
    `checks` are conditions only the block can decide (a reading's timestamp against block time).
    """

    def __init__(self, snapshot: Snapshot, creator: str, proposal_id: str, env: object) -> None:
        self.snapshot = snapshot
        self.creator = creator
        self.proposal_id = proposal_id
        self.env = env
        self.reads: dict[str, Version | None] = {}
        self.writes: dict[str, dict] = {}
        self.checks: dict[str, int] = {}

    def stored(self, k: str) -> Stored | None:
        found = get(self.snapshot, k)
        self.reads.setdefault(k, found.version if found else None)
        return found

    def get(self, k: str) -> dict | None:
        if k in self.writes:
            return self.writes[k]
        found = self.stored(k)
        return found.value if found else None

    def put(self, k: str, value: dict) -> None:
        """Writing records no read: independent transactions writing the same key (a lineage edge,
        a credential) do not conflict unless one of them also read it."""
        self.writes[k] = value
