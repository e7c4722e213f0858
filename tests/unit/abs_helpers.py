"""Deterministic ABS-IOT-V1 fixtures and the adversary's tools for the conformance tests (spec §9)."""

from __future__ import annotations

from dataclasses import dataclass, field

from py_arkworks_bls12381 import GT, G1Point, G2Point

from edgeprov.crypto.abs_iot import (
    Record,
    RegistryEntry,
    combine,
    complete,
    credential,
    credential_Z,
    gateway_share,
    keygen,
    lagrange_at_zero,
    precompute,
    setup,
)
from edgeprov.crypto.hashing import H2, iota
from edgeprov.crypto.objects import Credential, DeviceShare, GatewayShare, KFog, KIot, MasterPublicKey, Signature
from edgeprov.crypto.points import g1, g2, sc
from edgeprov.crypto.policy import Policy, RegistryPolicy, default_attribute, id_star, parse_policy
from edgeprov.crypto.rng import TestRng

TS0 = 1_700_000_000_000


@dataclass
class Signed:
    """One signed reading with everything an attacker could see."""

    entry: RegistryEntry
    record: Record
    sig: Signature
    dev: DeviceShare
    gw: GatewayShare
    c: int

    @property
    def item(self) -> tuple[RegistryEntry, Record, Signature]:
        return self.entry, self.record, self.sig


@dataclass
class Device:
    system: System
    k_iot: KIot
    k_fog: KFog
    registry: RegistryPolicy
    policy: Policy  # the Π it signs (Π_S in mode 1)
    cred: Credential | None
    nonce_seed: bytes = b"\x07" * 32
    pool_index: int = 0
    entry: RegistryEntry = field(init=False)

    def __post_init__(self) -> None:
        self.entry = RegistryEntry(self.k_iot.device_id, self.k_iot.epoch, self.registry)

    @property
    def id(self) -> bytes:
        return self.k_iot.device_id

    def record(self, ctr: int, msg: bytes = b"temp=4.2C", ts: int | None = None, **over) -> Record:
        disclosed = self.policy.attrs if self.policy.mode == 1 else None
        fields = dict(device_id=self.id, epoch=self.k_iot.epoch, ctr=ctr, ts_ms=ts or TS0 + ctr, msg=msg,
                      pd=self.policy.pd, disclosed=disclosed)  # fmt: skip
        fields.update(over)
        return Record(**fields)

    def device_share(self, c: int) -> DeviceShare:
        entry = precompute(self.system.mpk.h1, self.k_iot.G_iot, self.nonce_seed, self.pool_index, self.system.rng)
        self.pool_index += 1
        return complete(self.system.mpk.u1, entry, c)

    def sign(self, ctr: int, msg: bytes = b"temp=4.2C", record: Record | None = None) -> Signed:
        record = record or self.record(ctr, msg)
        c = record.statement(self.system.mpk.aa_fp).c
        dev = self.device_share(c)
        gw = gateway_share(self.system.mpk, self.k_fog, c, self.system.rng)
        return Signed(self.entry, record, combine(dev, gw, self.cred), dev, gw, c)


class System:
    """A test-RNG system with d = 6 (the spec's prototype value)."""

    def __init__(self, seed: bytes = b"edgeprov tests", d: int = 6) -> None:
        self.rng = TestRng(seed)
        self.mpk: MasterPublicKey
        self.mpk, self.alpha = setup(d, self.rng)

    def device(self, name: str, attrs: list[str], policy: str, epoch: int = 1) -> Device:
        attr_bytes = [a.encode() for a in attrs]
        registry = parse_policy(policy, self.mpk.d)
        signed = registry if isinstance(registry, Policy) else registry.disclose(set(attr_bytes))
        k_iot, k_fog = keygen(self.mpk, self.alpha, name.encode(), epoch, attr_bytes, self.rng)
        held = len(set(attr_bytes) & set(signed.attrs)) >= signed.k
        cred = credential(k_fog, signed, self.rng) if held else None
        return Device(self, k_iot, k_fog, registry, signed, cred)


def build_credential(
    rng: TestRng,
    J: tuple[bytes, ...],
    id_attr: bytes,
    D0: tuple[G2Point, G1Point] | None,
    slots: dict[bytes, tuple[G2Point, G1Point, int]],
    zero_t: tuple[bytes, ...] = (),
) -> Credential:
    """The [LAS10] credential equations of spec §3.3 steps 3–4 over arbitrary key leaves.

    `slots` maps a position j ∈ J to (D, D', coefficient); an honest gateway uses its own leaves with
    Lagrange coefficients. Attacks put other leaves there. `zero_t` forces t_j = 0 (F6).
    """
    t0 = rng.scalar()
    t = {j: 0 if j in zero_t else rng.scalar() for j in J}
    T0 = (D0[1] if D0 else G1Point.identity()) + g1 * sc(t0)
    T = tuple((slots[j][1] * sc(slots[j][2]) if j in slots else G1Point.identity()) + g1 * sc(t[j]) for j in J)
    S = (D0[0] if D0 else G2Point.identity()) + H2(id_attr) * sc(t0)
    for D, _, coeff in slots.values():
        S = S + D * sc(coeff)
    for j in J:
        S = S + H2(j) * sc(t[j])
    return Credential(T0, T, S)


def lagrange_slots(k_fog: KFog, Z: list[bytes]) -> dict[bytes, tuple[G2Point, G1Point, int]]:
    """Slots for interpolating q(0) from the key's leaves at Z."""
    lambdas = lagrange_at_zero([iota(z) for z in Z])
    return {z: (*k_fog.leaves[z], lam) for z, lam in zip(Z, lambdas, strict=True)}


def defaults(count: int) -> list[bytes]:
    return [default_attribute(j) for j in range(1, count + 1)]


def ablated_verify(mpk: MasterPublicKey, policy: Policy, record: Record, sig: Signature) -> bool:
    """The bare pairing equation of §3.6 step 3 with none of the step 0–1 checks: what a verifier
    that skipped a rule would accept. Used only to show that each attack *would* succeed."""
    id_attr = id_star(record.device_id, record.epoch)
    return binding(mpk, sig.W, sig.R, record.statement(mpk.aa_fp).c) * credential_Z(sig.cred, policy, id_attr) == mpk.Y


def binding(mpk: MasterPublicKey, W: G1Point, R: G1Point, c: int) -> GT:
    """e(W, g2)·e(−R, [c]u2 + h2): the message-dependent half of the equation."""
    return GT.multi_pairing([W, -R], [g2, mpk.u2 * sc(c) + mpk.h2])
