"""Node signatures: what each signed statement says, and who may have signed it.

Every signed statement starts with a domain tag and the chain id, so a signature made for one
purpose or one cluster is never valid for another. The Ed25519 scheme is the real one; the
simulator injects a keyed-hash scheme of the same shape (see simulator.SimKeys) so thousands of
seeds run fast while the replica code stays the same.
"""

from __future__ import annotations

import struct
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

LEDGER_INFO_TAG = b"edgeprov/ledger-info/v1"
TIMEOUT_TAG = b"edgeprov/timeout/v1"


def ledger_info_message(chain_id: bytes, block_hash: bytes, aux: bytes) -> bytes:
    """The statement behind votes and commit certificates (DiemBFT v4, LedgerCommitInfo).

    For a vote, `block_hash` is the commit candidate (or zeros) and `aux` the vote-info hash; for a
    commit attestation `aux` is zeros. Either way 2f+1 such signatures over a block hash prove it
    committed.
    """
    return LEDGER_INFO_TAG + struct.pack(">H", len(chain_id)) + chain_id + block_hash + aux


def timeout_message(chain_id: bytes, round_: int, high_qc_round: int) -> bytes:
    """DiemBFT v4 signs a timeout over (round, high-QC round), not the whole QC, so a TC stays small."""
    return TIMEOUT_TAG + struct.pack(">H", len(chain_id)) + chain_id + struct.pack(">QQ", round_, high_qc_round)


class Signer(Protocol):
    node_id: int

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, node: int, message: bytes, signature: bytes) -> bool: ...


class Ed25519Signer:
    def __init__(self, node_id: int, private_key: Ed25519PrivateKey) -> None:
        self.node_id = node_id
        self._key = private_key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class Ed25519Verifier:
    """Verifies against the configured node public keys (raw 32-byte Ed25519)."""

    def __init__(self, public_keys: dict[int, bytes]) -> None:
        self._keys = {node: Ed25519PublicKey.from_public_bytes(raw) for node, raw in public_keys.items()}

    def verify(self, node: int, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(node)
        if key is None or len(signature) != 64:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True
