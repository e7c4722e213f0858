"""Documents the attribute authority signs with its Ed25519 key (DESIGN.md §2 step 1).

A document is a frozen dataclass of JSON values. Its signed bytes are the canonical JSON of
{"format", "version", **fields} (sorted keys, no spaces); the format tag keeps one kind of
document from ever verifying as another. The ledger and auditors check them knowing only the
authority's public key. Used by Device Registrations (edgeprov.registration) and use-case admin
grants (edgeprov.admin_grant).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, fields
from typing import ClassVar, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class BadSignature(ValueError):
    """The document is well formed but the authority did not sign it (or it was altered)."""


class SignedDocument:
    """Mixin for a frozen dataclass: canonical bytes, signing, and parsing a signed JSON document."""

    FORMAT: ClassVar[str]
    VERSION: ClassVar[int] = 1
    KIND: ClassVar[str]  # names the document in error messages

    def canonical(self) -> bytes:
        body = {"format": self.FORMAT, "version": self.VERSION, **asdict(self)}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def sign(self, key: Ed25519PrivateKey) -> dict:
        return {**json.loads(self.canonical()), "signature": base64.b64encode(key.sign(self.canonical())).decode()}

    @classmethod
    def parse_signed(cls, doc: object, public_key: Ed25519PublicKey) -> Self:
        """The document's fields once its format, version and signature check out.

        Raises BadSignature for a bad signature and ValueError for anything malformed; fields
        outside the dataclass are ignored (they are not signed).
        """
        try:
            values = {f.name: doc[f.name] for f in fields(cls)}
            if doc["format"] != cls.FORMAT or type(doc["version"]) is not int or doc["version"] != cls.VERSION:
                raise ValueError(f"unknown {cls.KIND} format or version")
            parsed = cls(**values)
            public_key.verify(base64.b64decode(doc["signature"], validate=True), parsed.canonical())
        except InvalidSignature:
            raise BadSignature(f"{cls.KIND} rejected: bad signature") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{cls.KIND} rejected: {type(exc).__name__}: {exc}") from None
        return parsed
