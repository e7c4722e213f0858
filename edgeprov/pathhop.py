"""Signed path hops: which gateway relayed a reading and when (DESIGN.md §2 step 4, §3 "a wrong path is attributable").

A hop is (gateway id, received_ms) signed with the gateway's Ed25519 key over canonical bytes that
bind the reading and the hop before it, so hops chain and none can be moved to another reading::

    b"edgeprov-hop-v1" ‖ u8 len(gateway) ‖ gateway ‖ u64 received_ms
    ‖ SHA-256(stmt) ‖ previous hop's signature (64 bytes) or nothing for the first hop

`stmt` is the reading's statement (spec §2, `Statement.encode`): aa_fp, pd, device id, epoch, ctr,
ts_ms and msg. Verifiers rebuild it from the record's checked fields, as for the signature (rule G2).
The gateway's public key is the one in its AA-signed "gateway" registration (edgeprov.registration).
JSON form: {"gateway": str, "received_ms": int, "sig": hex}.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgeprov.crypto.statement import Statement

HOP_DOMAIN = b"edgeprov-hop-v1"
SIG_SIZE = 64
KEY_FORMAT = "edgeprov-gateway-key"
KEY_VERSION = 1


class HopError(ValueError):
    """A hop that is malformed or whose signature does not verify; `str()` says which and why."""


@dataclass(frozen=True)
class Hop:
    gateway: str
    received_ms: int
    sig: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.gateway.encode()) <= 255:
            raise HopError("hop gateway id must be 1..255 bytes")
        if not 0 <= self.received_ms < 2**64:
            raise HopError("hop received_ms must be a u64")
        if len(self.sig) != SIG_SIZE:
            raise HopError(f"hop signature must be {SIG_SIZE} bytes")

    def to_json(self) -> dict:
        return {"gateway": self.gateway, "received_ms": self.received_ms, "sig": self.sig.hex()}

    @classmethod
    def from_json(cls, doc: object) -> Hop:
        try:
            if not isinstance(doc, dict) or set(doc) != {"gateway", "received_ms", "sig"}:
                raise HopError("a hop is exactly {gateway, received_ms, sig}")
            gateway, received_ms, sig = doc["gateway"], doc["received_ms"], doc["sig"]
            if not isinstance(gateway, str) or type(received_ms) is not int or not isinstance(sig, str):
                raise HopError("hop fields have the wrong types")
            return cls(gateway, received_ms, bytes.fromhex(sig))
        except ValueError as exc:
            raise HopError(f"malformed hop: {exc}") from None


def hop_message(gateway: str, received_ms: int, stmt: Statement, previous: Hop | None) -> bytes:
    """The canonical bytes a hop signs (module docstring)."""
    gw = gateway.encode()
    if not 1 <= len(gw) <= 255 or not 0 <= received_ms < 2**64:
        raise HopError("hop gateway id must be 1..255 bytes and received_ms a u64")
    digest = hashlib.sha256(stmt.encode()).digest()
    prev = previous.sig if previous is not None else b""
    return HOP_DOMAIN + bytes([len(gw)]) + gw + received_ms.to_bytes(8, "big") + digest + prev


def sign_hop(
    key: Ed25519PrivateKey, gateway: str, received_ms: int, stmt: Statement, previous: Hop | None = None
) -> Hop:
    return Hop(gateway, received_ms, key.sign(hop_message(gateway, received_ms, stmt, previous)))


def verify_hop(public_key: Ed25519PublicKey, hop: Hop, stmt: Statement, previous: Hop | None = None) -> None:
    """Raise HopError unless `hop` was signed by `public_key` for this statement after `previous`."""
    try:
        public_key.verify(hop.sig, hop_message(hop.gateway, hop.received_ms, stmt, previous))
    except InvalidSignature:
        raise HopError(f"hop by {hop.gateway!r} at {hop.received_ms} does not verify for this reading") from None


def verify_path(keys: Mapping[str, Ed25519PublicKey], hops: Sequence[Hop], stmt: Statement) -> None:
    """Verify a whole chain; `keys` maps gateway ids to their registered public keys."""
    previous = None
    for hop in hops:
        if hop.gateway not in keys:
            raise HopError(f"hop by unregistered gateway {hop.gateway!r}")
        verify_hop(keys[hop.gateway], hop, stmt, previous)
        previous = hop


def encode_key(gateway: str, key: Ed25519PrivateKey) -> bytes:
    """The gateway's key file (written 0600 by `edgeprov authority gateway`)."""
    doc = {
        "format": KEY_FORMAT,
        "version": KEY_VERSION,
        "gateway": gateway,
        "signing_key": key.private_bytes_raw().hex(),
    }
    return json.dumps(doc).encode()


def load_key(path: Path) -> tuple[str, Ed25519PrivateKey]:
    """Read a gateway key file: (gateway id, key). Refuses a file others can read; never echoes its content."""
    if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HopError(f"{path} is accessible by others; chmod 600 it")
    try:
        doc = json.loads(path.read_bytes())
        if doc["format"] != KEY_FORMAT or doc["version"] != KEY_VERSION:
            raise ValueError("unknown format or version")
        return str(doc["gateway"]), Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["signing_key"]))
    except (KeyError, TypeError, ValueError):
        raise HopError(f"{path} is not a gateway key file") from None
