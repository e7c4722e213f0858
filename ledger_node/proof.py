"""Proof bundles for one record, and their offline verification (DESIGN.md §2 step 8, PROOFS.md).

A bundle lets an auditor who trusts none of the operators check a reading knowing only the node
public keys and the attribute authority's public keys: each transaction it carries comes with its
Merkle path (RFC 6962), the block header, the commit certificate (2f+1 node signatures over the
header hash) and its validation result, attested by node signatures. Validation results are not
covered by the block hash (ordering comes before execution, as in Fabric), which is why they need
their own attestations: f+1 of them mean at least one honest node found the transaction valid.

Everything here is a pure function of its inputs: no network, no clock, no files.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov.crypto.abs_iot import RegistryEntry, SignatureRejected, verify
from edgeprov.crypto.objects import Credential, MasterPublicKey, Signature
from edgeprov.crypto.points import DecodeError as CryptoDecodeError
from edgeprov.crypto.policy import PolicyError, parse_policy
from edgeprov.pathhop import HopError, verify_path
from edgeprov.registration import Registration
from ledger_node.bft.replica import ReplicaConfig
from ledger_node.bft.signing import Ed25519Verifier, Signer, ledger_info_message
from ledger_node.block import (
    HASH_SIZE,
    MAX_SIGNERS,
    MAX_TX_BYTES,
    Block,
    BlockHeader,
    merkle_proof,
    tx_id,
    verify_merkle_proof,
)
from ledger_node.blockstore import SqliteBlockStore
from ledger_node.contracts import ContractError, readings, registry, storage
from ledger_node.endorsement.proposal import (
    BATCH_CONTRACT,
    BATCH_FN,
    MAX_ITEMS,
    ProposalError,
    batch_items,
    decode_transaction,
)
from ledger_node.endorsement.validator import status_key
from ledger_node.state import get

FORMAT = "edgeprov-proof-bundle"
VERSION = 1
NODES_FORMAT = "edgeprov-nodes"
RESULT_TAG = b"edgeprov/tx-result/v1"
ITEM_RESULT_TAG = b"edgeprov/tx-item-result/v1"
MAX_PATH = 64
MAX_REASON = 256


class BundleError(ValueError):
    """A bundle (or nodes file) that is not well formed; the message names the offending field."""


# ---- node sets and result attestations ---------------------------------------------------------


@dataclass(frozen=True)
class NodeSet:
    """The cluster a bundle was certified by: chain id and node public keys (ids 0..n-1)."""

    chain_id: str
    public_keys: tuple[bytes, ...]

    @property
    def n(self) -> int:
        return len(self.public_keys)

    @property
    def f(self) -> int:
        return ReplicaConfig(0, self.n).f

    @property
    def quorum(self) -> int:
        return ReplicaConfig(0, self.n).quorum

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(dict(enumerate(self.public_keys)))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": NODES_FORMAT,
            "version": VERSION,
            "chain_id": self.chain_id,
            "public_keys": [k.hex() for k in self.public_keys],
        }

    @classmethod
    def from_json(cls, doc: Any) -> NodeSet:
        d = _Doc(doc, "nodes")
        if d.str("format") != NODES_FORMAT or d.int("version") != VERSION:
            raise BundleError("nodes: unknown format or version")
        keys = d.list("public_keys", 1, MAX_SIGNERS)
        return cls(d.str("chain_id"), tuple(_hex(k, f"nodes.public_keys[{i}]", 32) for i, k in enumerate(keys)))


def result_message(chain_id: str, block_hash: bytes, index: int, txid: bytes, valid: bool, reason: str,
                   item: int | None = None) -> bytes:  # fmt: skip
    """What a node signs to attest a transaction's validation result, or with `item` the result of
    one reading of a reading batch transaction (PROOFS.md "result")."""
    chain, why = chain_id.encode(), reason.encode()
    if item is None:
        tag, where = RESULT_TAG, struct.pack(">I", index)
    else:
        tag, where = ITEM_RESULT_TAG, struct.pack(">II", index, item)
    head = tag + struct.pack(">H", len(chain)) + chain + block_hash + where + txid
    return head + struct.pack(">BH", int(valid), len(why)) + why


# ---- the bundle --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TxResult:
    valid: bool
    reason: str
    attestations: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Inclusion:
    """One transaction with everything that proves it is in a certified block."""

    tx: bytes
    index: int
    path: tuple[tuple[bool, bytes], ...]
    header: BlockHeader
    block_hash: bytes  # as stated by the bundle; verification recomputes it from the header
    cert_aux: bytes
    cert_sigs: tuple[tuple[int, bytes], ...]
    result: TxResult
    item: int | None = None  # a reading of a reading batch: its position; `result` is that reading's

    def result_message(self, chain_id: str) -> bytes:
        res = self.result
        return result_message(chain_id, self.block_hash, self.index, tx_id(self.tx), res.valid, res.reason, self.item)


@dataclass(frozen=True)
class ProofBundle:
    nodes: NodeSet
    record: Inclusion
    registration: Inclusion
    gateways: tuple[Inclusion, ...] = ()
    credential: bytes | None = None


def inclusion(block: Block, cert_aux: bytes, cert_sigs: tuple, index: int, valid: bool, reason: str) -> Inclusion:
    """The inclusion proof of block.txs[index] (no result attestations yet; see `attest`)."""
    path = tuple(merkle_proof(block.txs, index))
    result = TxResult(valid, reason)
    return Inclusion(block.txs[index], index, path, block.header, block.hash, cert_aux, tuple(cert_sigs), result)


def attest(inc: Inclusion, chain_id: str, signer: Signer) -> Inclusion:
    """Add `signer`'s attestation of the result; a node does this only for its own stored result."""
    res = inc.result
    others = tuple(a for a in res.attestations if a[0] != signer.node_id)
    mine = (*others, (signer.node_id, signer.sign(inc.result_message(chain_id))))
    return replace(inc, result=replace(res, attestations=tuple(sorted(mine))))


def _parts(bundle: ProofBundle) -> list[Inclusion]:
    return [bundle.record, bundle.registration, *bundle.gateways]


def _with_parts(bundle: ProofBundle, parts: list[Inclusion]) -> ProofBundle:
    return replace(bundle, record=parts[0], registration=parts[1], gateways=tuple(parts[2:]))


def merge_attestations(bundles: Iterable[dict]) -> dict:
    """One bundle carrying every node's result attestations, from bundles of the same record served
    by different nodes; refuses bundles about different transactions or results."""
    parsed = [bundle_from_json(b) for b in bundles]
    if not parsed:
        raise BundleError("no bundles to merge")

    def claim(inc: Inclusion) -> tuple:
        return inc.tx, inc.header, inc.item, inc.result.valid, inc.result.reason

    first = parsed[0]
    if any([claim(i) for i in _parts(p)] != [claim(i) for i in _parts(first)] for p in parsed[1:]):
        raise BundleError("the bundles disagree about a transaction or its result")
    merged = []
    for k, inc in enumerate(_parts(first)):
        sigs = dict(a for p in parsed for a in _parts(p)[k].result.attestations)
        merged.append(replace(inc, result=replace(inc.result, attestations=tuple(sorted(sigs.items())))))
    return bundle_to_json(_with_parts(first, merged))


# ---- JSON encoding -----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _inclusion_json(inc: Inclusion) -> dict[str, Any]:
    h = inc.header
    item = {} if inc.item is None else {"item": inc.item}
    return item | {
        "tx": _b64(inc.tx),
        "txid": tx_id(inc.tx).hex(),
        "index": inc.index,
        "path": [{"left": left, "hash": sib.hex()} for left, sib in inc.path],
        "header": {
            "height": h.height,
            "round": h.round,
            "prev_hash": h.prev_hash.hex(),
            "merkle_root": h.merkle_root.hex(),
            "proposer": h.proposer,
            "timestamp_ms": h.timestamp_ms,
        },
        "block_hash": inc.block_hash.hex(),
        "cert": {"aux": inc.cert_aux.hex(), "sigs": [{"node": n, "sig": s.hex()} for n, s in inc.cert_sigs]},
        "result": {
            "valid": inc.result.valid,
            "reason": inc.result.reason,
            "attestations": [{"node": n, "sig": s.hex()} for n, s in inc.result.attestations],
        },
    }


def bundle_to_json(bundle: ProofBundle) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "chain_id": bundle.nodes.chain_id,
        "nodes": bundle.nodes.to_json(),
        "record": _inclusion_json(bundle.record),
        "registration": _inclusion_json(bundle.registration),
        "gateways": [_inclusion_json(g) for g in bundle.gateways],
        "credential": bundle.credential.hex() if bundle.credential is not None else None,
    }


class _Doc:
    """Strict typed access to a JSON object; every failure is a BundleError naming the field."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise BundleError(f"{where}: expected an object")
        self.doc, self.where = doc, where

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.doc:
            raise BundleError(f"{self.where}.{key}: missing")
        value = self.doc[key]
        # bool is an int subclass; an int field must not accept true/false.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BundleError(f"{self.where}.{key}: wrong type {type(value).__name__}")
        return value

    def int(self, key: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
        value = self.get(key, int)
        if not lo <= value <= hi:
            raise BundleError(f"{self.where}.{key}: {value} out of range {lo}..{hi}")
        return value

    def str(self, key: str, limit: int = 4096) -> str:
        value = self.get(key, str)
        if len(value) > limit:
            raise BundleError(f"{self.where}.{key}: longer than {limit}")
        return value

    def list(self, key: str, lo: int, hi: int) -> list:
        value = self.get(key, list)
        if not lo <= len(value) <= hi:
            raise BundleError(f"{self.where}.{key}: {len(value)} items, expected {lo}..{hi}")
        return value

    def hex(self, key: str, size: int | None = None) -> bytes:
        return _hex(self.get(key, str), f"{self.where}.{key}", size)

    def obj(self, key: str) -> _Doc:
        return _Doc(self.get(key, dict), f"{self.where}.{key}")


def _hex(value: Any, where: str, size: int | None = None, limit: int = 2 * MAX_TX_BYTES) -> bytes:
    if not isinstance(value, str) or len(value) > limit:
        raise BundleError(f"{where}: expected a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise BundleError(f"{where}: not hex") from None
    if size is not None and len(raw) != size:
        raise BundleError(f"{where}: {len(raw)} bytes, expected {size}")
    return raw


def _signatures(items: list, where: str) -> tuple[tuple[int, bytes], ...]:
    out = []
    for i, item in enumerate(items):
        d = _Doc(item, f"{where}[{i}]")
        out.append((d.int("node", 0, 0xFFFF), d.hex("sig", 64)))
    return tuple(out)


def _inclusion_from_json(d: _Doc) -> Inclusion:
    tx_text = d.str("tx", 4 * MAX_TX_BYTES)
    try:
        tx = base64.b64decode(tx_text, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"{d.where}.tx: not base64") from None
    path = []
    for i, step in enumerate(d.list("path", 0, MAX_PATH)):
        s = _Doc(step, f"{d.where}.path[{i}]")
        path.append((s.get("left", bool), s.hex("hash", HASH_SIZE)))
    h = d.obj("header")
    header = BlockHeader(
        h.int("height"),
        h.int("round"),
        h.hex("prev_hash", HASH_SIZE),
        h.hex("merkle_root", HASH_SIZE),
        h.int("proposer", 0, 0xFFFF),
        h.int("timestamp_ms"),
    )
    cert, res = d.obj("cert"), d.obj("result")
    result = TxResult(
        res.get("valid", bool),
        res.str("reason", MAX_REASON),
        _signatures(res.list("attestations", 0, MAX_SIGNERS), f"{d.where}.result.attestations"),
    )
    return Inclusion(
        tx,
        d.int("index", 0, 2**32 - 1),
        tuple(path),
        header,
        d.hex("block_hash", HASH_SIZE),
        cert.hex("aux", HASH_SIZE),
        _signatures(cert.list("sigs", 0, MAX_SIGNERS), f"{d.where}.cert.sigs"),
        result,
        d.int("item", 0, MAX_ITEMS - 1) if "item" in d.doc else None,
    )


def bundle_from_json(doc: Any) -> ProofBundle:
    """Parse a bundle; raises BundleError (never anything else) on malformed input."""
    d = _Doc(doc, "bundle")
    if d.get("format", str) != FORMAT:
        raise BundleError(f"bundle.format: not {FORMAT}")
    if d.int("version") != VERSION:
        raise BundleError(f"bundle.version: {d.doc['version']} is not supported (this verifier reads {VERSION})")
    nodes = NodeSet.from_json(d.get("nodes", dict))
    if d.str("chain_id") != nodes.chain_id:
        raise BundleError("bundle.chain_id: differs from nodes.chain_id")
    credential = d.doc.get("credential")
    return ProofBundle(
        nodes,
        _inclusion_from_json(d.obj("record")),
        _inclusion_from_json(d.obj("registration")),
        tuple(_inclusion_from_json(_Doc(g, f"bundle.gateways[{i}]")) for i, g in enumerate(d.list("gateways", 0, 8))),
        None if credential is None else _hex(credential, "bundle.credential"),
    )


def parse_bundle(text: str | bytes) -> ProofBundle:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"bundle is not JSON: {exc}") from None
    return bundle_from_json(doc)


# ---- transaction content -----------------------------------------------------------------------
# Block payloads are the endorsed transactions of ledger_node/endorsement/proposal.py; the verifier
# looks inside them only through the contracts' own decoders.


def _call(tx: bytes, contract: str, fn: str) -> dict:
    """The args of an endorsed transaction calling contract.fn; BundleError for anything else."""
    try:
        body = decode_transaction(tx).proposal.body
    except ProposalError as exc:
        raise BundleError(f"transaction: {exc.message}") from None
    if body.get("contract") != contract or body.get("fn") != fn or not isinstance(body.get("args"), dict):
        raise BundleError(f"transaction is not a {contract}.{fn} call")
    return body["args"]


def registration_of(tx: bytes, aa: AuthorityKeys, action: str) -> Registration:
    """The AA-verified document of a registry transaction (`register` or `gateway`)."""
    doc = _call(tx, registry.NAME, "register" if action == "register" else action).get("doc")
    if not isinstance(doc, dict):
        raise BundleError("registry transaction carries no document")
    reg = Registration.verify(doc, aa.registration_key)
    if reg.action != action:
        raise BundleError(f"the registration is a {reg.action}, not a {action}")
    return reg


def reading_of(tx: bytes, item: int | None = None) -> readings.Reading:
    """The Data Transfer reading (item `item` of a reading batch), decoded and range-checked by the
    contract's own parser."""
    try:
        if item is None:
            return readings.parse(_call(tx, readings.NAME, "submit"))
        items = batch_items({"args": _call(tx, BATCH_CONTRACT, BATCH_FN)})
        if item >= len(items):
            raise BundleError(f"the batch has {len(items)} readings, no item {item}")
        return readings.parse(items[item][0])
    except (ContractError, ProposalError) as exc:
        raise BundleError(f"reading: {exc.message}") from None


# ---- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False  # passed because there was nothing to check (says why in detail)


@dataclass(frozen=True)
class AuthorityKeys:
    """What an auditor knows of the attribute authority: the ABS master public key and the
    Ed25519 key that signs Device Registrations."""

    mpk: MasterPublicKey
    registration_key: Ed25519PublicKey


def _certificate(inc: Inclusion, nodes: NodeSet) -> str | None:
    """Why the commit certificate does not prove the block committed, or None if it does."""
    signers = [node for node, _ in inc.cert_sigs]
    if len(set(signers)) != len(signers):
        return f"duplicate signer {next(s for s in signers if signers.count(s) > 1)}"
    unknown = [s for s in signers if not 0 <= s < nodes.n]
    if unknown:
        return f"signer {unknown[0]} is not one of the {nodes.n} nodes"
    message = ledger_info_message(nodes.chain_id.encode(), inc.block_hash, inc.cert_aux)
    verifier = nodes.verifier()
    bad = [node for node, sig in inc.cert_sigs if not verifier.verify(node, message, sig)]
    if bad:
        return f"signature of node {bad[0]} does not verify over this block hash"
    if len(signers) < nodes.quorum:
        return f"{len(signers)} signers, 2f+1 = {nodes.quorum} needed"
    return None


def _result(inc: Inclusion, nodes: NodeSet) -> str | None:
    res = inc.result
    if not res.valid:
        return f"the ledger marked it invalid ({res.reason or 'no reason given'})"
    signers = [node for node, _ in res.attestations]
    if len(set(signers)) != len(signers):
        return "duplicate result attestation"
    message = inc.result_message(nodes.chain_id)
    verifier = nodes.verifier()
    bad = [node for node, sig in res.attestations if not verifier.verify(node, message, sig)]
    if bad:
        return f"result attestation of node {bad[0]} does not verify"
    if len(signers) < nodes.f + 1:
        return f"result attested by {len(signers)} nodes, f+1 = {nodes.f + 1} needed"
    return None


def _inclusion_checks(part: str, inc: Inclusion, nodes: NodeSet) -> list[Check]:
    height = f"block {inc.header.height}, tx {inc.index}" + ("" if inc.item is None else f", reading {inc.item}")
    header_ok = Block(inc.header, ()).hash == inc.block_hash
    merkle_ok = verify_merkle_proof(inc.tx, list(inc.path), inc.header.merkle_root)
    cert_why = _certificate(inc, nodes) if header_ok else "skipped: the header hash is wrong"
    result_why = _result(inc, nodes)
    return [
        Check(f"{part}.header-hash", header_ok, height if header_ok else "header fields do not hash to block_hash"),
        Check(
            f"{part}.merkle-path",
            merkle_ok,
            "tx is under the header's Merkle root"
            if merkle_ok
            else "tx and path do not lead to the header's Merkle root",
        ),
        Check(f"{part}.certificate", cert_why is None, cert_why or f"{len(inc.cert_sigs)} valid node signatures"),
        Check(f"{part}.result", result_why is None, result_why or f"valid, attested by {len(inc.result.attestations)}"),
    ]


def _position(inc: Inclusion) -> tuple[int, int]:
    return inc.header.height, inc.index


def _registration_checks(bundle: ProofBundle, aa: AuthorityKeys) -> tuple[list[Check], Registration | None]:
    try:
        reg = registration_of(bundle.registration.tx, aa, "register")
    except ValueError as exc:  # BundleError and Registration's refusals are ValueErrors
        return [Check("registration.aa-signature", False, str(exc))], None
    fp_ok = reg.aa_fp == aa.mpk.aa_fp.hex()
    reg_at, rec_at = _position(bundle.registration), _position(bundle.record)
    return [
        Check("registration.aa-signature", True, f"{reg.device} epoch {reg.epoch}, signed by the authority"),
        Check("registration.authority", fp_ok, "aa_fp matches the authority" if fp_ok else "aa_fp of another system"),
        Check("registration.precedes-record", reg_at < rec_at, f"registration at {reg_at}, record at {rec_at}"),
    ], reg


def _gateway_keys(
    bundle: ProofBundle, trusted: NodeSet, aa: AuthorityKeys
) -> tuple[list[Check], dict[str, Ed25519PublicKey]]:
    """Inclusion and AA-signature checks of each gateway registration; the keys of the good ones."""
    checks, keys = [], {}
    for i, inc in enumerate(bundle.gateways):
        part = f"gateway[{i}]"
        checks += _inclusion_checks(part, inc, trusted)
        try:
            reg = registration_of(inc.tx, aa, "gateway")
        except ValueError as exc:
            checks.append(Check(f"{part}.aa-signature", False, str(exc)))
            continue
        before = _position(inc) < _position(bundle.record)
        checks.append(Check(f"{part}.aa-signature", True, f"gateway {reg.gateway} key epoch {reg.epoch}"))
        checks.append(Check(f"{part}.precedes-record", before, f"registered at {_position(inc)}"))
        keys[reg.gateway] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(reg.public_key))
    return checks, keys


def _signature(bundle: ProofBundle, sig: Signature) -> Signature:
    """A compact σ names its credential by cred_id; the bundle must carry that credential."""
    if not sig.is_compact:
        return sig
    if bundle.credential is None:
        raise SignatureRejected("unknown-credential", "compact signature and no credential in the bundle")
    cred = Credential.decode(bundle.credential)
    if cred.cred_id != sig.compact_cred_id:
        raise SignatureRejected("unknown-credential", "the bundle's credential is not the one the signature names")
    return Signature(sig.W, sig.R, cred)


def _abs_check(bundle: ProofBundle, reading: readings.Reading, reg: Registration, aa: AuthorityKeys) -> Check:
    """Spec §3.6 with Π from the registration, never from the reading."""
    try:
        entry = RegistryEntry(reg.device.encode(), reg.epoch, parse_policy(reg.policy, aa.mpk.d))
        verify(aa.mpk, entry, reading.record, _signature(bundle, reading.sig))
    except SignatureRejected as exc:
        return Check("record.abs-signature", False, f"ABS-IOT-V1 rejected: {exc}")
    except (PolicyError, CryptoDecodeError, ValueError) as exc:
        return Check("record.abs-signature", False, f"cannot check: {exc}")
    return Check("record.abs-signature", True, f"ABS-IOT-V1 verifies under '{reg.policy}'")


def _hops_check(bundle: ProofBundle, reading: readings.Reading, keys: dict, aa: AuthorityKeys) -> Check:
    names = ", ".join(h.gateway for h in reading.hops)
    if not bundle.gateways:
        return Check("record.path-hops", True, f"not checked: no gateway registrations in the bundle ({names})", True)
    try:
        verify_path(keys, reading.hops, reading.record.statement(aa.mpk.aa_fp))
    except (HopError, ValueError) as exc:
        return Check("record.path-hops", False, str(exc))
    return Check("record.path-hops", True, f"{len(reading.hops)} hops signed by their gateways ({names})")


def _reading_checks(bundle: ProofBundle, reg: Registration, aa: AuthorityKeys, trusted: NodeSet) -> list[Check]:
    try:
        reading = reading_of(bundle.record.tx, bundle.record.item)
    except BundleError as exc:
        return [Check("record.reading", False, str(exc))]
    record = reading.record
    bound = record.device_id == reg.device.encode() and record.epoch == reg.epoch
    pd_ok = record.pd.hex() == reg.pd
    other = "" if bound else f", but the registration is {reg.device} epoch {reg.epoch}"
    gateway_checks, keys = _gateway_keys(bundle, trusted, aa)
    return [
        Check("record.device", bound, f"{reading.record_id}{other}"),
        Check(
            "record.policy-digest", pd_ok, "pd is the registered policy's" if pd_ok else "pd is not the registered one"
        ),
        _abs_check(bundle, reading, reg, aa),
        *gateway_checks,
        _hops_check(bundle, reading, keys, aa),
    ]


def verify_bundle(bundle: ProofBundle, trusted: NodeSet, aa: AuthorityKeys) -> list[Check]:
    """Every check of PROOFS.md "Verification", in order; the bundle is good iff all are ok.

    Certificates are checked against `trusted`, never against the node set the bundle names.
    """
    same = bundle.nodes == trusted
    nodes_detail = f"chain {trusted.chain_id}, {trusted.n} nodes, 2f+1 = {trusted.quorum}"
    checks = [Check("nodes", same, nodes_detail if same else "the bundle names another chain or node set")]
    checks += _inclusion_checks("record", bundle.record, trusted)
    checks += _inclusion_checks("registration", bundle.registration, trusted)
    reg_checks, reg = _registration_checks(bundle, aa)
    checks += reg_checks
    if reg is not None:
        checks += _reading_checks(bundle, reg, aa, trusted)
    return checks


# ---- building bundles from a node's store ------------------------------------------------------


async def stored_inclusion(store: SqliteBlockStore, txid: bytes, item: int | None = None) -> Inclusion:
    """The inclusion proof of a durably committed transaction, or of reading `item` of a committed
    reading batch (its result: valid, as `t|<item id>` naming this transaction says); LookupError if
    it is not committed."""
    where = store.tx_location(txid)
    if where is None:
        raise LookupError(f"transaction {txid.hex()} is not committed")
    height, index, valid, reason = where
    [(block, cert)] = await store.read_blocks(height, 1)
    if item is not None:
        return replace(inclusion(block, cert.aux, cert.sigs, index, True, ""), item=item)
    return inclusion(block, cert.aux, cert.sigs, index, valid, reason)


async def build_proof_bundle(
    store: SqliteBlockStore,
    nodes: NodeSet,
    txid: bytes,
    registration_txid: bytes,
    gateway_txids: tuple[bytes, ...] = (),
    signer: Signer | None = None,
    credential: bytes | None = None,
    item: int | None = None,
) -> dict[str, Any]:
    """The JSON proof bundle of reading `txid` (block-store ids: SHA-256 of the transaction bytes).

    `registration_txid` is the device's Device Registration for the reading's epoch and
    `gateway_txids` the registrations of the gateways on its path (optional: without them the
    verifier cannot check path hops). `signer` (the serving node's key) attests every result;
    `merge_attestations` combines bundles from f+1 nodes. `credential` is needed when the reading
    carries a compact signature; `item` its position when `txid` is a reading batch.
    """
    parts = [await stored_inclusion(store, txid, item)]
    parts += [await stored_inclusion(store, t) for t in (registration_txid, *gateway_txids)]
    if signer is not None:
        parts = [attest(p, nodes.chain_id, signer) for p in parts]
    return bundle_to_json(_with_parts(ProofBundle(nodes, parts[0], parts[1], credential=credential), parts))


class NotProvable(LookupError):
    """The record exists but is not a reading whose transactions can be proven (or not yet durable)."""


def _committed(store: SqliteBlockStore, proposal_id: str) -> dict:
    found = get(store, status_key(proposal_id))
    if found is None:
        raise NotProvable(f"proposal {proposal_id} has no committed transaction")
    return found.value


def _committed_txid(store: SqliteBlockStore, proposal_id: str) -> bytes:
    return bytes.fromhex(_committed(store, proposal_id)["tx"])


def _entry_txid(store: SqliteBlockStore, state_key: str, what: str) -> bytes:
    found = get(store, state_key)
    if found is None or "proposal" not in found.value:
        raise NotProvable(f"{what} has no registration transaction on this ledger")
    return _committed_txid(store, found.value["proposal"])


async def record_bundle(store: SqliteBlockStore, nodes: NodeSet, record_id: str, signer: Signer) -> dict[str, Any]:
    """The proof bundle of a committed reading, found from its record id through world state:
    `rec|` names the reading's proposal, `dep|<device>|<epoch>` and `gw|<gateway>` name their
    registrations' proposals, and `t|<proposal>` gives each committed transaction's id.

    LookupError when the record does not exist; NotProvable when it is not a reading or a part
    is not durably committed yet. A registration superseded since (revoked, gateway re-keyed) is
    served as it stands now, which the verifier will reject (PROOFS.md "What a bundle does not prove").
    """
    found = get(store, storage.record_key(record_id))
    if found is None:
        raise LookupError(f"record {record_id} not found")
    rec = found.value
    if rec.get("kind") != "reading":
        raise NotProvable(f"record {record_id} is not a reading; proof bundles cover Data Transfer readings")
    registration = _entry_txid(store, registry.epoch_key(rec["device"], rec["epoch"]), f"device {rec['device']}")
    gateways = tuple(dict.fromkeys(h["gateway"] for h in rec["hops"]))
    gateway_txids = tuple(_entry_txid(store, registry.gateway_key(g), f"gateway {g}") for g in gateways)
    sig = Signature.decode(bytes.fromhex(rec["signature"]))
    credential = None
    if sig.is_compact:
        pd = bytes.fromhex(rec["pd"])
        cred = get(store, readings.stored_credential_key(sig.cred_id, rec["device"], rec["epoch"], pd))
        credential = bytes.fromhex(cred.value["credential"]) if cred else None
    committed = _committed(store, rec["proposal"])
    txid, item = bytes.fromhex(committed["tx"]), committed.get("item")
    try:
        return await build_proof_bundle(store, nodes, txid, registration, gateway_txids, signer, credential, item)
    except LookupError as exc:
        raise NotProvable(str(exc)) from None
