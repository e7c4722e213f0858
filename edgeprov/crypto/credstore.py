"""Credential store and Z_cred cache (spec §3.6 step 4 and rule L4, review F3).

Keyed by (cred_id, id, epoch, pd), never coarser: a per-id key lets a device reuse a Z for a
policy it fails; a per-cred_id key lets one device sign as another. An entry is created only from
a verified full-form signature for that exact tuple.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from py_arkworks_bls12381 import GT

from edgeprov.crypto.objects import Credential


@dataclass(frozen=True)
class CredKey:
    cred_id: bytes
    device_id: bytes
    epoch: int
    pd: bytes


@dataclass(frozen=True)
class CachedCredential:
    cred: Credential
    Z: GT  # Z_cred = e(g1, g2)^{x_att}


class CredentialStore:
    """In-memory store with LRU eviction; a ledger persists credentials itself and refills it."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CredKey, CachedCredential] = OrderedDict()

    def get(self, key: CredKey) -> CachedCredential | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def add_verified(self, key: CredKey, cred: Credential, Z: GT) -> None:
        """Only `abs_iot.verify`/`batch_verify` call this, after a full-form signature verified under `key`."""
        if key.cred_id != cred.cred_id:
            raise ValueError("credential does not match its key")
        self._entries[key] = CachedCredential(cred, Z)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
