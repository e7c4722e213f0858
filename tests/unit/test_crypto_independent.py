"""A second, slow route to the verification equation: pure-Python py_ecc instead of arkworks.

The fast path (edgeprov.crypto on py-arkworks-bls12381) and py_ecc share no code, so agreement on
hash-to-G2 and on the pairing product of spec §3.6 step 3 means neither library's bug (or a wrong
coordinate order, generator or sign between them) hides in the other. Everything on the py_ecc side
is rebuilt from the spec: id*, J(Π), the statement bytes and c, the attribute hashes, [c]u2 + h2.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from py_arkworks_bls12381 import G1Point, G2Point
from py_ecc.bls.hash import expand_message_xmd
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.bls.point_compression import decompress_G1, decompress_G2
from py_ecc.optimized_bls12_381 import (
    FQ,
    FQ2,
    FQ12,
    G1,
    G2,
    add,
    b,
    b2,
    curve_order,
    eq,
    final_exponentiate,
    is_on_curve,
    multiply,
    neg,
    pairing,
)
from py_ecc.optimized_bls12_381.optimized_pairing import miller_loop

from edgeprov.crypto.abs_iot import (
    Record,
    RegistryEntry,
    SignatureRejected,
    combine,
    complete,
    credential,
    gateway_share,
    keygen,
    precompute,
    setup,
    verify,
)
from edgeprov.crypto.hashing import DST_ATTR, DST_STMT, H2
from edgeprov.crypto.objects import MasterPublicKey, Signature
from edgeprov.crypto.policy import Policy
from edgeprov.crypto.rng import TestRng

pytestmark = [pytest.mark.unit, pytest.mark.slow]

D = 6
DEVICE_ID = b"dev-indep-01"
EPOCH = 1
ATTRS = (b"fw>=2.1", b"org=acme", b"role=temp", b"site=plant-7", b"unit=dev-042", b"zone=north")
POLICY = Policy(2, (b"fw>=2.1", b"role=temp", b"site=plant-7"), D)  # P3 of spec §6: m = 7
TS_MS = 1_700_000_000_000


# ---- arkworks → py_ecc -----------------------------------------------------------------------


def ecc_g1(point: G1Point) -> tuple[FQ, FQ, FQ]:
    """x ‖ y, 48 bytes each, big-endian → py_ecc projective (x, y, 1)."""
    raw = point.to_xy_bytes_be()
    out = (FQ(int.from_bytes(raw[:48], "big")), FQ(int.from_bytes(raw[48:], "big")), FQ.one())
    assert is_on_curve(out, b)  # guards against a wrong layout, which would otherwise fail obscurely
    return out


def ecc_g2(point: G2Point) -> tuple[FQ2, FQ2, FQ2]:
    """x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1 → py_ecc projective with FQ2([c0, c1]) coordinates."""
    raw = point.to_xy_bytes_be()
    x0, x1, y0, y1 = (int.from_bytes(raw[i : i + 48], "big") for i in range(0, 192, 48))
    out = (FQ2([x0, x1]), FQ2([y0, y1]), FQ2.one())
    assert is_on_curve(out, b2)
    return out


# ---- the verifier side rebuilt from the spec with py_ecc -------------------------------------


def spec_id_star(device_id: bytes, epoch: int) -> bytes:
    """Spec §2: id* = "id=" ‖ u8(len id) ‖ id ‖ u32(epoch)."""
    return b"id=" + bytes([len(device_id)]) + device_id + epoch.to_bytes(4, "big")


def spec_J(policy: Policy) -> list[bytes]:
    """Spec §2: J(Π) = A ‖ (ω_1 … ω_{d−k}), ω_j = 0x00 ‖ "dflt=" ‖ u8(j)."""
    return [*policy.attrs, *(b"\x00dflt=" + bytes([j]) for j in range(1, policy.d - policy.k + 1))]


def spec_c(aa_fp: bytes, record: Record) -> int:
    """Spec §2: c = OS2IP(XMD(stmt, DST_STMT, 48)) mod r, stmt laid out field by field."""
    stmt = b"".join(
        (
            b"\x01",
            aa_fp,
            record.pd,
            bytes([len(record.device_id)]),
            record.device_id,
            record.epoch.to_bytes(4, "big"),
            record.ctr.to_bytes(8, "big"),
            record.ts_ms.to_bytes(8, "big"),
            len(record.msg).to_bytes(4, "big"),
            record.msg,
        )
    )
    return int.from_bytes(expand_message_xmd(stmt, DST_STMT, 48, hashlib.sha256), "big") % curve_order


def ecc_H2(attribute: bytes) -> tuple[FQ2, FQ2, FQ2]:
    return hash_to_G2(attribute, DST_ATTR, hashlib.sha256)


def ecc_verification_product(mpk: MasterPublicKey, record: Record, sig: Signature) -> FQ12:
    """Spec §3.6 step 3, left side: e(W,g2)·e(g1,S)·e(−T0,H2(id*))·Π_j e(−T_j,H2(j))·e(−R,[c]u2+h2).

    Miller loops multiplied first and ONE final exponentiation (a homomorphism), as the fast path does.
    """
    cred = sig.cred
    c = spec_c(mpk.aa_fp, record)
    binding_base = add(multiply(ecc_g2(mpk.u2), c), ecc_g2(mpk.h2))
    pairs = [
        (G2, ecc_g1(sig.W)),
        (ecc_g2(cred.S), G1),
        (ecc_H2(spec_id_star(record.device_id, record.epoch)), neg(ecc_g1(cred.T0))),
        *((ecc_H2(j), neg(ecc_g1(T_j))) for j, T_j in zip(spec_J(POLICY), cred.T, strict=True)),
        (binding_base, neg(ecc_g1(sig.R))),
    ]
    product = FQ12.one()
    for Q, P in pairs:
        product *= miller_loop(Q, P, final_exponentiate=False)
    return final_exponentiate(product)


def ecc_Y(mpk: MasterPublicKey) -> FQ12:
    return pairing(ecc_g2(mpk.A2), ecc_g1(mpk.A1))


# ---- fixture: two honest signatures from the deterministic test RNG ---------------------------


@dataclass(frozen=True)
class Signed:
    mpk: MasterPublicKey
    entry: RegistryEntry
    records: tuple[Record, ...]
    sigs: tuple[Signature, ...]


@pytest.fixture(scope="module")
def signed() -> Signed:
    rng = TestRng(b"edgeprov independent py_ecc check")
    mpk, alpha = setup(D, rng)
    k_iot, k_fog = keygen(mpk, alpha, DEVICE_ID, EPOCH, ATTRS, rng)
    cred = credential(k_fog, POLICY, rng)
    nonce_seed = rng.random_bytes(32)
    records, sigs = [], []
    for ctr in (1, 2):
        record = Record(DEVICE_ID, EPOCH, ctr, TS_MS + ctr, f"temp=2{ctr}.5C".encode(), POLICY.pd)
        c = record.statement(mpk.aa_fp).c
        entry = precompute(mpk.h1, k_iot.G_iot, nonce_seed, ctr, rng)
        sig = combine(complete(mpk.u1, entry, c), gateway_share(mpk, k_fog, c, rng), cred)
        records.append(record)
        sigs.append(Signature.decode(sig.encode()))  # check what goes on the wire
    return Signed(mpk, RegistryEntry(DEVICE_ID, EPOCH, POLICY), tuple(records), tuple(sigs))


# ---- checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attribute",
    [b"role=temp", b"site=plant-7", spec_id_star(DEVICE_ID, EPOCH), b"\x00dflt=\x01"],
    ids=["role", "site", "id-star", "default-1"],
)
def test_hash_to_g2_matches_py_ecc(attribute: bytes) -> None:
    assert eq(ecc_g2(H2(attribute)), ecc_H2(attribute))


def test_statement_hash_matches_spec_layout(signed: Signed) -> None:
    for record in signed.records:
        assert record.statement(signed.mpk.aa_fp).c == spec_c(signed.mpk.aa_fp, record)


def test_signature_bytes_decompress_alike(signed: Signed) -> None:
    """py_ecc's decompression of the §5 full form gives the points arkworks decoded."""
    sig = signed.sigs[0]
    data = sig.encode()
    g1_fields = [data[1 + 48 * i : 49 + 48 * i] for i in range(3 + POLICY.m)]  # W, R, T0, T_1..T_m
    points = [sig.W, sig.R, sig.cred.T0, *sig.cred.T]
    for raw, point in zip(g1_fields, points, strict=True):
        assert eq(decompress_G1(int.from_bytes(raw, "big")), ecc_g1(point))
    s_raw = data[-96:]
    s_ecc = decompress_G2((int.from_bytes(s_raw[:48], "big"), int.from_bytes(s_raw[48:], "big")))
    assert eq(s_ecc, ecc_g2(sig.cred.S))


@pytest.mark.parametrize("index", [0, 1])
def test_honest_signature_valid_in_both(signed: Signed, index: int) -> None:
    record, sig = signed.records[index], signed.sigs[index]
    verify(signed.mpk, signed.entry, record, sig)  # fast path: raises if rejected
    assert ecc_verification_product(signed.mpk, record, sig) == ecc_Y(signed.mpk)


def test_tampered_message_invalid_in_both(signed: Signed) -> None:
    honest = signed.records[0]
    tampered = Record(honest.device_id, honest.epoch, honest.ctr, honest.ts_ms, b"temp=99.9C", honest.pd)
    sig = signed.sigs[0]
    assert spec_c(signed.mpk.aa_fp, tampered) != spec_c(signed.mpk.aa_fp, honest)
    assert ecc_verification_product(signed.mpk, tampered, sig) != ecc_Y(signed.mpk)
    with pytest.raises(SignatureRejected) as excinfo:
        verify(signed.mpk, signed.entry, tampered, sig)
    assert excinfo.value.reason == "signature"
