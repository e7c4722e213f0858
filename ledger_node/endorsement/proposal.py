"""Proposals, endorsements and endorsed transactions: the signed JSON that moves between roles.

Proposal (client → endorsers)::

    {"body": {"contract": str, "fn": str, "args": {...}, "creator": hex key or "", "nonce": hex},
     "sig": hex Ed25519 over PROPOSAL_TAG ‖ canonical(body), or "" when creator is ""}

The proposal id (Fabric's txid) is SHA-256(PROPOSAL_TAG ‖ canonical(body)): the signature is not
part of it, so one proposal has one id however it is endorsed. Unsigned proposals are allowed
only for contracts whose inputs carry their own authority (registry: AA signature; readings:
ABS signature; verification: anyone may ask).

Endorsement: node i's Ed25519 signature over ENDORSE_TAG ‖ u16 len(chain) ‖ chain ‖ proposal id ‖
SHA-256(canonical({"rwset", "response"})). Endorsed transaction (block payload):
canonical({"proposal", "rwset", "response", "endorsements": [[node, sig hex], ...]}).
rwset = {"reads": [[key, [height, index] | null]], "writes": [[key, value]], "checks": {...}}.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger_node.block import MAX_TX_BYTES
from ledger_node.state import canonical

PROPOSAL_TAG = b"edgeprov/proposal/v1"
ENDORSE_TAG = b"edgeprov/endorse/v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z_]{1,32}")


class ProposalError(ValueError):
    """A proposal or transaction that is malformed or wrongly signed; `code` is its reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass(frozen=True)
class Proposal:
    body: dict
    sig: str

    @property
    def id(self) -> str:
        return hashlib.sha256(PROPOSAL_TAG + canonical(self.body)).hexdigest()

    @property
    def creator(self) -> str:
        return self.body["creator"]

    def to_json(self) -> dict:
        return {"body": self.body, "sig": self.sig}


def make_proposal(contract: str, fn: str, args: dict, key: Ed25519PrivateKey | None = None) -> Proposal:
    creator = key.public_key().public_bytes_raw().hex() if key is not None else ""
    body = {"contract": contract, "fn": fn, "args": args, "creator": creator, "nonce": secrets.token_hex(16)}
    sig = key.sign(PROPOSAL_TAG + canonical(body)).hex() if key is not None else ""
    return Proposal(body, sig)


def parse_proposal(doc: object) -> Proposal:
    """Check shape, encodability and the creator's signature; raises ProposalError."""
    if not isinstance(doc, dict) or set(doc) != {"body", "sig"} or not isinstance(doc["sig"], str):
        raise ProposalError("MALFORMED_PROPOSAL", "a proposal is exactly {body, sig}")
    body = doc["body"]
    if not isinstance(body, dict) or set(body) != {"contract", "fn", "args", "creator", "nonce"}:
        raise ProposalError("MALFORMED_PROPOSAL", "body is exactly {contract, fn, args, creator, nonce}")
    if not all(isinstance(body[k], str) for k in ("contract", "fn", "creator", "nonce")):
        raise ProposalError("MALFORMED_PROPOSAL", "contract, fn, creator and nonce are strings")
    if not _NAME.fullmatch(body["contract"]) or not _NAME.fullmatch(body["fn"]) or not isinstance(body["args"], dict):
        raise ProposalError("MALFORMED_PROPOSAL", "contract and fn are [a-z_] names; args is an object")
    if not 1 <= len(body["nonce"]) <= 64:
        raise ProposalError("MALFORMED_PROPOSAL", "nonce is 1..64 characters")
    try:
        message = PROPOSAL_TAG + canonical(body)
    except (ValueError, TypeError):
        raise ProposalError("MALFORMED_PROPOSAL", "body is not plain JSON (NaN or infinity?)") from None
    if len(message) > MAX_TX_BYTES // 2:
        raise ProposalError("MALFORMED_PROPOSAL", "proposal too large")
    _check_creator(body["creator"], doc["sig"], message)
    return Proposal(body, doc["sig"])


def _check_creator(creator: str, sig: str, message: bytes) -> None:
    if not creator:
        if sig:
            raise ProposalError("BAD_CREATOR_SIGNATURE", "an unsigned proposal carries no signature")
        return
    if not _HEX64.fullmatch(creator):
        raise ProposalError("MALFORMED_PROPOSAL", "creator is a 32-byte Ed25519 key in lower-case hex")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(creator)).verify(bytes.fromhex(sig), message)
    except (ValueError, InvalidSignature):
        raise ProposalError("BAD_CREATOR_SIGNATURE", "the creator's signature does not verify") from None


def result_digest(rwset: dict, response: dict) -> bytes:
    return hashlib.sha256(canonical({"rwset": rwset, "response": response})).digest()


def endorsement_message(chain_id: bytes, proposal_id: str, digest: bytes) -> bytes:
    return ENDORSE_TAG + struct.pack(">H", len(chain_id)) + chain_id + bytes.fromhex(proposal_id) + digest


@dataclass(frozen=True)
class Transaction:
    proposal: Proposal
    rwset: dict
    response: dict
    endorsements: tuple[tuple[int, str], ...]

    def encode(self) -> bytes:
        return canonical({"proposal": self.proposal.to_json(), "rwset": self.rwset, "response": self.response,
                          "endorsements": [list(e) for e in self.endorsements]})  # fmt: skip


def decode_transaction(raw: bytes) -> Transaction:
    """Shape checks only (signatures are the validator's job); raises ProposalError."""
    try:
        doc = json.loads(raw)
        proposal = doc["proposal"]
        body, rwset, response, endorsements = proposal["body"], doc["rwset"], doc["response"], doc["endorsements"]
        if not isinstance(body, dict) or not isinstance(proposal["sig"], str) or not isinstance(response, dict):
            raise TypeError("proposal body and response are objects")
        reads = [(str(k), None if v is None else (int(v[0]), int(v[1]))) for k, v in rwset["reads"]]
        writes = [(str(k), v) for k, v in rwset["writes"]]
        if not all(isinstance(v, dict) for _, v in writes) or not isinstance(rwset["checks"], dict):
            raise TypeError("write values and checks are objects")
        sigs = tuple((int(n), str(s)) for n, s in endorsements)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ProposalError("MALFORMED_TX", str(exc)) from None
    rw = {"reads": [[k, None if v is None else list(v)] for k, v in reads], "writes": [list(w) for w in writes],
          "checks": rwset["checks"]}  # fmt: skip
    return Transaction(Proposal(body, proposal["sig"]), rw, response, sigs)
