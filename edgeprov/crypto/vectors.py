"""Deterministic end-to-end vectors of ABS-IOT-V1 (spec §9.2), the contract between implementations.

`python -m edgeprov.crypto.vectors tests/vectors/abs-iot-v1.json` rewrites the file; the unit tests
regenerate it and compare byte for byte, and the firmware tests replay it under MicroPython. Every
secret in it is public by construction (test RNG): its aa_fp is refused outside test mode.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from edgeprov.crypto.abs_iot import (
    Record,
    RegistryEntry,
    combine,
    complete,
    credential,
    device_nonce,
    gateway_nonce,
    gateway_share,
    keygen,
    precompute,
    setup,
    verify,
)
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.comb import DEFAULT_W
from edgeprov.crypto.hashing import H2, iota
from edgeprov.crypto.objects import MasterPublicKey
from edgeprov.crypto.points import encode_scalar, g1_to_affine
from edgeprov.crypto.policy import Policy, RegistryPolicy, id_star, parse_policy
from edgeprov.crypto.rng import TEST_VECTOR_SEED, TestRng
from edgeprov.crypto.statement import Statement

RNG_RULE = (
    "i-th draw (one counter for both kinds): scalar = H_r(seed ‖ u32(i), 'ABS-IOT-V1-TESTRNG'), zero skipped; "
    "n bytes = XMD(seed ‖ u32(i), 'ABS-IOT-V1-TESTRNG', n)"
)
DRAW_ORDER = (
    "setup: a1, a2, a, b; per device: keygen (x_iot, x_gw, beta, q_1..q_{d-1}, r0, r_a in L order, k_nonce), "
    "nonce_seed, credential (t0, t_j in J order); per reading: device TRNG 32 bytes, gateway random 32 bytes"
)
JACOBIAN_Z = 0x1234567890ABCDEF  # any non-zero Z gives a valid Jacobian W_dev; fixed for the vectors

DEVICES = (  # (id, epoch, attributes, registry policy, readings)
    ("dev-A-0001", 1, ["fw>=2.1", "role=temp", "site=plant-7", "unit=dev-A-0001"],
     "id and 2 of (fw>=2.1, role=temp, site=plant-7)", 3),
    ("dev-B-0002", 2, ["org=acme", "type=temp"],
     "id and all of (org=acme, any of (type=hum, type=temp))", 1),
)  # fmt: skip


class _Fixed:
    """Replays given bytes as the 'fresh randomness' of one draw, so vectors can record it."""

    is_test = True

    def __init__(self, data: bytes) -> None:
        self.data = data

    def random_bytes(self, n: int) -> bytes:
        return self.data[:n]


def _affine_hex(point) -> str:
    x, y = g1_to_affine(point)
    return (x.to_bytes(48, "big") + y.to_bytes(48, "big")).hex()


def primitive_vectors() -> dict:
    """The §9.1 values (policy, statement, id*, H2, s_gw, ι)."""
    policy = Policy(2, (b"fw>=2.1", b"role=temp", b"site=plant-7"), 6)
    stmt = Statement(bytes(32), policy.pd, b"dev-A-0001", 1, 7, 1700000000000, b"temp=21.5C")
    idst = id_star(b"dev-A-0001", 1)
    return {
        "policy_enc": policy.encode().hex(),
        "pd": policy.pd.hex(),
        "stmt": stmt.encode().hex(),
        "c": encode_scalar(stmt.c).hex(),
        "id_star": idst.hex(),
        "H2_id_star": H2(idst).to_compressed_bytes().hex(),
        "s_gw_zero_knonce_zero_random": encode_scalar(gateway_nonce(bytes(32), b"dev-A-0001", stmt.c, bytes(32))).hex(),
        "iota_role_temp": encode_scalar(iota(b"role=temp")).hex(),
        "H2_role_temp": H2(b"role=temp").to_compressed_bytes().hex(),
    }


def _signed_policy(registry: RegistryPolicy, attrs: list[bytes]) -> Policy:
    return registry if isinstance(registry, Policy) else registry.disclose(set(attrs))


def _device_vectors(mpk: MasterPublicKey, alpha: int, rng: TestRng, spec: tuple) -> dict:
    name, epoch, attr_text, policy_text, readings = spec
    device_id, attrs = name.encode(), [a.encode() for a in attr_text]
    registry = parse_policy(policy_text, mpk.d)
    policy = _signed_policy(registry, attrs)
    k_iot, k_fog = keygen(mpk, alpha, device_id, epoch, attrs, rng)
    bundle = DeviceBundle.create(mpk, k_iot, rng.random_bytes(32), (policy.pd,), DEFAULT_W)
    cred = credential(k_fog, policy, rng)
    out = {
        "device_id": name,
        "epoch": epoch,
        "attributes": attr_text,
        "policy": str(registry),
        "disclosed": [a.decode() for a in policy.attrs] if policy.mode == 1 else None,
        "policy_enc": policy.encode().hex(),
        "pd": policy.pd.hex(),
        "G_iot": k_iot.G_iot.to_compressed_bytes().hex(),
        "G_iot_affine": _affine_hex(k_iot.G_iot),
        "nonce_seed": bundle.nonce_seed.hex(),
        "k_fog": k_fog.encode().hex(),
        "device_bundle_sha256": hashlib.sha256(bundle.encode()).hexdigest(),
        "credential": cred.encode().hex(),
        "cred_id": cred.cred_id.hex(),
        "readings": [],
    }
    entry = RegistryEntry(device_id, epoch, registry)
    for ctr in range(1, readings + 1):
        out["readings"].append(_reading(mpk, k_iot, k_fog, bundle, cred, policy, entry, ctr, rng))
    return out


def _reading(mpk, k_iot, k_fog, bundle, cred, policy, entry, ctr, rng) -> dict:
    ts, msg = 1700000000000 + 1000 * ctr, f"temp={20 + ctr}.5C".encode()
    disclosed = policy.attrs if policy.mode == 1 else None
    record = Record(k_iot.device_id, k_iot.epoch, ctr, ts, msg, policy.pd, disclosed)
    stmt = record.statement(mpk.aa_fp)
    trng, gw_fresh = rng.random_bytes(32), rng.random_bytes(32)
    pool_index = ctr - 1
    pool_entry = precompute(mpk.h1, k_iot.G_iot, bundle.nonce_seed, pool_index, _Fixed(trng))
    dev = complete(mpk.u1, pool_entry, stmt.c)
    gw = gateway_share(mpk, k_fog, stmt.c, _Fixed(gw_fresh))
    sig = combine(dev, gw, cred)
    verify(mpk, entry, record, sig)
    return {
        "ctr": ctr,
        "ts_ms": ts,
        "msg": msg.decode(),
        "stmt": stmt.encode().hex(),
        "c": encode_scalar(stmt.c).hex(),
        "pool_index": pool_index,
        "trng": trng.hex(),
        "s": encode_scalar(device_nonce(bundle.nonce_seed, pool_index, trng)).hex(),
        "pool_entry": pool_entry.encode().hex(),
        "share": dev.encode().hex(),
        "share_jacobian": dev.encode(jacobian_z=JACOBIAN_Z).hex(),
        "gateway_random": gw_fresh.hex(),
        "s_gw": encode_scalar(gateway_nonce(k_fog.k_nonce, k_fog.device_id, stmt.c, gw_fresh)).hex(),
        "W_gw": gw.W_gw.to_compressed_bytes().hex(),
        "R_gw": gw.R_gw.to_compressed_bytes().hex(),
        "signature_full": sig.encode().hex(),
        "signature_compact": sig.compact().encode().hex(),
    }


def generate() -> dict:
    rng = TestRng(TEST_VECTOR_SEED)
    mpk, alpha = setup(6, rng)
    return {
        "scheme": "ABS-IOT-V1 draft 2 (../shared/specs/abs-scheme.md)",
        "seed": TEST_VECTOR_SEED.decode(),
        "rng": RNG_RULE,
        "draw_order": DRAW_ORDER,
        "comb_w": DEFAULT_W,
        "jacobian_z": JACOBIAN_Z,
        "primitives": primitive_vectors(),
        "mpk": mpk.encode().hex(),
        "aa_fp": mpk.aa_fp.hex(),
        "alpha": encode_scalar(alpha).hex(),
        "devices": [_device_vectors(mpk, alpha, rng, spec) for spec in DEVICES],
    }


def render() -> str:
    return json.dumps(generate(), indent=1) + "\n"


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(render())
