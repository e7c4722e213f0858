"""The Data Transfer transaction the gateway submits for one reading (canonical JSON, sorted keys).

{"device", "epoch", "ctr", "ts_ms", "msg" hex, "pd" hex, "signature" hex, "hops": [hop JSON]}
plus "disclosed" (hex attributes) for a mode-1 policy (spec §3.8). The outbox keeps the full form
(0x01); the compact form, allowed only once the ledger holds the credential (spec §3.6 L4), is
derived from it at submit time (compact.py). The bytes are fixed when the reading enters the
outbox, so a resubmission in the same form has the same id.
"""

from __future__ import annotations

import json

from edgeprov.crypto.objects import Signature
from edgeprov.crypto.statement import Statement
from edgeprov.pathhop import Hop


def data_transfer(stmt: Statement, sig: Signature, hops: list[Hop], disclosed: tuple[bytes, ...] | None) -> bytes:
    doc = {
        "device": stmt.device_id.decode(),
        "epoch": stmt.epoch,
        "ctr": stmt.ctr,
        "ts_ms": stmt.ts_ms,
        "msg": stmt.msg.hex(),
        "pd": stmt.pd.hex(),
        "signature": sig.encode().hex(),
        "hops": [h.to_json() for h in hops],
    }
    if disclosed is not None:
        doc["disclosed"] = [a.hex() for a in disclosed]
    return encode(doc)


def encode(doc: dict) -> bytes:
    """Canonical JSON: sorted keys, no spaces."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
