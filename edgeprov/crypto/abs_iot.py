"""ABS-IOT-V1 algorithms, one function each, named as in spec §3 (../shared/specs/abs-scheme.md).

Roles: the attribute authority runs `setup` and `keygen`; the gateway `credential`,
`gateway_share`, `check_device_share` and `combine`; the device `precompute` and `complete`
(this is the CPython reference; the firmware mirrors it); verifiers `verify` and `batch_verify`.
Scalars are Python ints mod r; points are py-arkworks-bls12381 objects.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from py_arkworks_bls12381 import GT, G1Point, G2Point

from edgeprov.crypto.credstore import CredentialStore, CredKey
from edgeprov.crypto.fixed_base import fixed_multiexp
from edgeprov.crypto.hashing import DST_GWNONCE, DST_NONCE, H2, H_r, iota
from edgeprov.crypto.objects import (
    Credential,
    DeviceShare,
    GatewayShare,
    KFog,
    KIot,
    MasterPublicKey,
    PoolEntry,
    Signature,
)
from edgeprov.crypto.points import R, encode_scalar, g1, g2, gt_power_product, sc
from edgeprov.crypto.policy import (
    Policy,
    PolicyError,
    RegistryPolicy,
    check_attribute,
    check_policy,
    default_attribute,
    id_star,
    policy_for_record,
)
from edgeprov.crypto.rng import Rng, SystemRng
from edgeprov.crypto.statement import Statement

BATCH_LEAF = 4  # sub-batches this small are verified one by one during bisection (spec §3.7)
# A group this small is verified one signature at a time: a single check with a cached Z_cred is 2 Miller
# loops and 1 final exponentiation, the batch test m + 6 + (#id* − 1) loops (spec §3.7 cost), so below about
# 3 signatures single checks are cheaper, and they fill the credential cache as a side effect (L4).
SINGLE_MAX = 2


class SignatureRejected(Exception):
    """Verification failed; `reason` is a stable short code for ledgers and logs."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Record:
    """What a verifier checks a signature against: (id, epoch, ctr, ts, msg, pd [, S]) (spec §3.6)."""

    device_id: bytes
    epoch: int
    ctr: int
    ts_ms: int
    msg: bytes
    pd: bytes
    disclosed: tuple[bytes, ...] | None = None

    def statement(self, aa_fp: bytes) -> Statement:
        """The statement under `aa_fp` (a verifier needs it for c and again for the path hops: built,
        and c hashed, once per record while it is recent)."""
        return _statement(self, aa_fp)


@lru_cache(maxsize=4096)
def _statement(record: Record, aa_fp: bytes) -> Statement:
    r = record
    return Statement(aa_fp, r.pd, r.device_id, r.epoch, r.ctr, r.ts_ms, r.msg)


@dataclass(frozen=True)
class RegistryEntry:
    """A device's current Device Registration entry: the only source of Π (spec §3.6 step 0, F1)."""

    device_id: bytes
    epoch: int
    policy: RegistryPolicy


# ---- authority -------------------------------------------------------------------------------


def setup(d: int = 6, rng: Rng | None = None) -> tuple[MasterPublicKey, int]:
    """Setup(d), spec §3.1: returns (mpk, msk = α). a1, a2, a, b go out of scope here, never stored."""
    rng = rng or SystemRng()
    if not 1 <= d <= 255:
        raise ValueError("d must be in 1..255")
    a1, a2, a, b = (rng.scalar() for _ in range(4))
    mpk = MasterPublicKey(d, g1 * sc(a1), g2 * sc(a2), g1 * sc(a), g1 * sc(b), g2 * sc(a), g2 * sc(b))
    return mpk, a1 * a2 % R


def keygen(
    mpk: MasterPublicKey,
    alpha: int,
    device_id: bytes,
    epoch: int,
    attrs: Sequence[bytes],
    rng: Rng | None = None,
) -> tuple[KIot, KFog]:
    """KeyGen(α, id, epoch, A_dev), spec §3.2: split α = x_iot + x_gw + x_att into K_iot and K_fog.

    Draw order (fixed, for the §9.2 vectors): x_iot, x_gw, β, q_1..q_{d−1}, r0, r_a in L order, k_nonce.
    """
    rng = rng or SystemRng()
    d = mpk.d
    for a in attrs:
        check_attribute(a)
    if len(set(attrs)) != len(attrs):
        raise PolicyError("duplicate device attribute")
    L = sorted(attrs) + [default_attribute(j) for j in range(1, d)]
    points = [iota(a) for a in L]
    if 0 in points or len(set(points)) != len(points):
        raise PolicyError("attribute evaluation points collide or are zero; rename an attribute")
    x_iot, x_gw, beta = rng.scalar(), rng.scalar(), rng.scalar()
    q = [(alpha - x_iot - x_gw - beta) % R] + [rng.scalar() for _ in range(d - 1)]
    r0 = rng.scalar()
    id_attr = id_star(device_id, epoch)
    D0, D0p = g2 * sc(beta) + H2(id_attr) * sc(r0), g1 * sc(r0)
    leaves = {}
    for a, x in zip(L, points, strict=True):
        r_a = rng.scalar()
        leaves[a] = (g2 * sc(_poly_eval(q, x)) + H2(a) * sc(r_a), g1 * sc(r_a))
    k_fog = KFog(device_id, epoch, g1 * sc(x_gw), rng.random_bytes(32), D0, D0p, leaves)
    return KIot(device_id, epoch, g1 * sc(x_iot)), k_fog


def _poly_eval(coeffs: list[int], x: int) -> int:
    acc = 0
    for coeff in reversed(coeffs):
        acc = (acc * x + coeff) % R
    return acc


def lagrange_at_zero(points: Sequence[int]) -> list[int]:
    """λ_z = Π_{z'≠z} ι(z')/(ι(z') − ι(z)) mod r (spec §3.3 step 2)."""
    out = []
    for i, xi in enumerate(points):
        num, den = 1, 1
        for j, xj in enumerate(points):
            if i != j:
                num = num * xj % R
                den = den * (xj - xi) % R
        out.append(num * pow(den, -1, R) % R)
    return out


# ---- gateway ---------------------------------------------------------------------------------


def credential(k_fog: KFog, policy: Policy, rng: Rng | None = None) -> Credential:
    """Credential(K_fog, Π), spec §3.3: the heavy, public, reusable part, once per (device, epoch, Π)."""
    rng = rng or SystemRng()
    owned = set(k_fog.attrs)  # A_dev only: a default ω_j is never a held attribute (F2b)
    held = [a for a in policy.attrs if a in owned]
    if len(held) < policy.k:
        raise PolicyError(f"device holds {len(held)} of the {policy.k} attributes the policy needs")
    Z = held[: policy.k] + [default_attribute(j) for j in range(1, policy.d - policy.k + 1)]
    lambdas = dict(zip(Z, lagrange_at_zero([iota(z) for z in Z]), strict=True))
    id_attr = id_star(k_fog.device_id, k_fog.epoch)
    t0 = rng.scalar()
    t = [rng.scalar() for _ in policy.J]
    T0 = k_fog.D0p + g1 * sc(t0)
    T = tuple(
        (k_fog.leaves[j][1] * sc(lambdas[j]) if j in lambdas else G1Point.identity()) + g1 * sc(t_j)
        for j, t_j in zip(policy.J, t, strict=True)
    )
    bases = [k_fog.D0, H2(id_attr), *(k_fog.leaves[z][0] for z in Z), *(H2(j) for j in policy.J)]
    scalars = [1, t0, *(lambdas[z] for z in Z), *t]
    S = G2Point.multiexp_unchecked(bases, [sc(x) for x in scalars])
    return Credential(T0, T, S)


def gateway_nonce(k_nonce: bytes, device_id: bytes, c: int, fresh: bytes) -> int:
    """s_gw = H_r(k_nonce ‖ u8(len id) ‖ id ‖ c ‖ 32 fresh random bytes, DST_GWNONCE) (spec §3.4); 0 if unlucky."""
    return H_r(k_nonce + bytes([len(device_id)]) + device_id + encode_scalar(c) + fresh, DST_GWNONCE)


def gateway_share(mpk: MasterPublicKey, k_fog: KFog, c: int, rng: Rng | None = None) -> GatewayShare:
    """Gateway share, spec §3.4: nonce derived online from c (no pool, review F5), then
    W_gw = G_gw + [s_gw·c]u1 + [s_gw]h1, R_gw = [s_gw]g1 (fixed bases: fixed_base.py)."""
    rng = rng or SystemRng()
    s_gw = 0
    while s_gw == 0:
        s_gw = gateway_nonce(k_fog.k_nonce, k_fog.device_id, c, rng.random_bytes(32))
    W_gw = k_fog.G_gw + fixed_multiexp((mpk.u1, mpk.h1), (s_gw * c, s_gw))
    return GatewayShare(W_gw, fixed_multiexp((g1,), (s_gw,)))


def check_device_share(mpk: MasterPublicKey, G_gw: G1Point, share: DeviceShare, c: int, Z: GT) -> bool:
    """Gateway rule G6 (spec §3.5): e(W_dev + G_gw, g2)·e(−R_dev, [c]u2 + h2)·Z_cred = Y."""
    binding = GT.multi_pairing([share.W_dev + G_gw, -share.R_dev], [g2, mpk.u2 * sc(c) + mpk.h2])
    return binding * Z == mpk.Y


def combine(device: DeviceShare, gateway: GatewayShare, cred: Credential) -> Signature:
    """Combine, spec §3.5: σ = (W_dev + W_gw, R_dev + R_gw, cred)."""
    return Signature(device.W_dev + gateway.W_gw, device.R_dev + gateway.R_gw, cred)


# ---- device (CPython reference; firmware/ mirrors it) -----------------------------------------


def device_nonce(nonce_seed: bytes, pool_index: int, trng: bytes) -> int:
    """Hedged device nonce, spec §4 D3: s = H_r(nonce_seed ‖ u64(pool_index) ‖ 32 TRNG bytes, DST_NONCE)."""
    return H_r(nonce_seed + pool_index.to_bytes(8, "big") + trng, DST_NONCE)


def precompute(h1: G1Point, G_iot: G1Point, nonce_seed: bytes, pool_index: int, rng: Rng) -> PoolEntry:
    """Device Precompute, spec §3.4: s hedged (§4 D3), R_dev = [s]g1, B_dev = G_iot + [s]h1."""
    s = 0
    while s == 0:
        s = device_nonce(nonce_seed, pool_index, rng.random_bytes(32))
    return PoolEntry(s, g1 * sc(s), G_iot + h1 * sc(s))


def complete(u1: G1Point, entry: PoolEntry, c: int) -> DeviceShare:
    """Device Complete, spec §3.4: W_dev = B_dev + [s·c]u1, one fixed-base multiplication.

    The entry must already be deleted from the persistent record (§4 D2): `device.DeviceSigner`
    is the only caller that hands entries out, and it persists first.
    """
    return DeviceShare(entry.B_dev + u1 * sc(entry.s * c), entry.R_dev)


# ---- verifier --------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """One record/signature pair after steps 0–2, ready for the pairing equations."""

    index: int
    policy: Policy
    id_attr: bytes
    c: int
    sig: Signature
    cred: Credential
    key: CredKey
    Z: GT | None


def _prepare(
    mpk: MasterPublicKey,
    entry: RegistryEntry,
    record: Record,
    sig: Signature,
    store: CredentialStore | None,
    i: int,
) -> _Prepared:
    """Spec §3.6 steps 0–2: Π from the registry, the policy checks, credential lookup, c."""
    if record.device_id != entry.device_id:
        raise SignatureRejected("unknown-device", "record and registry entry name different devices")
    if record.epoch != entry.epoch:
        raise SignatureRejected("epoch", f"record epoch {record.epoch}, registered epoch {entry.epoch}")
    try:
        policy = policy_for_record(entry.policy, record.disclosed)
        check_policy(policy, mpk.d)
    except PolicyError as exc:
        raise SignatureRejected("policy", str(exc)) from None
    if record.pd != policy.pd:
        raise SignatureRejected("policy-digest", "the record's pd is not the registered policy's")
    key = CredKey(sig.cred_id, record.device_id, record.epoch, policy.pd)
    cached = store.get(key) if store is not None else None
    if sig.is_compact and cached is None:
        raise SignatureRejected("unknown-credential", "compact signature without a verified credential")
    cred = sig.cred if sig.cred is not None else cached.cred
    if len(cred.T) != policy.m:
        raise SignatureRejected("credential-size", f"{len(cred.T)} T_j for m = {policy.m}")
    c = record.statement(mpk.aa_fp).c
    id_attr = id_star(record.device_id, record.epoch)
    return _Prepared(i, policy, id_attr, c, sig, cred, key, cached.Z if cached else None)


def credential_Z(cred: Credential, policy: Policy, id_attr: bytes) -> GT:
    """Z_cred = e(g1,S)·e(−T0,H2(id*))·Π_j e(−T_j,H2(j)) = e(g1,g2)^{x_att} (spec §3.3)."""
    g1s = [g1, -cred.T0, *(-T_j for T_j in cred.T)]
    g2s = [cred.S, H2(id_attr), *(H2(j) for j in policy.J)]
    return GT.multi_pairing(g1s, g2s)


def _binding(mpk: MasterPublicKey, W: G1Point, Rp: G1Point, c: int) -> GT:
    return GT.multi_pairing([W, -Rp], [g2, mpk.u2 * sc(c) + mpk.h2])


def _full_equation(mpk: MasterPublicKey, p: _Prepared) -> bool:
    """Spec §3.6 step 3: m+4 Miller loops, one final exponentiation."""
    cred = p.cred
    g1s = [p.sig.W, g1, -cred.T0, *(-T_j for T_j in cred.T), -p.sig.R]
    g2s = [g2, cred.S, H2(p.id_attr), *(H2(j) for j in p.policy.J), mpk.u2 * sc(p.c) + mpk.h2]
    return GT.multi_pairing(g1s, g2s) == mpk.Y


def _single_check(mpk: MasterPublicKey, p: _Prepared, store: CredentialStore | None) -> bool:
    """Verify one prepared signature: cached Z (step 4), or full (step 3), filling the cache (L4)."""
    if p.Z is not None:
        return _binding(mpk, p.sig.W, p.sig.R, p.c) * p.Z == mpk.Y
    if store is None:
        return _full_equation(mpk, p)
    Z = credential_Z(p.cred, p.policy, p.id_attr)
    ok = _binding(mpk, p.sig.W, p.sig.R, p.c) * Z == mpk.Y
    if ok:
        store.add_verified(p.key, p.cred, Z)
    return ok


def verify(
    mpk: MasterPublicKey,
    entry: RegistryEntry,
    record: Record,
    sig: Signature,
    store: CredentialStore | None = None,
) -> None:
    """Verify(mpk, record, σ), spec §3.6: returns None or raises SignatureRejected.

    With a store, a cached Z_cred under (cred_id, id, epoch, pd) makes it the cached-credential
    check of step 4; compact signatures need such an entry (L4).
    """
    p = _prepare(mpk, entry, record, sig, store, 0)
    if not _single_check(mpk, p, store):
        raise SignatureRejected("signature", "the pairing equation does not hold")


def batch_verify(
    mpk: MasterPublicKey,
    items: Sequence[tuple[RegistryEntry, Record, Signature]],
    store: CredentialStore | None = None,
) -> dict[int, str]:
    """BatchVerify, spec §3.7, for records under any registry policies (grouped by pd first).

    Returns {index: reason} for exactly the rejected items; bisection finds the bad ones.
    """
    rejected: dict[int, str] = {}
    by_pd: dict[bytes, list[_Prepared]] = {}
    for i, (entry, record, sig) in enumerate(items):
        try:
            p = _prepare(mpk, entry, record, sig, store, i)
        except SignatureRejected as exc:
            rejected[i] = exc.reason
            continue
        by_pd.setdefault(p.policy.pd, []).append(p)
    for group in by_pd.values():
        if len(group) <= SINGLE_MAX:
            rejected.update((p.index, "signature") for p in group if not _single_check(mpk, p, store))
            continue
        bad = _bisect(mpk, group, store)
        rejected.update((i, "signature") for i in bad)
        if store is not None:
            _remember_credentials(group, bad, store)
    return dict(sorted(rejected.items()))


def _bisect(mpk: MasterPublicKey, group: list[_Prepared], store: CredentialStore | None) -> list[int]:
    """Split failing batches with fresh δ; leaves of ≤ 4, or all once > N/8 are bad, go one by one."""
    bad: list[int] = []
    give_up = max(1, len(group) // 8)

    def visit(chunk: list[_Prepared], known_failing: bool) -> None:
        if len(chunk) <= BATCH_LEAF or len(bad) > give_up:
            bad.extend(p.index for p in chunk if not _single_check(mpk, p, None))
            return
        if not known_failing and batch_equation(mpk, chunk):
            return
        half = len(chunk) // 2
        visit(chunk[:half], False)
        visit(chunk[half:], False)

    if not batch_equation(mpk, group):
        visit(group, known_failing=True)
    return sorted(bad)


def _remember_credentials(group: list[_Prepared], bad: list[int], store: CredentialStore) -> None:
    """L4: cache the credential of each verified full-form signature, once per key."""
    failed = set(bad)
    seen: set[CredKey] = set()
    for p in group:
        if p.index in failed or p.sig.is_compact or p.Z is not None or p.key in seen:
            continue
        seen.add(p.key)
        store.add_verified(p.key, p.cred, credential_Z(p.cred, p.policy, p.id_attr))


def batch_equation(mpk: MasterPublicKey, chunk: Sequence[_Prepared]) -> bool:
    """The small-exponent batch test of spec §3.7 step 4 for one Π, with fresh δ_i ∈ [1, 2^128).

    Credentials are grouped by (cred_id, id, epoch), never by credential bytes alone (F3).
    """
    deltas = [secrets.randbits(128) or 1 for _ in chunk]
    d = [sc(x) for x in deltas]
    Rs = [p.sig.R for p in chunk]
    g1s = [
        G1Point.multiexp_unchecked([p.sig.W for p in chunk], d),
        -G1Point.multiexp_unchecked(Rs, [sc(x * p.c) for x, p in zip(deltas, chunk, strict=True)]),
        -G1Point.multiexp_unchecked(Rs, d),
        -(mpk.A1 * sc(sum(deltas))),
    ]
    g2s = [g2, mpk.u2, mpk.h2, mpk.A2]
    groups: dict[CredKey, list] = {}
    for x, p in zip(deltas, chunk, strict=True):
        slot = groups.setdefault(p.key, [p, 0])
        slot[1] += x
    creds = list(groups.values())
    if all(p.Z is not None for p, _ in creds):
        # Every Z_cred is cached (§3.6 step 4): Π_g Z_g^{Δ_g} is the value of the credential terms below,
        # one GT power per credential instead of a Miller loop per id* and multi-exponentiations per credential.
        binding = GT.multi_pairing(g1s, g2s)
        return binding * gt_power_product([p.Z for p, _ in creds], [D for _, D in creds]) == GT.one()
    policy = chunk[0].policy
    big_deltas = [sc(D) for _, D in creds]
    g1s.append(g1)
    g2s.append(G2Point.multiexp_unchecked([p.cred.S for p, _ in creds], big_deltas))
    for id_attr in dict.fromkeys(p.id_attr for p, _ in creds):
        members = [(p.cred.T0, sc(D)) for p, D in creds if p.id_attr == id_attr]
        g1s.append(-G1Point.multiexp_unchecked([t for t, _ in members], [x for _, x in members]))
        g2s.append(H2(id_attr))
    for j, attr in enumerate(policy.J):
        g1s.append(-G1Point.multiexp_unchecked([p.cred.T[j] for p, _ in creds], big_deltas))
        g2s.append(H2(attr))
    return GT.pairing_check(g1s, g2s)
