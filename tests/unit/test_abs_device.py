"""Spec §9.5 single-use tests, §9.6 comb checks (CPython side), §9.1–§9.2 vectors, gateway rule G4."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from py_arkworks_bls12381 import G1Point

import edgeprov.crypto.device as device_module
from edgeprov.crypto.abs_iot import Record, RegistryEntry, combine, credential, gateway_share, keygen, setup, verify
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.comb import columns, comb_digits, comb_table
from edgeprov.crypto.device import DeviceSigner, RecordLost
from edgeprov.crypto.objects import TEST_AA_FP, MasterPublicKey
from edgeprov.crypto.points import O2_BYTES, DecodeError, R, decode_g1, decode_g2, sc
from edgeprov.crypto.policy import parse_policy
from edgeprov.crypto.replay import NonceGuard, Verdict
from edgeprov.crypto.rng import TEST_VECTOR_SEED, DeadRng, TestRng
from edgeprov.crypto.vectors import render

pytestmark = pytest.mark.unit

VECTORS = Path(__file__).parent.parent / "vectors" / "abs-iot-v1.json"
POLICY = "id and 2 of (org=acme, site=ward-7, type=temp)"


@pytest.fixture(scope="module")
def provisioned():
    rng = TestRng(b"device tests")
    mpk, alpha = setup(6, rng)
    policy = parse_policy(POLICY, 6)
    k_iot, k_fog = keygen(mpk, alpha, b"dev-042", 1, [b"org=acme", b"type=temp"], rng)
    bundle = DeviceBundle.create(mpk, k_iot, rng.random_bytes(32), (policy.pd,))
    return mpk, policy, k_fog, credential(k_fog, policy, rng), bundle


@pytest.fixture
def signer(provisioned, tmp_path: Path) -> DeviceSigner:
    bundle = provisioned[4]
    DeviceSigner.provision(bundle, tmp_path / "record")
    return DeviceSigner(bundle, tmp_path / "record", TestRng(b"trng"))


def test_signed_shares_verify_and_never_repeat_a_nonce(provisioned, signer: DeviceSigner) -> None:
    mpk, policy, k_fog, cred, bundle = provisioned
    signer.precompute(4)
    seen = set()
    for i in range(8):  # drains the pool, then precomputes on demand
        out = signer.sign(1_700_000_000_000 + i, b"temp=%d" % i)
        record = Record(bundle.device_id, 1, out.ctr, out.ts_ms, out.msg, out.pd)
        c = record.statement(mpk.aa_fp).c
        verify(
            mpk,
            RegistryEntry(bundle.device_id, 1, policy),
            record,
            combine(out.share, gateway_share(mpk, k_fog, c), cred),
        )
        seen.add(out.share.R_dev.to_compressed_bytes())
        assert out.ctr == i + 1
    assert len(seen) == 8


def test_crash_after_persist_costs_an_entry_and_leaves_a_gap(provisioned, signer: DeviceSigner, monkeypatch) -> None:
    bundle = provisioned[4]
    signer.precompute(3)
    first = signer.sign(1, b"a")
    monkeypatch.setattr(device_module, "complete", lambda *a: (_ for _ in ()).throw(RuntimeError("power lost")))
    with pytest.raises(RuntimeError):
        signer.sign(2, b"b")
    monkeypatch.undo()
    rebooted = DeviceSigner(bundle, signer.path, TestRng(b"trng after reboot"))
    assert rebooted.record.ctr == 2 and len(rebooted.record.entries) == 1  # entry gone, ctr advanced
    after = rebooted.sign(3, b"c")
    assert after.ctr == 3  # counter 2 is a gap on the ledger, never reused
    assert after.share.R_dev != first.share.R_dev


def test_rollback_repeats_r_dev_and_the_gateway_refuses_it(provisioned, signer: DeviceSigner) -> None:
    mpk = provisioned[0]
    signer.precompute(2)
    snapshot = signer.path.read_bytes()
    first = signer.sign(10, b"original")
    signer.path.write_bytes(snapshot)  # flash rolled back: the MAC still verifies (D5)
    replayed = DeviceSigner(provisioned[4], signer.path, DeadRng()).sign(10, b"different reading")
    assert replayed.share.R_dev == first.share.R_dev and replayed.ctr == first.ctr
    guard = NonceGuard()
    aa_fp = mpk.aa_fp

    def check(out):
        c = Record(b"dev-042", 1, out.ctr, out.ts_ms, out.msg, out.pd).statement(aa_fp).c
        share = out.share.encode()
        return guard.check(b"dev-042", out.share.R_dev.to_compressed_bytes(), out.ctr, c, share)

    assert check(first) is Verdict.NEW
    assert check(first) is Verdict.DUPLICATE  # redelivery of the same reading
    assert check(replayed) is Verdict.NONCE_REUSE


@pytest.mark.parametrize("damage", ["missing", "bit flip", "truncated", "other epoch"])
def test_lost_or_corrupt_record_stops_signing(provisioned, signer: DeviceSigner, damage: str) -> None:
    signer.precompute(1)
    bundle = provisioned[4]
    data = signer.path.read_bytes()
    if damage == "missing":
        signer.path.unlink()
    elif damage == "bit flip":
        signer.path.write_bytes(data[:30] + bytes([data[30] ^ 1]) + data[31:])
    elif damage == "truncated":
        signer.path.write_bytes(data[:-1])
    else:
        other = Path(str(signer.path) + ".e2")
        DeviceSigner.provision(DeviceBundle(**{**bundle.__dict__, "epoch": 2}), other)
        shutil.copy(other, signer.path)
    with pytest.raises(RecordLost):
        DeviceSigner(bundle, signer.path)


def test_provision_refuses_to_overwrite_a_record(provisioned, signer: DeviceSigner) -> None:
    with pytest.raises(FileExistsError):
        DeviceSigner.provision(provisioned[4], signer.path)


def test_record_file_is_private(signer: DeviceSigner) -> None:
    signer.precompute(1)
    assert signer.path.stat().st_mode & 0o777 == 0o600


# ---- comb tables: the firmware's contract (spec §6, §9.6) --------------------------------------


def _comb_mul(table: bytes, k: int, w: int) -> G1Point:
    negate, cols = comb_digits(k, w)
    acc = G1Point.identity()
    for i, (sign, u) in enumerate(cols):
        if i:
            acc = acc + acc
        point = G1Point.from_xy_bytes_be(table[u * 96 : (u + 1) * 96])
        acc = acc + point if sign == 1 else acc - point
    return -acc if negate else acc


@pytest.mark.parametrize("w", [4, 5, 6])
def test_comb_matches_arkworks(provisioned, w: int) -> None:
    u1 = provisioned[0].u1
    table = comb_table(u1, w)
    assert len(table) == (1 << (w - 1)) * 96
    rnd = random.Random(w)
    for k in [1, 2, 3, R - 1, R - 2, 2**254, *(rnd.randrange(1, R) for _ in range(5))]:
        assert _comb_mul(table, k, w) == u1 * sc(k), hex(k)
    assert len(comb_digits(12345, w)[1]) == columns(w)  # fixed sequence: one addition per column


def test_device_bundle_round_trip_and_size(provisioned) -> None:
    bundle = provisioned[4]
    data = bundle.encode()
    assert DeviceBundle.decode(data) == bundle
    assert len(data) - len(bundle.tables) < 450  # K_iot, seed, bases, one pd: small (spec §5 ≈ 204 + bases)
    assert len(bundle.tables) == 3 * 32 * 96  # w = 6: 9,216 bytes
    with pytest.raises(DecodeError):
        DeviceBundle.decode(data[:-1])


# ---- vectors (spec §9.1, §9.2) -----------------------------------------------------------------


def test_vectors_file_is_reproduced_byte_for_byte() -> None:
    assert VECTORS.read_text() == render(), "run: python -m edgeprov.crypto.vectors tests/vectors/abs-iot-v1.json"


def test_spec_primitive_vectors() -> None:
    prim = json.loads(VECTORS.read_text())["primitives"]
    assert prim["pd"] == "d8401a4e9f5a461ff95f8f45057b3c06ed650e29a2a059b659202c4e589d7fd9"
    assert prim["c"] == "23813ff7ef84dd54432b97d1dd9420b26d7983a41d423ca154a692cf36e522c4"
    assert len(bytes.fromhex(prim["stmt"])) == 110
    assert prim["id_star"] == "69643d0a6465762d412d3030303100000001"
    assert prim["H2_id_star"] == (
        "b27e0ae5dc5546f0975e5a7e78693c1d9a10610521a140d76be4dcdc28100036f00d6abd967354811cad1a0f42bf921c"
        "191424e6089c97e017e46839951995c0fc906c8d413101c7cfd530690433d2b9526dbdd57a9fbfac172e7d3210ab0e1f"
    )
    assert prim["s_gw_zero_knonce_zero_random"] == "255521437501507d3951b15718511a7a78ff3a1f15dc93442350ba4eb9235c2c"
    assert prim["iota_role_temp"] == "5cbfc12e8a87d1069ac4063b390d46d64549982c9bcd4522ad554423ca714029"
    assert prim["H2_role_temp"] == (
        "a16bff9d481fc01c8a6c273691cbaa63a9c02a7679a81e14ab0fe04b637e9985a9e00b0971025f68430d142ffe08b744"
        "0fc2a33514cc67bc84ffd5a2da2ebe3ae92f86b78113d2d4174c3d48f8704f6647fc6da9bd8a2fc60c0c788a1611eebc"
    )


@pytest.mark.parametrize("alias", [b"\xc0" + bytes(46) + b"\x01", b"\xe0" + bytes(47)], ids=["c0...01", "e0...00"])
def test_only_the_canonical_identity_decodes(alias: bytes) -> None:
    """Spec §9.1: accept only c0‖0…0 for O; reject the aliases arkworks itself accepts (F6)."""
    assert decode_g1(b"\xc0" + bytes(47), allow_identity=True) == G1Point.identity()
    assert decode_g2(O2_BYTES, allow_identity=True).to_compressed_bytes() == O2_BYTES
    with pytest.raises(DecodeError):
        decode_g1(alias, allow_identity=True)
    with pytest.raises(DecodeError):
        decode_g2(alias + bytes(48), allow_identity=True)


def test_test_vector_system_is_refused_outside_test_mode() -> None:
    vectors = json.loads(VECTORS.read_text())
    assert bytes.fromhex(vectors["aa_fp"]) == TEST_AA_FP
    assert setup(6, TestRng(TEST_VECTOR_SEED))[0].aa_fp == TEST_AA_FP
    mpk_bytes = bytes.fromhex(vectors["mpk"])
    with pytest.raises(DecodeError, match="test-vector"):
        MasterPublicKey.decode(mpk_bytes)
    assert MasterPublicKey.decode(mpk_bytes, allow_test=True).aa_fp == TEST_AA_FP


def test_vector_signatures_verify_from_the_file_alone() -> None:
    """What the firmware tests rely on: the file's signatures verify with the file's public data."""
    from edgeprov.crypto.objects import Signature

    vectors = json.loads(VECTORS.read_text())
    mpk = MasterPublicKey.decode(bytes.fromhex(vectors["mpk"]), allow_test=True)
    for dev in vectors["devices"]:
        entry = RegistryEntry(dev["device_id"].encode(), dev["epoch"], parse_policy(dev["policy"], mpk.d))
        disclosed = tuple(a.encode() for a in dev["disclosed"]) if dev["disclosed"] else None
        for r in dev["readings"]:
            record = Record(entry.device_id, entry.epoch, r["ctr"], r["ts_ms"], r["msg"].encode(),
                            bytes.fromhex(dev["pd"]), disclosed)  # fmt: skip
            assert record.statement(mpk.aa_fp).encode().hex() == r["stmt"]
            verify(mpk, entry, record, Signature.decode(bytes.fromhex(r["signature_full"])))
