"""Reading batches (readings.submit_batch): one endorsement per batch, one verdict per reading.

Real endorsers and the real validator on MemoryState (ledger_harness), real ABS-IOT-V1 signatures.
"""

from __future__ import annotations

import pytest
from ledger_harness import Fleet, Ledger

from ledger_node.api.client import BATCH_ARGS_BYTES, pack_readings
from ledger_node.api.queries import tx_status
from ledger_node.block import MAX_TX_BYTES
from ledger_node.endorsement.proposal import (
    MAX_ITEMS,
    ProposalError,
    Transaction,
    batch_items,
    decode_transaction,
    item_id,
    make_batch_proposal,
    make_proposal,
)

pytestmark = pytest.mark.unit


@pytest.fixture()
def ledger() -> tuple[Fleet, Ledger]:
    fleet = Fleet(b"reading batches")
    led = Ledger(fleet).enrol(fleet, "b-1", "b-2", "b-old")
    led.run("readings", "submit", fleet.reading("b-1", 1))  # the ledger's copy of b-1's credential (L4)
    return fleet, led


def _items(readings: list[dict]) -> list[tuple[dict, str]]:
    return [(r, f"nonce-{i}") for i, r in enumerate(readings)]


def test_a_bad_reading_never_sinks_the_honest_ones_and_each_keeps_its_reason(ledger) -> None:
    fleet, led = ledger
    forged = fleet.reading("b-1", 4)
    forged = fleet.rehop({**forged, "ts_ms": forged["ts_ms"] + 1})  # device signature no longer matches
    led.run("registry", "revoke", {"doc": fleet.revoke("b-old")})
    readings = [
        fleet.reading("b-1", 2, compact=True),
        forged,
        fleet.reading("b-1", 1),  # already recorded
        fleet.reading("b-old", 1),
        fleet.rehop({**fleet.reading("b-2", 1), "pd": "00" * 32}),
        fleet.reading("b-2", 2, ts=10**15),  # far in the future: refused at validation, not endorsement
        fleet.reading("b-2", 3),
    ]
    items = _items(readings)
    tx = led.endorse(make_batch_proposal(items))
    assert isinstance(tx, Transaction) and len(tx.endorsements) == 2  # one signature per node for the batch
    (result,) = led.commit([tx])
    assert result.valid
    statuses = [tx_status(led.state, item_id(a, n)) for a, n in items]
    assert [(s["status"], s["reason"]) for s in statuses] == [
        ("committed", ""),
        ("invalid", "BAD_SIGNATURE"),
        ("invalid", "DUPLICATE_READING"),
        ("invalid", "REVOKED_DEVICE"),
        ("invalid", "WRONG_POLICY"),
        ("invalid", "FUTURE_TIMESTAMP"),
        ("committed", ""),
    ]
    assert [s.get("item") for s in statuses] == list(range(len(items)))
    assert led.value("rec|b-1@1#2")["proposal"] == item_id(*items[0])  # found by the reading's own id
    assert led.value("rec|b-2@1#3") is not None and led.value("rec|b-2@1#2") is None


def test_an_item_keeps_the_id_it_has_as_a_proposal_of_its_own(ledger) -> None:
    """So a gateway's per-reading ids (and a resubmission, batched or not) name the same reading."""
    fleet, led = ledger
    reading = fleet.reading("b-2", 7)
    single = make_proposal("readings", "submit", reading)
    assert item_id(reading, single.body["nonce"]) == single.id
    assert [r.valid for r in led.commit([led.endorse(single)])] == [True]
    other = fleet.reading("b-2", 8)
    led.commit([led.endorse(make_batch_proposal([(reading, single.body["nonce"]), (other, "x")]))])
    assert tx_status(led.state, single.id)["status"] == "committed"  # the first commit stands
    assert tx_status(led.state, item_id(other, "x"))["status"] == "committed"


def test_mvcc_is_per_reading_across_batches_in_one_block(ledger) -> None:
    fleet, led = ledger
    shared, other = fleet.reading("b-2", 20), fleet.reading("b-2", 22)
    first = led.endorse(make_batch_proposal([(shared, "a"), (fleet.reading("b-2", 21), "a")]))
    second = led.endorse(make_batch_proposal([(shared, "b"), (other, "b")]))
    assert [r.valid for r in led.commit([first, second])] == [True, True]
    assert tx_status(led.state, item_id(shared, "a"))["status"] == "committed"
    assert tx_status(led.state, item_id(shared, "b"))["reason"] == "MVCC_READ_CONFLICT"
    assert tx_status(led.state, item_id(other, "b"))["status"] == "committed"


def test_a_forged_batch_endorsement_fails_every_reading_with_the_policy_reason(ledger) -> None:
    fleet, led = ledger
    items = _items([fleet.reading("b-2", 30), fleet.reading("b-2", 31)])
    tx = led.endorse(make_batch_proposal(items), nodes=(0,))
    forged = Transaction(tx.proposal, tx.rwset, tx.response, (*tx.endorsements, (3, tx.endorsements[0][1])))
    (result,) = led.commit([forged])
    assert (result.valid, result.reason) == (False, "ENDORSEMENT_POLICY_FAILURE")
    assert {tx_status(led.state, item_id(*i))["reason"] for i in items} == {"ENDORSEMENT_POLICY_FAILURE"}
    assert led.value("rec|b-2@1#30") is None


def test_the_same_batch_ordered_twice_is_a_duplicate(ledger) -> None:
    fleet, led = ledger
    tx = led.endorse(make_batch_proposal(_items([fleet.reading("b-2", 40)])))
    assert [r.reason for r in led.commit([tx, tx])] == ["", "DUPLICATE_TXID"]


def test_malformed_batches_are_refused_at_endorsement(ledger) -> None:
    fleet, led = ledger
    good = make_batch_proposal(_items([fleet.reading("b-2", 50)]))
    bad_shapes = [{"items": []}, {"items": [{"args": {}, "nonce": ""}]}, {"items": [{"args": []}]},
                  {"items": [], "extra": 1}, {"items": [{"args": {}, "nonce": "n"}] * (MAX_ITEMS + 1)}]  # fmt: skip
    for args in bad_shapes:
        doc = {"body": {**good.body, "args": args}, "sig": ""}
        (refused,) = led.endorsers[0].endorse(led.state, [doc])
        assert refused.code == "MALFORMED_PROPOSAL", args
        with pytest.raises(ProposalError):
            batch_items(doc["body"])
    bad_item = make_batch_proposal([({"device": "b-2"}, "n"), (fleet.reading("b-2", 51), "m")])
    (endorsed,) = led.endorsers[0].endorse(led.state, [bad_item.to_json()])
    assert [r.get("code") for r in endorsed.response["items"]] == ["BAD_ARGUMENT", None]


def test_packed_batches_stay_inside_a_transaction(ledger) -> None:
    fleet, led = ledger
    readings = [fleet.reading("b-2", ctr, compact=False) for ctr in range(100, 160)]
    items = _items(readings)
    groups = [[items[k] for k in g] for g in pack_readings(list(range(len(items))), readings)]
    assert [i for g in groups for i in g] == items and len(groups) > 1
    for group in groups[:2]:
        tx = led.endorse(make_batch_proposal(group))
        raw = tx.encode()
        assert len(raw) <= MAX_TX_BYTES, (len(group), len(raw))
        assert decode_transaction(raw).rwset == tx.rwset
    assert all(sum(len(str(a)) for a, _ in g) < 2 * BATCH_ARGS_BYTES for g in groups)


def test_state_keys_cover_every_read_and_a_missing_one_is_refused_not_guessed(ledger) -> None:
    """The worker sees only what the node read ahead (readings.state_keys): inputs included."""
    fleet, led = ledger
    derived = fleet.reading("b-1", 60, inputs=(b"b-1@1#1",), compact=True)  # reads its input record too
    endorser = led.endorsers[0]
    plan = endorser.plan([make_batch_proposal([(derived, "d")]).to_json()])
    values = endorser.prefetch(led.state, plan)
    assert b"rec|b-1@1#1" in values and values[b"rec|b-1@1#1"] is not None
    assert endorser.run_items(plan, values).responses[0]["record"] == "b-1@1#60"
    del values[b"dev|b-1"]
    assert endorser.run_items(plan, values).responses[0]["code"] == "STATE_NOT_PREFETCHED"
