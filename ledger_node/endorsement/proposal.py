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

Reading batches (contracts/README.md "Batched readings"): one proposal `readings.submit_batch` with
args {"items": [{"args": <readings.submit args>, "nonce": str}, ...]} carries up to MAX_ITEMS
readings. Item k keeps the id it would have as a proposal of its own, `item_id(args, nonce)` = the id
of {"contract": "readings", "fn": "submit", "args", "creator": "", "nonce"}, so per-reading status,
records and proofs are found by the same ids either way. Its endorsement is ONE signature over the
batch's rwset {"reads": [], "writes": [], "checks": {}, "items": [item rwset | null]} and response
{"items": [{"id", "record"} | {"id", "code", "message"}]}: null rwset = refused by the endorser. An
item's writes carry each value as its canonical JSON text, so validators store the bytes as they
are instead of parsing and encoding them again.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger_node.block import MAX_TX_BYTES
from ledger_node.state import canonical

PROPOSAL_TAG = b"edgeprov/proposal/v1"
ENDORSE_TAG = b"edgeprov/endorse/v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z_]{1,32}")
BATCH_CONTRACT, BATCH_FN, ITEM_FN = "readings", "submit_batch", "submit"
MAX_ITEMS = 256
MAX_PROPOSAL_BYTES = MAX_TX_BYTES // 2  # tag and canonical body: room left for the endorsed results


class ProposalError(ValueError):
    """A proposal or transaction that is malformed or wrongly signed; `code` is its reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass(frozen=True)
class Proposal:
    body: dict
    sig: str

    @cached_property
    def id(self) -> str:
        """Computed once: the endorser, the validator and the API each need it (profiled hot spot)."""
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


def item_body(args: dict, nonce: str) -> dict:
    """The single-reading proposal body an item of a batch stands for (its id is the item's id)."""
    return {"contract": BATCH_CONTRACT, "fn": ITEM_FN, "args": args, "creator": "", "nonce": nonce}


def item_id(args: dict, nonce: str) -> str:
    return Proposal(item_body(args, nonce), "").id


def make_batch_proposal(items: list[tuple[dict, str]]) -> Proposal:
    """An unsigned readings.submit_batch proposal of (reading args, item nonce) pairs."""
    args = {"items": [{"args": a, "nonce": n} for a, n in items]}
    return Proposal({"contract": BATCH_CONTRACT, "fn": BATCH_FN, "args": args, "creator": "",
                     "nonce": secrets.token_hex(16)}, "")  # fmt: skip


def is_batch(body: dict) -> bool:
    return body.get("contract") == BATCH_CONTRACT and body.get("fn") == BATCH_FN


def batch_items(body: dict) -> list[tuple[dict, str]]:
    """The (args, nonce) items of a batch proposal body; ProposalError when malformed."""
    items = body["args"].get("items")
    if set(body["args"]) != {"items"} or not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise ProposalError("MALFORMED_PROPOSAL", f"a reading batch is {{items: [1..{MAX_ITEMS} items]}}")
    out = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"args", "nonce"} or not isinstance(item["args"], dict):
            raise ProposalError("MALFORMED_PROPOSAL", "a batch item is exactly {args: object, nonce: string}")
        if not isinstance(item["nonce"], str) or not 1 <= len(item["nonce"]) <= 64:
            raise ProposalError("MALFORMED_PROPOSAL", "an item nonce is 1..64 characters")
        out.append((item["args"], item["nonce"]))
    return out


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
    if len(message) > MAX_PROPOSAL_BYTES:
        raise ProposalError("MALFORMED_PROPOSAL", "proposal too large")
    _check_creator(body["creator"], doc["sig"], message)
    if is_batch(body):
        batch_items(body)
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
    """Shape checks only (signatures are the validator's job); raises ProposalError. The parsed
    read/write sets are kept as they are, so their digest is over exactly what was endorsed."""
    try:
        doc = json.loads(raw)
        proposal = doc["proposal"]
        body, rwset, response, endorsements = proposal["body"], doc["rwset"], doc["response"], doc["endorsements"]
        if not isinstance(body, dict) or not isinstance(proposal["sig"], str) or not isinstance(response, dict):
            raise TypeError("proposal body and response are objects")
        _check_rwset(rwset, dict)
        if "items" in rwset:
            items = rwset["items"]
            if not isinstance(items, list) or not isinstance(response.get("items"), list):
                raise TypeError("a batch carries items in its rwset and response")
            if len(items) != len(response["items"]) or not all(isinstance(r, dict) for r in response["items"]):
                raise TypeError("one response per item")
            for item in items:
                if item is not None:
                    _check_rwset(item, str)
        sigs = tuple((int(n), str(s)) for n, s in endorsements)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ProposalError("MALFORMED_TX", str(exc)) from None
    return Transaction(Proposal(body, proposal["sig"]), rwset, response, sigs)


def _check_rwset(rwset: dict, value: type) -> None:
    """reads [[key, [height, index] | null]], writes [[key, value]], checks {}: `value` is dict for a
    transaction's own writes, str (the value's canonical JSON) for a reading batch's items."""
    reads, writes, checks = rwset["reads"], rwset["writes"], rwset["checks"]
    if type(reads) is not list or type(writes) is not list or type(checks) is not dict:
        raise TypeError("reads and writes are lists, checks an object")
    for k, v in reads:
        version_ok = v is None or (type(v) is list and len(v) == 2 and type(v[0]) is int and type(v[1]) is int)
        if type(k) is not str or not version_ok:
            raise TypeError("a read is [key, [height, index] | null]")
    for k, v in writes:
        if type(k) is not str or type(v) is not value:
            raise TypeError(f"a write is [key, {value.__name__}]")
