"""Each contract on an in-memory state with real endorsers and the real validator (ledger_harness)."""

from __future__ import annotations

import pytest
from ledger_harness import Fleet, Ledger, Rejected, client

from ledger_node.api import queries
from ledger_node.endorsement.endorser import Refused
from ledger_node.endorsement.proposal import Transaction, make_proposal

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(b"unit contracts")


@pytest.fixture
def ledger(fleet: Fleet) -> Ledger:
    led = Ledger(fleet)
    led.run("registry", "gateway", {"doc": fleet.gateway("gw-1")})
    led.run("registry", "register", {"doc": fleet.device("dev-1")})
    return led


def code_of(ledger: Ledger, contract: str, fn: str, args: dict, key=None) -> str:
    with pytest.raises(Rejected) as exc:
        ledger.run(contract, fn, args, key)
    return exc.value.code


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
    fresh = Ledger(fleet)
    fresh.run("registry", "gateway", {"doc": fleet.gateway("gw-1")})
    fresh.run("registry", "register", {"doc": fleet.device("dev-2")})
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


def test_ownership_and_minting_policies(ledger: Ledger) -> None:
    admin, _ = client()
    maker, maker_id = client()
    garage, garage_id = client()
    ledger.run("vehicle", "setup", {"policy": "pending"}, admin)
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


def test_health_allowlist_and_flags(ledger: Ledger) -> None:
    admin, _ = client()
    clinic, clinic_id = client()
    ledger.run("health", "setup", {"policy": "allowlist"}, admin)
    assert code_of(ledger, "health", "mint", {"dp": "patient-1"}, clinic) == "NOT_ALLOWED"
    ledger.run("health", "allow", {"client": clinic_id}, admin)
    ledger.run("health", "mint", {"dp": "patient-1"}, clinic)
    vitals = {"agent": "monitor", "heart_rate_bpm": 30, "spo2_pct": 85}
    result = ledger.run("health", "record", {"dp": "patient-1", "context": vitals}, clinic)
    assert result["flags"] == ["bradycardia", "hypoxaemia"]


def test_mvcc_conflict_and_endorsement_policy(ledger: Ledger) -> None:
    admin, _ = client()
    _, a = client()
    _, b = client()
    ledger.run("vaccine", "setup", {"policy": "allowlist"}, admin)
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


def test_unsigned_and_malformed_proposals_refused(ledger: Ledger) -> None:
    refused = ledger.endorse(make_proposal("vaccine", "setup", {"policy": "allowlist"}))
    assert isinstance(refused, Refused) and refused.code == "UNAUTHENTICATED"
    results = ledger.endorsers[0].endorse(ledger.state, [{"body": 1, "sig": ""}, "x"])
    assert [r.code for r in results] == ["MALFORMED_PROPOSAL"] * 2
    assert ledger.commit([b"not json"])[0].reason == "MALFORMED_TX"


def test_lineage_depth_limit_and_forward(ledger: Ledger) -> None:
    admin, _ = client()
    ledger.run("vaccine", "setup", {"policy": "allowlist"}, admin)
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
