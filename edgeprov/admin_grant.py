"""Use-case admin grants signed by the attribute authority (second seed paper §4.4; issue 4).

A grant names who administers a use case (its minting policy, allow-list, pending requests): the
admin's client key is the raw Ed25519 public key (hex) that signs their proposals, i.e. the
`creator` a contract sees. The use-case contracts (ledger_node.contracts.specific) accept `setup`
and `transfer_admin` only with a grant the authority signed, so nobody can seize a use case by
calling `setup` first. Issued with `edgeprov authority grant-admin`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov.signed_doc import SignedDocument

FORMAT = "edgeprov-admin-grant"
POLICIES = ("allowlist", "pending")
_USECASE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_ADMIN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AdminGrant(SignedDocument):
    """`admin` administers `usecase` under minting `policy` from `issued_at_ms` (a newer grant hands over)."""

    usecase: str
    admin: str
    policy: str
    issued_at_ms: int

    FORMAT = FORMAT
    KIND = "admin grant"

    def check(self) -> AdminGrant:
        """The grant's own fields are well formed; raises ValueError saying which is not."""
        if not isinstance(self.usecase, str) or not _USECASE.fullmatch(self.usecase):
            raise ValueError("admin grant rejected: usecase must be 1..32 of [a-z0-9_-], starting with a letter")
        if not isinstance(self.admin, str) or not _ADMIN.fullmatch(self.admin):
            raise ValueError("admin grant rejected: admin must be a 32-byte Ed25519 public key in lower-case hex")
        if self.policy not in POLICIES:
            raise ValueError(f"admin grant rejected: policy must be one of {', '.join(POLICIES)}")
        if type(self.issued_at_ms) is not int or not 0 <= self.issued_at_ms < 2**63:
            raise ValueError("admin grant rejected: issued_at_ms must be a non-negative 63-bit integer")
        return self

    @classmethod
    def verify(cls, doc: object, public_key: Ed25519PublicKey) -> AdminGrant:
        """Parse a signed grant; raises BadSignature (edgeprov.signed_doc) or ValueError."""
        return cls.parse_signed(doc, public_key).check()
