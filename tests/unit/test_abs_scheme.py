"""Spec §9.3 positive tests and §9.4 negative tests of ABS-IOT-V1 (attacks F1–F6 live in test_abs_attacks.py)."""

from __future__ import annotations

import dataclasses

import pytest
from abs_helpers import Device, System

from edgeprov.crypto.abs_iot import (
    RegistryEntry,
    SignatureRejected,
    _prepare,
    batch_equation,
    batch_verify,
    check_device_share,
    credential,
    credential_Z,
    verify,
)
from edgeprov.crypto.credstore import CredentialStore
from edgeprov.crypto.objects import DeviceShare, Signature
from edgeprov.crypto.points import g1
from edgeprov.crypto.policy import Policy, PolicyError, id_star

pytestmark = pytest.mark.unit

ATTRS6 = ["fw=2.1", "org=acme", "role=temp", "site=plant-7", "type=temp", "zone=cold"]


@pytest.fixture(scope="module")
def system() -> System:
    return System()


@pytest.fixture(scope="module")
def dev_a(system: System) -> Device:
    return system.device(
        "dev-A", ["fw=2.1", "role=temp", "site=plant-7"], "id and 2 of (fw=2.1, role=temp, site=plant-7)"
    )


def rejected(system: System, *args, store=None) -> str:
    with pytest.raises(SignatureRejected) as info:
        verify(system.mpk, *args, store=store)
    return info.value.reason


@pytest.mark.parametrize(
    ("n", "k"),
    [(3, 1), (3, 2), (3, 3), (6, 1), (6, 4), (6, 6)],
)
def test_threshold_policies_verify(system: System, n: int, k: int) -> None:
    attrs = ATTRS6[:n]
    dev = system.device(f"dev-{n}-{k}", attrs, f"id and {k} of ({', '.join(attrs)})" if n > 1 else attrs[0])
    signed = dev.sign(1)
    verify(system.mpk, *signed.item)
    assert len(signed.sig.cred.T) == n + 6 - k  # m = n + d − k (spec §2)
    assert len(signed.sig.encode()) == 1 + 48 * (3 + n + 6 - k) + 96  # spec §5 sizes


def test_policy_naming_attributes_the_device_lacks(system: System) -> None:
    dev = system.device("dev-lacks", ["org=acme", "type=temp"], "id and 2 of (org=acme, site=x, type=temp, zone=y)")
    verify(system.mpk, *dev.sign(1).item)


def test_unsatisfied_policy_gets_no_credential(system: System) -> None:
    dev = system.device("dev-short", ["org=acme"], "id and 2 of (org=acme, type=temp, site=x)")
    assert dev.cred is None
    with pytest.raises(PolicyError, match="holds 1 of the 2"):
        credential(dev.k_fog, dev.policy, system.rng)


def test_reused_credential_and_cached_verification(system: System, dev_a: Device) -> None:
    store = CredentialStore()
    first, second = dev_a.sign(10), dev_a.sign(11)
    assert first.sig.cred is second.sig.cred
    verify(system.mpk, *first.item, store=store)  # full form: fills the cache (L4)
    assert len(store) == 1
    cached = store.get(next(iter(store._entries)))
    assert credential_Z(dev_a.cred, dev_a.policy, id_star(dev_a.id, 1)) == cached.Z
    verify(system.mpk, *second.item, store=store)  # cached Z_cred (step 4)
    verify(system.mpk, second.entry, second.record, second.sig.compact(), store=store)  # compact form


def test_compact_signature_needs_a_verified_full_form_first(system: System, dev_a: Device) -> None:
    signed = dev_a.sign(12)
    compact = signed.sig.compact()
    assert len(compact.encode()) == 129
    assert rejected(system, signed.entry, signed.record, compact, store=CredentialStore()) == "unknown-credential"
    assert rejected(system, signed.entry, signed.record, compact) == "unknown-credential"


def test_codecs_round_trip_full_then_compact(system: System, dev_a: Device) -> None:
    signed = dev_a.sign(13)
    full = Signature.decode(signed.sig.encode())
    assert full.encode() == signed.sig.encode()
    store = CredentialStore()
    verify(system.mpk, signed.entry, signed.record, full, store=store)
    compact = Signature.decode(signed.sig.compact().encode())
    assert compact.is_compact and compact.cred_id == full.cred_id
    verify(system.mpk, signed.entry, signed.record, compact, store=store)


def test_jacobian_device_share(system: System, dev_a: Device) -> None:
    signed = dev_a.sign(14)
    wire = signed.dev.encode(jacobian_z=0xDEADBEEF)
    assert len(wire) == 192
    assert DeviceShare.decode(wire) == signed.dev
    assert DeviceShare.decode(signed.dev.encode()) == signed.dev


def test_disclosed_set_formula(system: System) -> None:
    dev = system.device(
        "dev-formula", ["org=acme", "type=temp", "fw=2"], "id and all of (org=acme, any of (type=hum, type=temp))"
    )
    assert dev.policy.mode == 1 and dev.policy.attrs == (b"org=acme", b"type=temp")
    signed = dev.sign(1)
    verify(system.mpk, *signed.item)
    other_set = dataclasses.replace(signed.record, disclosed=(b"org=acme", b"type=hum"))
    assert rejected(system, signed.entry, other_set, signed.sig) == "policy-digest"
    unsatisfying = dataclasses.replace(signed.record, disclosed=(b"org=acme",))
    assert rejected(system, signed.entry, unsatisfying, signed.sig) == "policy"


def test_gap_filling_counter_and_late_timestamp_still_verify(system: System, dev_a: Device) -> None:
    # Signatures carry no ordering: ctr 3 after ctr 20 and a day-old ts verify; the ledger flags them (L1, L2).
    verify(system.mpk, *dev_a.sign(20).item)
    verify(system.mpk, *dev_a.sign(3).item)
    old = dev_a.record(21, ts=1_600_000_000_000)
    verify(system.mpk, *dev_a.sign(21, record=old).item)


def test_epoch_two_after_rekey(system: System) -> None:
    policy = "id and 2 of (org=acme, type=temp)"
    dev2 = system.device("dev-rekeyed", ["org=acme", "type=temp"], policy, epoch=2)
    verify(system.mpk, *dev2.sign(1).item)


def _many(system: System, total: int) -> list:
    policy = "id and 2 of (org=acme, site=ward-7, type=temp)"
    devices = [system.device(f"batch-{i}", ["org=acme", "type=temp"], policy, epoch=1 + i % 3) for i in range(8)]
    return [devices[i % 8].sign(100 + i).item for i in range(total)]


@pytest.fixture(scope="module")
def batch256(system: System) -> list:
    return _many(system, 256)


@pytest.mark.parametrize("size", [64, 256])
def test_batches_with_mixed_ids_and_epochs(system: System, batch256: list, size: int) -> None:
    store = CredentialStore()
    assert batch_verify(system.mpk, batch256[:size], store=store) == {}
    assert len(store) == 8  # one verified credential per (cred_id, id, epoch, pd)
    compact = [(e, r, s.compact()) for e, r, s in batch256[:size]]
    assert batch_verify(system.mpk, compact, store=store) == {}


@pytest.fixture(scope="module")
def warm_store(system: System, batch256: list) -> CredentialStore:
    """Every credential of batch256 verified and cached: batches then take the cached-Z_cred equation."""
    store = CredentialStore()
    assert batch_verify(system.mpk, batch256[:64], store=store) == {}
    return store


@pytest.mark.parametrize("cached", [False, True], ids=["credential-terms", "cached-Z"])
@pytest.mark.parametrize("bad", [[17], [3, 40], [0, 63]])
def test_bisection_returns_exactly_the_bad_indices(system: System, batch256: list, warm_store, bad: list[int],
                                                   cached: bool) -> None:  # fmt: skip
    items = list(batch256[:64])
    for i in bad:
        entry, record, sig = items[i]
        items[i] = (entry, dataclasses.replace(record, msg=b"tampered"), sig.compact() if cached else sig)
    assert batch_verify(system.mpk, items, store=warm_store if cached else None) == dict.fromkeys(bad, "signature")


@pytest.mark.parametrize("cached", [False, True], ids=["credential-terms", "cached-Z"])
def test_complementary_errors_are_caught_by_random_deltas(system: System, batch256: list, warm_store,
                                                          cached: bool) -> None:  # fmt: skip
    # W_3 + P and W_9 − P cancel in Σ W_i; the random δ_i of spec §3.7 keep them apart.
    items = list(batch256[:16])
    for i, delta in ((3, g1), (9, -g1)):
        entry, record, sig = items[i]
        items[i] = (entry, record, dataclasses.replace(sig, W=sig.W + delta))
    assert batch_verify(system.mpk, items, store=warm_store if cached else None) == {3: "signature", 9: "signature"}


@pytest.mark.parametrize("cached", [False, True], ids=["credential-terms", "cached-Z"])
def test_batch_equation_alone_accepts_valid_and_rejects_one_bad(system: System, batch256: list, warm_store,
                                                                cached: bool) -> None:  # fmt: skip
    # The equation itself, without bisection's single-check fallback: both forms of spec §3.7 step 4.
    store = warm_store if cached else None
    prepared = [_prepare(system.mpk, e, r, s, store, i) for i, (e, r, s) in enumerate(batch256[:24])]
    assert all((p.Z is not None) == cached for p in prepared)
    assert batch_equation(system.mpk, prepared)
    prepared[5].c += 1  # one statement changed
    assert not batch_equation(system.mpk, prepared)


def test_cached_batch_rejects_a_signature_under_another_devices_credential(system: System, batch256: list,
                                                                          warm_store) -> None:  # fmt: skip
    # Device 1's signature relabelled with device 0's compact cred_id: the key (cred_id, id, ...) names no
    # cached credential of device 1, so it is refused before any equation, and the honest ones pass.
    items = [(e, r, s.compact()) for e, r, s in batch256[:16]]
    entry, record, sig = items[1]
    items[1] = (entry, record, dataclasses.replace(sig, compact_cred_id=items[0][2].cred_id))
    assert batch_verify(system.mpk, items, store=warm_store) == {1: "unknown-credential"}


def test_batch_rejects_malformed_items_individually(system: System, batch256: list) -> None:
    items = list(batch256[:10])
    entry, record, sig = items[4]
    items[4] = (RegistryEntry(entry.device_id, entry.epoch + 1, entry.policy), record, sig)
    assert batch_verify(system.mpk, items) == {4: "epoch"}


# ---- §9.4 negative tests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("msg", b"temp=9.9C", "signature"),
        ("ctr", 999, "signature"),
        ("ts_ms", 1, "signature"),
        ("device_id", b"dev-B", "unknown-device"),
        ("epoch", 2, "epoch"),
    ],
)
def test_tampered_fields_are_rejected(system: System, dev_a: Device, field: str, value, reason: str) -> None:
    signed = dev_a.sign(30)
    assert rejected(system, signed.entry, dataclasses.replace(signed.record, **{field: value}), signed.sig) == reason


@pytest.mark.parametrize(
    "policy",
    [
        Policy(1, (b"fw=2.1", b"role=temp", b"site=plant-7"), 6),  # k changed
        Policy(2, (b"fw=2.1", b"role=temp"), 6),  # A changed
    ],
)
def test_tampered_policy_is_rejected(system: System, dev_a: Device, policy: Policy) -> None:
    signed = dev_a.sign(31)
    # A verifier using another Π (even one the device satisfies) rejects: pd is bound into c (P5).
    entry = RegistryEntry(dev_a.id, 1, policy)
    assert rejected(system, entry, dataclasses.replace(signed.record, pd=policy.pd), signed.sig) in (
        "signature",
        "credential-size",
    )


def test_another_devices_keys_cannot_sign_under_this_id(system: System, dev_a: Device) -> None:
    thief = system.device(
        "dev-thief", ["fw=2.1", "role=temp", "site=plant-7"], "id and 2 of (fw=2.1, role=temp, site=plant-7)"
    )
    forged = thief.sign(1, record=dev_a.record(40))
    assert rejected(system, dev_a.entry, forged.record, forged.sig) == "signature"


def test_credential_swap_is_rejected(system: System, dev_a: Device) -> None:
    other = system.device("dev-other", ["fw=2.1", "role=temp"], "id and 2 of (fw=2.1, role=temp, site=plant-7)")
    signed = dev_a.sign(41)
    swapped = dataclasses.replace(signed.sig, cred=other.cred)
    assert rejected(system, signed.entry, signed.record, swapped) == "signature"


def test_gateway_check_of_device_share_g6(system: System, dev_a: Device) -> None:
    """G2/G6: a share computed for another reading's fields fails the gateway's optional check."""
    Z = credential_Z(dev_a.cred, dev_a.policy, id_star(dev_a.id, 1))
    signed = dev_a.sign(42)
    assert check_device_share(system.mpk, dev_a.k_fog.G_gw, signed.dev, signed.c, Z)
    other_c = dev_a.record(43).statement(system.mpk.aa_fp).c
    assert not check_device_share(system.mpk, dev_a.k_fog.G_gw, signed.dev, other_c, Z)
