"""Device Registration statements signed by the attribute authority (DESIGN.md §2 step 1, spec §3.6 L5).

The ledger's Device Registration contract stores these; a re-key issues epoch + 1, a revocation
ends the device. Signed with the authority's Ed25519 key over a canonical JSON encoding
(edgeprov.signed_doc), so the ledger and auditors check them knowing only the authority's public key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov.signed_doc import SignedDocument

FORMAT = "edgeprov-registration"
VERSION = 1


def attributes_digest(attrs: list[bytes]) -> str:
    """SHA-256 over the sorted, length-prefixed attributes: the registry commits to them without listing them."""
    h = hashlib.sha256(b"edgeprov-attributes-v1")
    for a in sorted(attrs):
        h.update(bytes([len(a)]) + a)
    return h.hexdigest()


@dataclass(frozen=True)
class Registration(SignedDocument):
    """`action` is "register" (first key or re-key, epoch counts up), "revoke", or "gateway".

    A "gateway" entry names no device: it binds `gateway` to `public_key` (raw Ed25519, hex), the
    key that signs its path hops (edgeprov.pathhop); `epoch` counts that gateway's keys.
    """

    action: str
    device: str
    epoch: int
    aa_fp: str
    gateway: str = ""
    policy: str = ""
    pd: str = ""
    attributes_digest: str = ""
    issued_at_ms: int = 0
    public_key: str = ""

    FORMAT = FORMAT
    VERSION = VERSION
    KIND = "registration"

    @classmethod
    def verify(cls, doc: dict, public_key: Ed25519PublicKey) -> Registration:
        """Parse a signed document; raises ValueError on any mismatch or a bad signature."""
        registration = cls.parse_signed(doc, public_key)
        if registration.action not in ("register", "revoke", "gateway"):
            raise ValueError("registration rejected: unknown action")
        if registration.action == "gateway" and (registration.device or not _is_ed25519_hex(registration.public_key)):
            raise ValueError("registration rejected: a gateway entry names no device and a 32-byte hex public key")
        return registration


def _is_ed25519_hex(text: str) -> bool:
    try:
        return isinstance(text, str) and len(bytes.fromhex(text)) == 32
    except ValueError:
        return False
