"""Hypothesis fuzz of the bundle decoder and verifier: any input is either a bundle or a
BundleError with a message, and verification of whatever decodes never raises."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger_node.proof import BundleError, bundle_from_json, parse_bundle, verify_bundle

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@settings(max_examples=300)
def test_arbitrary_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        parse_bundle(data)
    except BundleError as exc:
        assert str(exc)


@given(json_values)
@settings(max_examples=300)
def test_arbitrary_json_never_crashes_the_decoder(doc) -> None:
    try:
        bundle_from_json(doc)
    except BundleError as exc:
        assert str(exc)


def _paths(doc, prefix=()):
    """Every (container path, key) in a JSON document, so a mutation can hit any field."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def _same_shape(value) -> st.SearchStrategy:
    """A value of the same JSON type, mostly one edit away, so most mutants get past the decoder."""
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, int):
        return st.integers(0, 2**16).map(lambda d: value + d)
    if isinstance(value, str) and value:
        return st.tuples(st.integers(0, len(value) - 1), st.sampled_from("0123456789abcdefABC+/")).map(
            lambda e: value[: e[0]] + e[1] + value[e[0] + 1 :]
        )
    return json_values


@given(st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_field_replaced_is_rejected_or_still_verified_safely(honest_bundle, cluster, device, data) -> None:
    paths = list(_paths(honest_bundle))
    path = data.draw(st.sampled_from(paths))
    doc = copy.deepcopy(honest_bundle)
    target = doc
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = data.draw(json_values | _same_shape(target[path[-1]]))
    try:
        bundle = bundle_from_json(doc)
    except BundleError as exc:
        assert str(exc)
        event("rejected by the decoder")
        return
    checks = verify_bundle(bundle, cluster.nodes, device.aa)
    event("verified")
    # A replacement that decodes to the same bundle (hex case, the txid convenience copy) may pass,
    # and a credential is unused with a full-form signature; any other change must fail a check.
    if path == ("gateways",) and not bundle.gateways:
        # Dropping the optional gateway registrations may pass, but the hops must then say "not checked".
        hops = next(c for c in checks if c.name == "record.path-hops")
        assert hops.ok and hops.skipped and "not checked" in hops.detail
    elif bundle != bundle_from_json(honest_bundle) and path[-1] != "credential":
        assert not all(c.ok for c in checks), path
