"""Data Transfer contract: a signed reading from a device (first seed paper; spec §3.6 L1–L5).

`submit` args (JSON)::

    {"device": str, "epoch": int, "ctr": int, "ts_ms": int, "msg": hex (edgeprov.wire.Payload),
     "pd": hex, "signature": hex (full 0x01 or compact 0x81 form), "disclosed": [hex]? (mode 1),
     "hops": [{"gateway": str, "received_ms": int, "sig": hex}]}   (edgeprov.pathhop)

Rules, in order, each with its reason code:
- UNKNOWN_DEVICE / REVOKED_DEVICE / STALE_EPOCH: Π comes only from `dev|<device>`, the entry of the
  device's current epoch (spec §3.6 step 0, L5); reading it puts it in the read set, so a revoke or
  re-key ordered first turns this reading into an MVCC conflict.
- DUPLICATE_READING: one record per (id, epoch, ctr) (L1, L3), key `rec|<id>@<epoch>#<ctr>`; an
  unused lower counter simply fills its gap. Never deduplicated by signature bytes.
- WRONG_GATEWAY / BAD_PATH: the first hop is the device's registered gateway and every hop verifies
  under its gateway's registered key (`gw|<gateway>`).
- WRONG_POLICY / BAD_SIGNATURE: ABS-IOT-V1 verification with the registry's Π (the record's pd must
  equal it); the endorser batch-verifies first (spec §3.7) and leaves verdicts in `Verdicts`.
- UNKNOWN_RECORD / INVALID_INPUT: input references in the payload must be valid records.
- FUTURE_TIMESTAMP (at validation): ts_ms > block time + skew (L2); older readings are flagged
  late at query time (committed_ms − ts_ms > late_ms).
A verified full-form signature stores its credential under `cred|<cred_id>|<id>|<epoch>|<pd>`
(L4), so later compact signatures verify against the ledger's copy.

Response: {"record": "<device>@<epoch>#<ctr>"}.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov.crypto import abs_iot
from edgeprov.crypto.abs_iot import Record, RegistryEntry, SignatureRejected
from edgeprov.crypto.credstore import CredentialStore, CredKey
from edgeprov.crypto.objects import CRED_ID_SIZE, SIG_COMPACT, Credential, Signature
from edgeprov.pathhop import Hop, HopError, verify_path
from edgeprov.wire import Payload, WireError
from ledger_node.contracts import ContractError, arg, check_dp, check_record_id, registry, storage
from ledger_node.state import TxContext, key

NAME = "readings"
MAX_HOPS = 8
U64 = 2**64


@dataclass(frozen=True)
class Reading:
    device: str
    record: Record
    sig: Signature
    sig_hex: str
    payload: Payload
    hops: tuple[Hop, ...]

    @property
    def record_id(self) -> str:
        return f"{self.device}@{self.record.epoch}#{self.record.ctr}"


def _hex(args: dict, name: str) -> bytes:
    try:
        return bytes.fromhex(arg(args, name, str))
    except ValueError:
        raise ContractError("MALFORMED", f"{name} is not hex") from None


def _uint(args: dict, name: str, bound: int) -> int:
    value = arg(args, name, int)
    if not 0 <= value < bound:
        raise ContractError("MALFORMED", f"{name} is out of range")
    return value


def parse(args: dict) -> Reading:
    """Decode and range-check every field; MALFORMED names the first bad one."""
    device = check_dp(arg(args, "device", str), "device")
    epoch, ctr, ts_ms = _uint(args, "epoch", 2**32), _uint(args, "ctr", U64), _uint(args, "ts_ms", U64)
    if epoch == 0:
        raise ContractError("MALFORMED", "epoch starts at 1")
    msg, pd, sig_bytes = _hex(args, "msg"), _hex(args, "pd"), _hex(args, "signature")
    raw_disclosed = arg(args, "disclosed", list, None)
    try:
        payload = Payload.decode(msg)
        sig = Signature.decode(sig_bytes)
        disclosed = None if raw_disclosed is None else tuple(bytes.fromhex(a) for a in raw_disclosed)
        hops = tuple(Hop.from_json(h) for h in arg(args, "hops", list))
    except (WireError, HopError, ValueError, TypeError) as exc:
        raise ContractError("MALFORMED", str(exc)) from None
    if not 1 <= len(hops) <= MAX_HOPS or len(pd) != 32:
        raise ContractError("MALFORMED", f"1..{MAX_HOPS} hops and a 32-byte pd are required")
    record = Record(device.encode(), epoch, ctr, ts_ms, msg, pd, disclosed)
    return Reading(device, record, sig, sig_bytes.hex(), payload, hops)


def verdict_key(reading: Reading, entry: dict) -> tuple:
    """What a signature verdict depends on: the record, the signature and the registry entry's Π."""
    return (reading.record, reading.sig_hex, entry["policy"])


class Verdicts(dict):
    """verdict_key -> "" (valid) or a SignatureRejected reason: filled by the endorser's batch pass."""


def registry_entry(ctx: TxContext, reading: Reading) -> tuple[dict, RegistryEntry]:
    """Spec §3.6 step 0: the current epoch's entry is the only source of Π."""
    entry = ctx.get(registry.device_key(reading.device))
    if entry is None:
        raise ContractError("UNKNOWN_DEVICE", f"device {reading.device} is not registered")
    if entry["status"] == "revoked":
        raise ContractError("REVOKED_DEVICE", f"device {reading.device} is revoked")
    if reading.record.epoch != entry["epoch"]:
        raise ContractError("STALE_EPOCH", f"epoch {reading.record.epoch}; the registered epoch is {entry['epoch']}")
    policy = registry.registry_policy(entry["policy"], ctx.env.mpk.d)
    return entry, RegistryEntry(reading.device.encode(), entry["epoch"], policy)


def credential_key(reading: Reading, pd: bytes) -> str:
    return stored_credential_key(reading.sig.cred_id, reading.device, reading.record.epoch, pd)


def stored_credential_key(cred_id: bytes, device: str, epoch: int, pd: bytes) -> str:
    return key("cred", cred_id.hex(), device, epoch, pd.hex())


def load_credential(ctx: TxContext, reading: Reading, entry: RegistryEntry) -> None:
    """L4: a compact signature verifies only against a credential the ledger stored from a verified
    full-form signature for the same (cred_id, id, epoch, pd); refill the endorser's cache from it."""
    store = ctx.env.credentials
    ck = CredKey(reading.sig.cred_id, entry.device_id, entry.epoch, reading.record.pd)
    if not reading.sig.is_compact or store is None or store.get(ck) is not None:
        return
    stored = ctx.get(credential_key(reading, reading.record.pd))
    if stored is not None:
        remember_credential(store, reading, entry, stored["credential"])


def remember_credential(store: CredentialStore, reading: Reading, entry: RegistryEntry, credential_hex: str) -> None:
    """Fill a credential cache from the ledger's copy of a verified credential (L4)."""
    cred = Credential.decode(bytes.fromhex(credential_hex))
    policy = abs_iot.policy_for_record(entry.policy, reading.record.disclosed)
    ck = CredKey(reading.sig.cred_id, entry.device_id, entry.epoch, reading.record.pd)
    store.add_verified(ck, cred, abs_iot.credential_Z(cred, policy, abs_iot.id_star(entry.device_id, entry.epoch)))


def signature_reason(ctx: TxContext, reading: Reading, entry: dict, reg: RegistryEntry, verdicts: Verdicts) -> str:
    found = verdicts.get(verdict_key(reading, entry))
    if found is not None:
        return found
    try:
        abs_iot.verify(ctx.env.mpk, reg, reading.record, reading.sig, ctx.env.credentials)
    except SignatureRejected as exc:
        return exc.reason
    return ""


def check_signature(reason: str) -> None:
    if reason == "policy-digest":
        raise ContractError("WRONG_POLICY", "the reading's pd is not the registered policy of its epoch")
    if reason:
        raise ContractError("BAD_SIGNATURE", f"ABS-IOT-V1 verification failed ({reason})")


def check_path(ctx: TxContext, reading: Reading, entry: dict) -> None:
    if reading.hops[0].gateway != entry["gateway"]:
        raise ContractError("WRONG_GATEWAY", f"first hop {reading.hops[0].gateway}, registered {entry['gateway']}")
    keys = {}
    for hop in reading.hops:
        gw = ctx.get(registry.gateway_key(hop.gateway))
        if gw is None:
            raise ContractError("BAD_PATH", f"hop by unregistered gateway {hop.gateway}")
        keys[hop.gateway] = _public_key(gw["public_key"])
    try:
        verify_path(keys, reading.hops, reading.record.statement(ctx.env.mpk.aa_fp))
    except HopError as exc:
        raise ContractError("BAD_PATH", str(exc)) from None


@lru_cache(maxsize=1024)
def _public_key(hex_key: str) -> Ed25519PublicKey:
    """A registered gateway key, parsed once (every reading's hop is checked against it)."""
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))


def execute(ctx: TxContext, reading: Reading, verdicts: Verdicts) -> dict:
    entry, reg = registry_entry(ctx, reading)
    record_id = reading.record_id
    if ctx.get(storage.record_key(record_id)) is not None:
        raise ContractError("DUPLICATE_READING", f"{record_id} is already recorded")
    check_path(ctx, reading, entry)
    load_credential(ctx, reading, reg)
    check_signature(signature_reason(ctx, reading, entry, reg, verdicts))
    try:
        inputs = [check_record_id(ref.decode("ascii")) for ref in reading.payload.inputs]
    except UnicodeDecodeError:
        raise ContractError("MALFORMED", "input references must be ASCII record ids") from None
    inputs = storage.check_inputs(ctx, inputs)
    r = reading.record
    doc = {
        "kind": "reading",
        "dp": reading.device,
        "device": reading.device,
        "epoch": r.epoch,
        "ctr": r.ctr,
        "ts_ms": r.ts_ms,
        "msg": r.msg.hex(),
        "values": dict(reading.payload.values),
        "pd": r.pd.hex(),
        "signature": reading.sig_hex,
        "disclosed": None if r.disclosed is None else [a.hex() for a in r.disclosed],
        "hops": [h.to_json() for h in reading.hops],
        "gateway": entry["gateway"],
    }
    storage.create(ctx, record_id, doc, inputs)
    ctx.put(key("cx", reading.device, f"{r.epoch:010d}", f"{r.ctr:020d}"), {"record": record_id})
    if not reading.sig.is_compact:
        ctx.put(credential_key(reading, r.pd), {"credential": reading.sig.cred.encode().hex()})
    ctx.checks["ts_ms"] = r.ts_ms
    return {"record": record_id}


def state_keys(args: dict) -> list[str]:
    """The state keys `execute` will read for these args, found without decoding any point, so an
    endorser can read them in one query and run the contract elsewhere (endorsement/reading_batch.py).
    Best effort: for malformed args it returns what it can (execution then refuses them)."""
    keys = []
    try:
        device, epoch, ctr = args["device"], args["epoch"], args["ctr"]
        keys += [registry.device_key(device), storage.record_key(f"{device}@{epoch}#{ctr}")]
        keys += [registry.gateway_key(h["gateway"]) for h in args["hops"][:MAX_HOPS]]
        sig = bytes.fromhex(args["signature"])
        if sig[:1] == bytes([SIG_COMPACT]):
            keys.append(stored_credential_key(sig[-CRED_ID_SIZE:], device, epoch, bytes.fromhex(args["pd"])))
        keys += [storage.record_key(ref.decode("ascii")) for ref in Payload.decode(bytes.fromhex(args["msg"])).inputs]
    except (KeyError, TypeError, ValueError, AttributeError, WireError):
        pass
    return keys


def submit(ctx: TxContext, args: dict, verdicts: Verdicts | None = None) -> dict:
    return execute(ctx, parse(args), verdicts if verdicts is not None else Verdicts())


FUNCTIONS = {"submit": submit}
