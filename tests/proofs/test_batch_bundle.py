"""A reading committed inside a reading batch transaction (readings.submit_batch) has a proof bundle
that verifies offline: the batch's bytes, the reading's position, and result attestations over
that one reading's result (PROOFS.md "Reading batches")."""

from __future__ import annotations

import copy

import pytest

from ledger_node.proof import bundle_from_json, verify_bundle
from tests.proofs.conftest import batch_tx, gateway_tx, reading_args, registration_tx

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def batch(device) -> tuple[bytes, bytes, bytes]:
    """A batch of a forged reading (item 0) and an honest one (item 1), with the registrations."""
    honest, forged = device.record(21), device.record(22)
    readings = [
        reading_args(forged, device.sign(device.record(23)), device.hops(forged)),  # signature of another record
        reading_args(honest, device.sign(honest), device.hops(honest)),
    ]
    return batch_tx(readings), registration_tx(device.registration()), gateway_tx(device.gateway_registration())


def failing(doc: dict, device, cluster) -> dict[str, str]:
    return {c.name: c.detail for c in verify_bundle(bundle_from_json(doc), cluster.nodes, device.aa) if not c.ok}


def test_a_batched_reading_verifies_offline(make_bundle, batch, device, cluster) -> None:
    tx, reg, gw = batch
    bundle = make_bundle(reg, tx, gateway_txs=(gw,), item=1)
    assert bundle["record"]["item"] == 1
    checks = verify_bundle(bundle_from_json(bundle), cluster.nodes, device.aa)
    assert [c.name for c in checks if not c.ok] == []
    assert any(c.name == "record.header-hash" and "reading 1" in c.detail for c in checks)
    assert any(c.name == "record.path-hops" and not c.skipped for c in checks)


def test_the_attested_position_cannot_be_moved_to_another_reading(make_bundle, batch, device, cluster) -> None:
    tx, reg, gw = batch
    moved = copy.deepcopy(make_bundle(reg, tx, gateway_txs=(gw,), item=1))
    moved["record"]["item"] = 0
    failed = failing(moved, device, cluster)
    assert "record.result" in failed  # the nodes attested reading 1, not reading 0
    assert "record.abs-signature" in failed  # and reading 0 is the forged one


def test_a_reading_of_a_batch_needs_its_position(make_bundle, batch, device, cluster) -> None:
    tx, reg, gw = batch
    whole = make_bundle(reg, tx, gateway_txs=(gw,), item=1)
    del whole["record"]["item"]  # a transaction-level claim about a batch proves no single reading
    failed = failing(whole, device, cluster)
    assert "record.result" in failed and "record.reading" in failed
    beyond = copy.deepcopy(make_bundle(reg, tx, gateway_txs=(gw,), item=1))
    beyond["record"]["item"] = 5
    assert "no item 5" in failing(beyond, device, cluster)["record.reading"]
