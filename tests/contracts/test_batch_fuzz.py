"""Hypothesis fuzz of reading batch transactions: a real endorsed batch with any one field replaced
decodes to a Transaction or is MALFORMED_TX, and validating a block of it never raises (every
node must reach the same verdict on whatever a Byzantine leader orders)."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_harness import Fleet, Ledger

from ledger_node.endorsement.proposal import ProposalError, decode_transaction, make_batch_proposal
from ledger_node.state import canonical

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def batch() -> tuple[Ledger, dict]:
    fleet = Fleet(b"batch fuzz")
    led = Ledger(fleet).enrol(fleet, "fz-1")
    items = [(fleet.reading("fz-1", 1), "a"), ({"device": "fz-1"}, "b"), (fleet.reading("fz-1", 2), "c")]
    return led, json.loads(led.endorse(make_batch_proposal(items)).encode())


def _paths(doc, prefix=()):
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_field_replaced_decodes_or_is_malformed_and_validation_never_raises(batch, data) -> None:
    led, doc = batch
    mutant = copy.deepcopy(doc)
    path = data.draw(st.sampled_from(list(_paths(mutant))))
    target = mutant
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = data.draw(json_values)
    raw = canonical(mutant)
    try:
        decode_transaction(raw)
    except ProposalError as exc:
        assert exc.code == "MALFORMED_TX"
    (result,) = led.commit_dry([raw])
    assert result.valid in (True, False)
