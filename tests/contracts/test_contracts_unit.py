"""Each contract on an in-memory state with real endorsers and the real validator (ledger_harness)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_harness import Fleet, Ledger, Rejected, client

from edgeprov.admin_grant import AdminGrant
from ledger_node.api import queries
from ledger_node.endorsement.endorser import Refused
from ledger_node.endorsement.proposal import Transaction, make_proposal

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(b"unit contracts")


@pytest.fixture
def ledger(fleet: Fleet) -> Ledger:
    return Ledger(fleet).enrol(fleet, "dev-1")


def code_of(ledger: Ledger, contract: str, fn: str, args: dict, key=None) -> str:
    with pytest.raises(Rejected) as exc:
        ledger.run(contract, fn, args, key)
    return exc.value.code


def grant(fleet: Fleet, usecase: str, admin: Ed25519PrivateKey | str, policy: str = "allowlist",
          issued_at_ms: int = 1_000, signer: Ed25519PrivateKey | None = None) -> dict:  # fmt: skip
    """An admin grant signed by the fleet's authority (or by `signer`), as `edgeprov authority grant-admin` makes."""
    if isinstance(admin, Ed25519PrivateKey):
        admin = admin.public_key().public_bytes_raw().hex()
    return AdminGrant(usecase, admin, policy, issued_at_ms).sign(signer or fleet.aa)


def set_up(ledger: Ledger, fleet: Fleet, usecase: str, policy: str, admin: Ed25519PrivateKey) -> dict:
    return ledger.run(usecase, "setup", {"grant": grant(fleet, usecase, admin, policy)}, admin)


def test_registry_rekey_revoke_and_old_epochs(ledger: Ledger, fleet: Fleet) -> None:
    assert code_of(ledger, "registry", "register", {"doc": fleet.device("dev-1", epoch=3)}) == "BAD_EPOCH"
    old = fleet.reading("dev-1", 1)
    ledger.run("registry", "register", {"doc": fleet.device("dev-1", epoch=2)})
    assert code_of(ledger, "readings", "submit", old) == "STALE_EPOCH"
    ledger.run("readings", "submit", fleet.reading("dev-1", 1))  # the new epoch's key signs
    ledger.run("registry", "revoke", {"doc": fleet.revoke("dev-1")})
    assert code_of(ledger, "readings", "submit", fleet.reading("dev-1", 2)) == "REVOKED_DEVICE"
    assert code_of(ledger, "registry", "register", {"doc": fleet.device("dev-1", epoch=3)}) == "REVOKED_DEVICE"
    forged = {**fleet.device("dev-9"), "gateway": "gw-evil"}
    assert code_of(ledger, "registry", "register", {"doc": forged}) == "BAD_REGISTRATION"
    assert queries.device(ledger.state, "dev-1")["status"] == "revoked"


def test_readings_rules(ledger: Ledger, fleet: Fleet) -> None:
    ledger.run("readings", "submit", fleet.reading("dev-1", 5))
    ledger.run("readings", "submit", fleet.reading("dev-1", 2))  # a lower unused counter fills a gap
    assert code_of(ledger, "readings", "submit", fleet.reading("dev-1", 5)) == "DUPLICATE_READING"
    assert code_of(ledger, "readings", "submit", fleet.reading("dev-9", 1)) == "UNKNOWN_DEVICE"
    wrong_gw = fleet.reading("dev-1", 6)
    fleet.gateway("gw-2")
    assert code_of(ledger, "readings", "submit", fleet.rehop(wrong_gw, "gw-2")) == "WRONG_GATEWAY"
    assert code_of(ledger, "readings", "submit", {**wrong_gw, "msg": "zz"}) == "MALFORMED"
    report = queries.completeness(ledger.state, "dev-1", None)
    assert (report["ranges"], report["gaps"]) == ([[2, 2], [5, 5]], [[3, 4]])


def test_compact_signature_needs_a_stored_credential(ledger: Ledger, fleet: Fleet) -> None:
    fresh = Ledger(fleet).enrol(fleet, "dev-2")
    assert code_of(fresh, "readings", "submit", fleet.reading("dev-2", 1, compact=True)) == "BAD_SIGNATURE"
    fresh.run("readings", "submit", fleet.reading("dev-2", 2))  # full form: the credential is stored (L4)
    for endorser in fresh.endorsers:
        endorser.env.credentials = type(endorser.env.credentials)()  # a restarted endorser refills from state
    fresh.run("readings", "submit", fleet.reading("dev-2", 3, compact=True))


def test_future_timestamp_rejected_at_validation_late_flagged(ledger: Ledger, fleet: Fleet) -> None:
    future = fleet.reading("dev-1", 7, ts=ledger.now_ms + 60_000)
    assert code_of(ledger, "readings", "submit", future) == "FUTURE_TIMESTAMP"
    ledger.run("readings", "submit", fleet.reading("dev-1", 8, ts=ledger.now_ms - 120_000))
    assert queries.record(ledger.state, "dev-1@1#8", late_ms=60_000)["late"] is True


def test_ownership_and_minting_policies(ledger: Ledger, fleet: Fleet) -> None:
    admin, _ = client()
    maker, maker_id = client()
    garage, garage_id = client()
    set_up(ledger, fleet, "vehicle", "pending", admin)
    assert ledger.run("vehicle", "mint", {"dp": "car-1"}, maker) == {"dp": "car-1", "pending": True}
    assert code_of(ledger, "vehicle", "approve_request", {"dp": "car-1"}, maker) == "NOT_ADMIN"
    ledger.run("vehicle", "approve_request", {"dp": "car-1"}, admin)
    assert queries.data_point(ledger.state, "car-1")["owner"] == maker_id
    ctx = {"agent": "garage", "event": "inspection"}
    assert code_of(ledger, "vehicle", "record", {"dp": "car-1", "context": ctx}, garage) == "NOT_OWNER"
    ledger.run("generic", "set_operator", {"operator": garage_id, "approved": True}, maker)
    assert ledger.run("vehicle", "record", {"dp": "car-1", "context": ctx}, garage)["record"] == "car-1/main/0"
    bad = {"agent": "garage", "event": "teleport"}
    assert code_of(ledger, "vehicle", "record", {"dp": "car-1", "context": bad}, maker) == "BAD_CONTEXT"
    crash = {"agent": "car", "event": "accident", "speed_kmh": 140}
    assert ledger.run("vehicle", "record", {"dp": "car-1", "context": crash}, maker)["flags"] == [
        "accident",
        "speeding",
    ]
    ledger.run("generic", "transfer", {"dp": "car-1", "to": garage_id}, maker)
    assert code_of(ledger, "generic", "transfer", {"dp": "car-1", "to": maker_id}, maker) == "NOT_OWNER"


def test_health_allowlist_and_flags(ledger: Ledger, fleet: Fleet) -> None:
    admin, _ = client()
    clinic, clinic_id = client()
    set_up(ledger, fleet, "health", "allowlist", admin)
    assert code_of(ledger, "health", "mint", {"dp": "patient-1"}, clinic) == "NOT_ALLOWED"
    ledger.run("health", "allow", {"client": clinic_id}, admin)
    ledger.run("health", "mint", {"dp": "patient-1"}, clinic)
    vitals = {"agent": "monitor", "heart_rate_bpm": 30, "spo2_pct": 85}
    result = ledger.run("health", "record", {"dp": "patient-1", "context": vitals}, clinic)
    assert result["flags"] == ["bradycardia", "hypoxaemia"]


def test_mvcc_conflict_and_endorsement_policy(ledger: Ledger, fleet: Fleet) -> None:
    admin, _ = client()
    _, a = client()
    _, b = client()
    set_up(ledger, fleet, "vaccine", "allowlist", admin)
    ledger.run("vaccine", "mint", {"dp": "box"}, admin)
    t1 = ledger.endorse(make_proposal("generic", "transfer", {"dp": "box", "to": a}, admin))
    t2 = ledger.endorse(make_proposal("generic", "transfer", {"dp": "box", "to": b}, admin))
    results = ledger.commit([t1, t2])
    assert [(r.valid, r.reason) for r in results] == [(True, ""), (False, "MVCC_READ_CONFLICT")]
    assert queries.tx_status(ledger.state, t2.proposal.id)["reason"] == "MVCC_READ_CONFLICT"
    assert ledger.commit([t1])[0].reason == "DUPLICATE_TXID"
    t3 = ledger.endorse(make_proposal("vaccine", "mint", {"dp": "box2"}, admin), nodes=(0,))
    assert isinstance(t3, Transaction)
    assert ledger.commit([t3])[0].reason == "ENDORSEMENT_POLICY_FAILURE"
    twice = Transaction(t3.proposal, t3.rwset, t3.response, (t3.endorsements[0], t3.endorsements[0]))
    assert ledger.commit([twice])[0].reason == "ENDORSEMENT_POLICY_FAILURE"  # one node counted once
    assert queries.data_point(ledger.state, "box")["owner"] == a


def test_unsigned_and_malformed_proposals_refused(ledger: Ledger, fleet: Fleet) -> None:
    admin, _ = client()
    refused = ledger.endorse(make_proposal("vaccine", "setup", {"grant": grant(fleet, "vaccine", admin)}))
    assert isinstance(refused, Refused) and refused.code == "UNAUTHENTICATED"
    results = ledger.endorsers[0].endorse(ledger.state, [{"body": 1, "sig": ""}, "x"])
    assert [r.code for r in results] == ["MALFORMED_PROPOSAL"] * 2
    assert ledger.commit([b"not json"])[0].reason == "MALFORMED_TX"


def test_lineage_depth_limit_and_forward(ledger: Ledger, fleet: Fleet) -> None:
    admin, _ = client()
    set_up(ledger, fleet, "vaccine", "allowlist", admin)
    ledger.run("vaccine", "mint", {"dp": "chain"}, admin)
    previous: list[str] = []
    for i in range(6):
        out = ledger.run("vaccine", "record", {"dp": "chain", "inputs": previous, "context": {"agent": f"a{i}"}}, admin)
        previous = [out["record"]]
    graph = queries.lineage(ledger.state, "chain/main/5", "backward", 3, 100, 60_000)
    assert set(graph["nodes"]) == {f"chain/main/{i}" for i in (2, 3, 4, 5)} and graph["truncated"]
    forward = queries.lineage(ledger.state, "chain/main/0", "forward", 10, 100, 60_000)
    assert len(forward["nodes"]) == 6 and not forward["truncated"]
    history = queries.history(ledger.state, "chain", "main", 2, 3, 60_000)
    assert [r["id"] for r in history["records"]] == ["chain/main/4", "chain/main/5"]


def test_setup_needs_the_authoritys_grant_and_front_running_wins_nothing(ledger: Ledger, fleet: Fleet) -> None:
    admin, admin_id = client()
    thief, thief_id = client()
    _, other_id = client()
    granted = grant(fleet, "vaccine", admin)
    # Front-running: a client with no grant, then one replaying the admin's grant (seen in flight).
    assert code_of(ledger, "vaccine", "setup", {"policy": "allowlist"}, thief) == "BAD_GRANT"
    assert code_of(ledger, "vaccine", "setup", {"grant": granted}, thief) == "NOT_GRANTEE"
    forged = grant(fleet, "vaccine", thief, signer=Ed25519PrivateKey.generate())
    assert code_of(ledger, "vaccine", "setup", {"grant": forged}, thief) == "BAD_GRANT_SIGNATURE"
    assert (
        code_of(ledger, "vaccine", "setup", {"grant": {**granted, "admin": thief_id}}, thief) == "BAD_GRANT_SIGNATURE"
    )
    assert code_of(ledger, "vaccine", "setup", {"grant": grant(fleet, "health", thief)}, thief) == "WRONG_USECASE"
    assert code_of(ledger, "vaccine", "setup", {"grant": grant(fleet, "vaccine", other_id)}, thief) == "NOT_GRANTEE"
    signed_nonsense = AdminGrant("vaccine", thief_id, "anyone", 1_000).sign(fleet.aa)
    malformed = [{}, signed_nonsense, {k: v for k, v in granted.items() if k != "policy"}]
    for doc in malformed:
        assert code_of(ledger, "vaccine", "setup", {"grant": doc}, thief) == "BAD_GRANT", doc
    assert code_of(ledger, "vaccine", "setup", {"grant": "not a document"}, thief) == "BAD_GRANT"
    assert ledger.value("uc|vaccine") is None  # nothing was written by any refusal
    assert code_of(ledger, "vaccine", "allow", {"client": thief_id}, thief) == "NOT_SET_UP"

    assert ledger.run("vaccine", "setup", {"grant": granted}, admin) == {
        "usecase": "vaccine", "admin": admin_id, "policy": "allowlist"}  # fmt: skip
    again = grant(fleet, "vaccine", admin, "pending", issued_at_ms=2_000)
    assert code_of(ledger, "vaccine", "setup", {"grant": again}, admin) == "ALREADY_SET_UP"
    assert code_of(ledger, "vaccine", "allow", {"client": thief_id}, thief) == "NOT_ADMIN"
    assert code_of(ledger, "vaccine", "mint", {"dp": "box"}, thief) == "NOT_ALLOWED"
    ledger.run("vaccine", "mint", {"dp": "box"}, admin)
    assert queries.data_point(ledger.state, "box")["owner"] == admin_id


def test_transfer_admin_takes_a_newer_grant_presented_by_the_new_admin(ledger: Ledger, fleet: Fleet) -> None:
    old, _ = client()
    new, new_id = client()
    _, clinic_id = client()
    handover = {"grant": grant(fleet, "health", new, "pending", issued_at_ms=2_000)}
    assert code_of(ledger, "health", "transfer_admin", handover, new) == "NOT_SET_UP"
    first = grant(fleet, "health", old, "allowlist", issued_at_ms=1_000)
    ledger.run("health", "setup", {"grant": first}, old)
    assert code_of(ledger, "health", "transfer_admin", handover, old) == "NOT_GRANTEE"
    same_time = {"grant": grant(fleet, "health", new, "pending", issued_at_ms=1_000)}
    assert code_of(ledger, "health", "transfer_admin", same_time, new) == "STALE_GRANT"
    assert ledger.run("health", "transfer_admin", handover, new) == {
        "usecase": "health", "admin": new_id, "policy": "pending"}  # fmt: skip
    # The old admin lost every right, and cannot take the use case back with the old grant.
    assert code_of(ledger, "health", "allow", {"client": clinic_id}, old) == "NOT_ADMIN"
    assert code_of(ledger, "health", "transfer_admin", {"grant": first}, old) == "STALE_GRANT"
    assert ledger.run("health", "mint", {"dp": "ward-9"}, old) == {"dp": "ward-9", "pending": True}
    ledger.run("health", "approve_request", {"dp": "ward-9"}, new)
    assert ledger.value("uc|health") == {"admin": new_id, "policy": "pending", "issued_at_ms": 2_000}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
AA_FOR_FUZZ = Ed25519PrivateKey.generate()


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(["format", "version", "usecase", "admin", "policy", "issued_at_ms", "signature"]),
       value=JSON, drop=st.booleans())  # fmt: skip
def test_admin_grant_decoder_fuzz(field: str, value: object, drop: bool) -> None:
    """Any altered or missing field is refused with ValueError (BadSignature is one), never another exception."""
    doc = AdminGrant("vaccine", "ab" * 32, "allowlist", 1_000).sign(AA_FOR_FUZZ)
    changed = {k: v for k, v in doc.items() if k != field} if drop else {**doc, field: value}
    if json.dumps(changed, sort_keys=True) == json.dumps(doc, sort_keys=True):  # True == 1 but is no version
        assert AdminGrant.verify(changed, AA_FOR_FUZZ.public_key()).admin == "ab" * 32
        return
    with pytest.raises(ValueError):
        AdminGrant.verify(changed, AA_FOR_FUZZ.public_key())
