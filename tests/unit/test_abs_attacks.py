"""The review's attacks (abs-scheme-review.md F1–F6) and the reuse attacks of spec §4, §9.4–§9.5.

Each test builds the forgery, shows that a verifier missing the rule would accept it
(`ablated_verify`: the bare pairing equation), and that edgeprov rejects it.
"""

from __future__ import annotations

import dataclasses

import pytest
from abs_helpers import Device, System, ablated_verify, binding, build_credential, defaults, lagrange_slots

from edgeprov.crypto.abs_iot import (
    RegistryEntry,
    SignatureRejected,
    _prepare,
    _Prepared,
    batch_equation,
    batch_verify,
    credential,
    credential_Z,
    gateway_share,
    lagrange_at_zero,
    verify,
)
from edgeprov.crypto.credstore import CredentialStore, CredKey
from edgeprov.crypto.hashing import H2, iota
from edgeprov.crypto.objects import Signature
from edgeprov.crypto.points import O1_BYTES, DecodeError, P, R, g1, sc
from edgeprov.crypto.policy import Gate, Leaf, Policy, PolicyError, check_policy, default_attribute, id_star
from edgeprov.crypto.rng import DeadRng

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def system() -> System:
    return System(b"attacks")


def reason(system: System, *args, store=None) -> str:
    with pytest.raises(SignatureRejected) as info:
        verify(system.mpk, *args, store=store)
    return info.value.reason


def test_f1_policy_comes_from_the_registry_not_the_record(system: System) -> None:
    registered = "id and 2 of (fw=2, site=x, type=temp)"
    b = system.device("dev-B", ["fw=2"], registered)
    weak = Policy(1, (b"fw=2",), 6)
    cred = credential(b.k_fog, weak, system.rng)
    signer = dataclasses.replace(b, policy=weak, cred=cred)
    signed = signer.sign(1)
    # Had the verifier taken Π from the record, the reading would pass:
    verify(system.mpk, RegistryEntry(b.id, 1, weak), signed.record, signed.sig)
    assert reason(system, b.entry, signed.record, signed.sig) == "policy-digest"


def test_f2a_identity_attribute_in_a_policy(system: System) -> None:
    victim = system.device("dev-victim", ["role=temp"], "id and role=temp")
    x = system.device("dev-X", ["role=temp"], "id and role=temp")
    id_x = id_star(x.id, 1)
    bad_policy = Policy(1, tuple(sorted((b"role=temp", id_x))), 6)
    with pytest.raises(PolicyError) as info:
        check_policy(bad_policy, 6)
    assert info.value.rule == "d"
    # X and its gateway sign as the victim: D0_X sits in the id*(X) slot with coefficient 1.
    slots = lagrange_slots(x.k_fog, [b"role=temp", *defaults(5)])
    slots[id_x] = (x.k_fog.D0, x.k_fog.D0p, 1)
    cred = build_credential(system.rng, bad_policy.J, id_star(victim.id, 1), None, slots)
    record = dataclasses.replace(victim.record(1), pd=bad_policy.pd)
    forged = dataclasses.replace(x, cred=cred).sign(1, record=record)
    assert ablated_verify(system.mpk, bad_policy, record, forged.sig)
    assert reason(system, RegistryEntry(victim.id, 1, bad_policy), record, forged.sig) == "policy"


def test_f2b_default_attribute_in_a_policy(system: System) -> None:
    b = system.device("dev-B2", ["fw=2"], "id and fw=2")
    omega5 = default_attribute(5)
    bad_policy = Policy(2, tuple(sorted((b"fw=2", omega5))), 6)  # "2 of" but ω_5 is held by every key
    slots = lagrange_slots(b.k_fog, [b"fw=2", omega5, *defaults(4)])
    cred = build_credential(system.rng, bad_policy.J, id_star(b.id, 1), (b.k_fog.D0, b.k_fog.D0p), slots)
    record = dataclasses.replace(b.record(1), pd=bad_policy.pd)
    forged = dataclasses.replace(b, cred=cred).sign(1, record=record)
    assert ablated_verify(system.mpk, bad_policy, record, forged.sig)
    assert reason(system, RegistryEntry(b.id, 1, bad_policy), record, forged.sig) == "policy"


def test_f2c_d_taken_from_policy_bytes(system: System) -> None:
    b = system.device("dev-B3", ["fw=2"], "id and fw=2")
    bad_policy = Policy(2, (b"fw=2", b"site=x", b"type=temp"), 7)  # d byte = mpk.d + 1
    slots = lagrange_slots(b.k_fog, [b"fw=2", *defaults(5)])  # one real attribute instead of two
    cred = build_credential(system.rng, bad_policy.J, id_star(b.id, 1), (b.k_fog.D0, b.k_fog.D0p), slots)
    record = dataclasses.replace(b.record(1), pd=bad_policy.pd)
    forged = dataclasses.replace(b, cred=cred).sign(1, record=record)
    assert ablated_verify(system.mpk, bad_policy, record, forged.sig)
    assert reason(system, RegistryEntry(b.id, 1, bad_policy), record, forged.sig) == "policy"


def test_f2d_mode_one_with_k_below_n(system: System) -> None:
    b = system.device("dev-B4", ["fw=2"], "id and fw=2")
    phi = Gate(2, (Leaf(b"fw=2"), Leaf(b"x=1")))
    bad_policy = Policy(1, (b"fw=2", b"x=1"), 6, phi)  # "proves" fw ∧ x=1 holding only fw
    cred = credential(b.k_fog, bad_policy, system.rng)
    record = dataclasses.replace(b.record(1), pd=bad_policy.pd, disclosed=bad_policy.attrs)
    forged = dataclasses.replace(b, cred=cred, policy=bad_policy).sign(1, record=record)
    assert ablated_verify(system.mpk, bad_policy, record, forged.sig)
    with pytest.raises(PolicyError) as info:
        check_policy(bad_policy, 6)
    assert info.value.rule == "f"


def test_f3_cache_keyed_per_id_would_let_a_device_reuse_a_weaker_credential(system: System) -> None:
    b = system.device("dev-B5", ["fw=2"], "id and 2 of (fw=2, site=x, type=temp)")
    weak = Policy(1, (b"fw=2",), 6)
    weak_cred = credential(b.k_fog, weak, system.rng)
    honest_weak = dataclasses.replace(b, policy=weak, cred=weak_cred).sign(1)
    store = CredentialStore()
    verify(system.mpk, RegistryEntry(b.id, 1, weak), honest_weak.record, honest_weak.sig, store=store)
    # B signs a reading under its registered policy's pd and cites the weak credential.
    forged = dataclasses.replace(b, cred=weak_cred).sign(2)
    z_per_id = credential_Z(weak_cred, weak, id_star(b.id, 1))
    assert binding(system.mpk, forged.sig.W, forged.sig.R, forged.c) * z_per_id == system.mpk.Y
    assert reason(system, b.entry, forged.record, forged.sig.compact(), store=store) == "unknown-credential"


def test_f3_cache_keyed_per_cred_id_would_let_x_sign_as_a(system: System) -> None:
    policy = "id and 2 of (fw=2, site=x, type=temp)"
    a = system.device("dev-A6", ["fw=2"], policy)  # A itself cannot satisfy the policy
    x = system.device("dev-X6", ["fw=2", "site=x"], policy)
    store = CredentialStore()
    verify(system.mpk, *x.sign(1).item, store=store)
    forged = x.sign(2, record=a.record(2))  # X's device and gateway, A's statement
    assert (
        binding(system.mpk, forged.sig.W, forged.sig.R, forged.c)
        * store.get(CredKey(x.cred.cred_id, x.id, 1, x.policy.pd)).Z
        == system.mpk.Y
    )
    assert reason(system, a.entry, forged.record, forged.sig.compact(), store=store) == "unknown-credential"


def test_f3_batch_grouped_by_credential_bytes_would_accept_x_as_a(system: System) -> None:
    policy = "id and 2 of (fw=2, site=x, type=temp)"
    a = system.device("dev-A7", ["fw=2", "site=x"], policy)
    x = system.device("dev-X7", ["fw=2", "site=x"], policy)
    honest_x = x.sign(1)
    forged = x.sign(2, record=a.record(2))
    items = [a.sign(1).item, honest_x.item, (a.entry, forged.record, forged.sig)]
    prepared = [_prepare(system.mpk, *item, None, i) for i, item in enumerate(items)]
    # Grouping by credential bytes alone puts the forgery in X's group, its T0 paired with H2(id*(X)):
    as_x = dataclasses.replace(prepared[2], key=prepared[1].key, id_attr=prepared[1].id_attr)
    assert batch_equation(system.mpk, [prepared[0], prepared[1], as_x])
    assert batch_verify(system.mpk, items) == {2: "signature"}


def test_f4_old_epoch_keys_after_rekey(system: System) -> None:
    policy = "id and 2 of (org=acme, type=temp)"
    old = system.device("dev-F4", ["org=acme", "type=temp"], policy, epoch=1)
    new = system.device("dev-F4", ["org=acme", "type=temp"], policy, epoch=2)
    as_old_epoch = old.sign(1)
    verify(system.mpk, *as_old_epoch.item)  # valid for its own epoch, which the registry no longer accepts
    assert reason(system, new.entry, as_old_epoch.record, as_old_epoch.sig) == "epoch"
    # Relabelled as epoch 2: the old D0 is masked with H2(id*(epoch 1)), which never cancels.
    slots = lagrange_slots(old.k_fog, [b"org=acme", b"type=temp", *defaults(4)])
    cred = build_credential(system.rng, new.policy.J, id_star(new.id, 2), (old.k_fog.D0, old.k_fog.D0p), slots)
    relabelled = dataclasses.replace(old, cred=cred).sign(1, record=new.record(1))
    assert reason(system, new.entry, relabelled.record, relabelled.sig) == "signature"


def _extract_and_forge(system: System, dev: Device, s1, s2, target_c: int):
    """Nonce-reuse extraction on gateway shares: [s]u1 = (W1 − W2)/(c1 − c2), B = W1 − [c1][s]u1."""
    su1 = (s1.gw.W_gw - s2.gw.W_gw) * sc(pow(s1.c - s2.c, -1, R))
    base = s1.gw.W_gw - su1 * sc(s1.c)
    return base + su1 * sc(target_c), s1.gw.R_gw


def test_f5_derived_gateway_nonce_survives_a_restored_state_with_a_dead_rng(system: System) -> None:
    dev = system.device("dev-F5", ["org=acme"], "id and org=acme")
    shares = []
    for ctr in (1, 2):
        signed = dev.sign(ctr)
        signed.gw = gateway_share(system.mpk, dev.k_fog, signed.c, DeadRng())  # same state, no entropy
        shares.append(signed)
    assert shares[0].gw.R_gw != shares[1].gw.R_gw  # s_gw depends on c
    target = dev.record(3)
    c3 = target.statement(system.mpk.aa_fp).c
    W_gw, R_gw = _extract_and_forge(system, dev, *shares, c3)
    dev_share = dev.device_share(c3)  # the device's own honest share: it tries to sign without the gateway
    forged = Signature(dev_share.W_dev + W_gw, dev_share.R_dev + R_gw, dev.cred)
    assert reason(system, dev.entry, target, forged) == "signature"


def test_draft1_gateway_pool_replay_does_leak(system: System) -> None:
    """Why §3.4 has no gateway pool: one replayed pool entry lets the device sign alone (F5)."""
    dev = system.device("dev-pool", ["org=acme"], "id and org=acme")
    s = 0x1234567
    shares = []
    for ctr in (1, 2):
        signed = dev.sign(ctr)
        mpk, G_gw = system.mpk, dev.k_fog.G_gw
        signed.gw = dataclasses.replace(
            signed.gw, W_gw=G_gw + mpk.u1 * sc(s * signed.c) + mpk.h1 * sc(s), R_gw=g1 * sc(s)
        )
        shares.append(signed)
    target = dev.record(3)
    c3 = target.statement(system.mpk.aa_fp).c
    W_gw, R_gw = _extract_and_forge(system, dev, *shares, c3)
    dev_share = dev.device_share(c3)
    verify(system.mpk, dev.entry, target, Signature(dev_share.W_dev + W_gw, dev_share.R_dev + R_gw, dev.cred))


def test_device_nonce_reuse_leaks_to_the_gateway(system: System) -> None:
    """Spec §4: the gateway sees two device shares with one s and forges the device's share for any c."""
    dev = system.device("dev-reuse", ["org=acme"], "id and org=acme")
    dev.pool_index = 5
    first = dev.sign(1)
    dev.pool_index = 5  # the rolled-back record hands out the same entry again (TestRng: same TRNG too)
    dev.system.rng.i -= 2  # replay the TRNG draw as a rollback of a broken-RNG device would
    second = dev.sign(2)
    assert first.dev.R_dev == second.dev.R_dev
    su1 = (first.dev.W_dev - second.dev.W_dev) * sc(pow(first.c - second.c, -1, R))
    B_dev = first.dev.W_dev - su1 * sc(first.c)
    target = dev.record(99, msg=b"temp=30C")
    c = target.statement(system.mpk.aa_fp).c
    gw = gateway_share(system.mpk, dev.k_fog, c, system.rng)
    forged = Signature(B_dev + su1 * sc(c) + gw.W_gw, first.dev.R_dev + gw.R_gw, dev.cred)
    verify(system.mpk, dev.entry, target, forged)  # the gateway alone signed a reading the device never made


def test_static_device_share_would_leak_g_iot(system: System) -> None:
    """Why the device adds fresh randomness: a static share G_iot is read off one signature."""
    dev = system.device("dev-static", ["org=acme"], "id and org=acme")
    record = dev.record(1)
    c = record.statement(system.mpk.aa_fp).c
    gw = gateway_share(system.mpk, dev.k_fog, c, system.rng)
    published = Signature(dev.k_iot.G_iot + gw.W_gw, gw.R_gw, dev.cred)
    verify(system.mpk, dev.entry, record, published)  # the draft-0 design verifies...
    G_iot = published.W - gw.W_gw  # ...and the gateway now knows the device's whole key share
    target = dev.record(2, msg=b"forged")
    c2 = target.statement(system.mpk.aa_fp).c
    gw2 = gateway_share(system.mpk, dev.k_fog, c2, system.rng)
    verify(system.mpk, dev.entry, target, Signature(G_iot + gw2.W_gw, gw2.R_gw, dev.cred))


def test_gateway_alone_transplant_and_affine_combinations_fail(system: System) -> None:
    dev = system.device("dev-combo", ["org=acme"], "id and org=acme")
    s1, s2 = dev.sign(1), dev.sign(2)
    target = dev.record(3)
    c3 = target.statement(system.mpk.aa_fp).c
    gw3 = gateway_share(system.mpk, dev.k_fog, c3, system.rng)
    attempts = {
        "gateway only": Signature(gw3.W_gw, gw3.R_gw, dev.cred),
        "device share transplanted": Signature(s1.dev.W_dev + gw3.W_gw, s1.dev.R_dev + gw3.R_gw, dev.cred),
        "affine combination": Signature(
            s1.dev.W_dev * sc(2) - s2.dev.W_dev + gw3.W_gw, s1.dev.R_dev * sc(2) - s2.dev.R_dev + gw3.R_gw, dev.cred
        ),
    }
    for name, sig in attempts.items():
        assert reason(system, dev.entry, target, sig) == "signature", name
    # The device reusing a published gateway share (W − W_dev) with a fresh share of its own:
    dev3 = dev.device_share(c3)
    reused = Signature(dev3.W_dev + s1.gw.W_gw, dev3.R_dev + s1.gw.R_gw, dev.cred)
    assert reason(system, dev.entry, target, reused) == "signature"


def test_extra_default_attribute_and_cross_device_leaf_pooling_fail(system: System) -> None:
    policy = "id and 2 of (org=acme, site=x, type=temp)"
    a = system.device("dev-pool-A", ["org=acme"], policy)
    b = system.device("dev-pool-B", ["type=temp"], policy)
    J = a.policy.J
    # A alone, using ω_5 (not in J for k = 2) as its second point:
    slots = lagrange_slots(a.k_fog, [b"org=acme", *defaults(5)])
    slots.pop(default_attribute(5))
    extra = build_credential(system.rng, J, id_star(a.id, 1), (a.k_fog.D0, a.k_fog.D0p), slots)
    # A and B pooling their leaves under A's id:
    Z = [b"org=acme", b"type=temp", *defaults(4)]
    leaves = {**a.k_fog.leaves, b"type=temp": b.k_fog.leaves[b"type=temp"]}
    lams = {z: (*leaves[z], lam) for z, lam in zip(Z, lagrange_at_zero([iota(z) for z in Z]), strict=True)}
    pooled = build_credential(system.rng, J, id_star(a.id, 1), (a.k_fog.D0, a.k_fog.D0p), lams)
    for cred in (extra, pooled):
        forged = dataclasses.replace(a, cred=cred).sign(1)
        assert reason(system, *forged.item) == "signature"


def test_f6_non_canonical_identity_in_a_credential(system: System) -> None:
    dev = system.device("dev-F6", ["org=acme", "site=x"], "id and 2 of (org=acme, site=x, zone=y)")
    slots = lagrange_slots(dev.k_fog, [b"org=acme", b"site=x", *defaults(4)])
    cred = build_credential(system.rng, dev.policy.J, id_star(dev.id, 1), (dev.k_fog.D0, dev.k_fog.D0p), slots,
                            zero_t=(b"zone=y",))  # fmt: skip
    signed = dataclasses.replace(dev, cred=cred).sign(1)
    verify(system.mpk, *signed.item)  # T_j = O, canonically encoded, is a valid signature
    wire = signed.sig.encode()
    pos = wire.index(O1_BYTES)
    for alias in (b"\xc0" + bytes(46) + b"\x01", b"\xe0" + bytes(47)):
        with pytest.raises(DecodeError, match=r"non-canonical|not a valid"):
            Signature.decode(wire[:pos] + alias + wire[pos + 48 :])
    assert Signature.decode(wire).encode() == wire


def test_policy_weakening_transform_is_stopped_by_pd_in_c(system: System) -> None:
    """§7 P5: adding a gate input with a fresh randomiser keeps Z_cred, but pd changes c."""
    dev = system.device("dev-weak", ["org=acme", "type=temp"], "id and 2 of (org=acme, type=temp)")
    signed = dev.sign(1)
    wider = Policy(2, (b"org=acme", b"site=x", b"type=temp"), 6)
    t = system.rng.scalar()
    old_T = dict(zip(dev.policy.J, signed.sig.cred.T, strict=True))
    new_T = tuple(old_T.get(j, g1 * sc(t)) for j in wider.J)
    cred = dataclasses.replace(signed.sig.cred, T=new_T, S=signed.sig.cred.S + H2(b"site=x") * sc(t))
    id_attr = id_star(dev.id, 1)
    assert credential_Z(cred, wider, id_attr) == credential_Z(signed.sig.cred, dev.policy, id_attr)
    record = dataclasses.replace(signed.record, pd=wider.pd)
    assert reason(system, RegistryEntry(dev.id, 1, wider), record, dataclasses.replace(signed.sig, cred=cred)) == (
        "signature"
    )


def test_r_equal_identity_and_non_subgroup_points_are_rejected_at_decode(system: System) -> None:
    dev = system.device("dev-dec", ["org=acme"], "id and org=acme")
    wire = dev.sign(1).sig.encode()
    with pytest.raises(DecodeError, match="identity"):
        Signature.decode(wire[:49] + O1_BYTES + wire[97:])
    with pytest.raises(DecodeError):
        Signature.decode(wire[:49] + _non_subgroup_g1() + wire[97:])
    with pytest.raises(DecodeError, match="form/version"):
        Signature.decode(b"\x02" + wire[1:])
    with pytest.raises(DecodeError):
        Signature.decode(wire[:-1])


def _non_subgroup_g1() -> bytes:
    """A compressed point on y² = x³ + 4 outside the r-order subgroup (the cofactor is not 1)."""
    x = 1
    while True:
        rhs = (x**3 + 4) % P
        y = pow(rhs, (P + 1) // 4, P)
        if y * y % P == rhs:
            break
        x += 1
    flags = 0x80 | (0x20 if y > (P - 1) // 2 else 0)
    data = bytearray(x.to_bytes(48, "big"))
    data[0] |= flags
    return bytes(data)


def test_prepared_items_are_grouped_by_id_in_real_batches(system: System) -> None:
    """Sanity for the ablation above: honest items from two devices batch-verify together."""
    policy = "id and org=acme"
    a = system.device("dev-grp-a", ["org=acme"], policy)
    b = system.device("dev-grp-b", ["org=acme"], policy)
    items = [a.sign(1).item, b.sign(1).item]
    prepared: list[_Prepared] = [_prepare(system.mpk, *it, None, i) for i, it in enumerate(items)]
    assert batch_equation(system.mpk, prepared)
