"""Proof bundles built from real certified blocks verify offline, and every tampered field is
rejected with the check that names it (PROOFS.md "Verification")."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable

import pytest

from ledger_node.app import TxResult
from ledger_node.proof import BundleError, NodeSet, bundle_from_json, verify_bundle
from tests.proofs.conftest import gateway_tx, reading_tx, registration_tx

pytestmark = pytest.mark.unit


def failures(doc: dict, device, nodes: NodeSet) -> dict[str, str]:
    return {c.name: c.detail for c in verify_bundle(bundle_from_json(doc), nodes, device.aa) if not c.ok}


@pytest.fixture
def good(honest_bundle) -> dict:
    return copy.deepcopy(honest_bundle)


def test_honest_bundle_passes_every_check(good, device, cluster) -> None:
    checks = verify_bundle(bundle_from_json(good), cluster.nodes, device.aa)
    assert [c.name for c in checks if not c.ok] == []
    names = {c.name for c in checks}
    assert {"nodes", "record.merkle-path", "record.certificate", "registration.aa-signature"} <= names
    assert "record.abs-signature" in names and len(good["record"]["path"]) == 3  # 5 txs: a real audit path


def _flip_hex(value: str) -> str:
    return ("0" if value[0] != "0" else "1") + value[1:]


def _tx_byte(doc: dict) -> None:
    tx = bytearray(base64.b64decode(doc["record"]["tx"]))
    tx[-3] ^= 0x01
    doc["record"]["tx"] = base64.b64encode(bytes(tx)).decode()


TAMPERS: dict[str, tuple[Callable[[dict], None], str, str]] = {
    "tx bytes": (_tx_byte, "record.merkle-path", "do not lead"),
    "path sibling": (lambda d: d["record"]["path"][1].update(hash=_flip_hex(d["record"]["path"][1]["hash"])),
                     "record.merkle-path", "do not lead"),
    "path step dropped": (lambda d: d["record"]["path"].pop(), "record.merkle-path", "do not lead"),
    "header field": (lambda d: d["record"]["header"].update(timestamp_ms=d["record"]["header"]["timestamp_ms"] + 1),
                     "record.header-hash", "do not hash"),
    "header and stated hash": (lambda d: d["registration"]["header"].update(height=9) or d["registration"].update(
        block_hash="ab" * 32), "registration.header-hash", "do not hash"),
    "cert signature": (lambda d: d["record"]["cert"]["sigs"][1].update(sig=_flip_hex(d["record"]["cert"]["sigs"][1]["sig"])),
                       "record.certificate", "signature of node 1"),
    "duplicated signer": (lambda d: d["record"]["cert"]["sigs"].__setitem__(2, d["record"]["cert"]["sigs"][0]),
                          "record.certificate", "duplicate signer 0"),
    "fewer than 2f+1": (lambda d: d["record"]["cert"]["sigs"].pop(), "record.certificate", "2f+1 = 3 needed"),
    "unknown signer": (lambda d: d["record"]["cert"]["sigs"][0].update(node=7), "record.certificate", "signer 7"),
    "cert aux": (lambda d: d["record"]["cert"].update(aux="11" * 32), "record.certificate", "does not verify"),
    "result flipped": (lambda d: d["record"]["result"].update(reason="late"), "record.result", "attestation"),
    "attestation dropped": (lambda d: d["record"]["result"]["attestations"].pop(), "record.result", "f+1 = 2 needed"),
    "attestation duplicated": (lambda d: d["record"]["result"]["attestations"].__setitem__(
        1, d["record"]["result"]["attestations"][0]), "record.result", "duplicate"),
    "node set": (lambda d: d["nodes"]["public_keys"].reverse(), "nodes", "another chain or node set"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_each_tampered_field_is_rejected_with_its_reason(name, good, device, cluster) -> None:
    mutate, check, reason = TAMPERS[name]
    doc = copy.deepcopy(good)
    mutate(doc)
    failed = failures(doc, device, cluster.nodes)
    assert check in failed, failed
    assert reason in failed[check]


def test_a_different_trusted_node_set_rejects_the_certificate(good, device, cluster) -> None:
    other = NodeSet(cluster.nodes.chain_id, tuple(reversed(cluster.nodes.public_keys)))
    failed = failures(good, device, other)
    assert "nodes" in failed and "does not verify" in failed["record.certificate"]
    assert "does not verify" in failed["registration.result"]


def test_another_chain_id_is_rejected(good, device, cluster) -> None:
    other = NodeSet("edgeprov-other", cluster.nodes.public_keys)
    assert {"nodes", "record.certificate", "registration.certificate"} <= failures(good, device, other).keys()


# A Byzantine majority of endorsers (or a bug) got bad content certified: inclusion checks pass,
# the content checks must still catch it.


def test_forged_reading_signature_in_a_certified_block(make_bundle, device, cluster) -> None:
    record = device.record(8)
    other = device.sign(device.record(9))  # a genuine signature, over another reading
    reg, gw = registration_tx(device.registration()), gateway_tx(device.gateway_registration())
    doc = make_bundle(reg, reading_tx(record, other, device.hops(record)), gateway_txs=(gw,))
    failed = failures(doc, device, cluster.nodes)
    assert list(failed) == ["record.abs-signature"], failed
    assert "pairing equation" in failed["record.abs-signature"]


def test_undecodable_signature_in_a_certified_block(make_bundle, device, cluster) -> None:
    record = device.record(23)
    sig = bytearray(device.sign(record))
    sig[60] ^= 0x01  # inside R: no longer a point of the group
    doc = make_bundle(registration_tx(device.registration()), reading_tx(record, bytes(sig), device.hops(record)))
    assert "signature.R" in failures(doc, device, cluster.nodes)["record.reading"]


def test_reading_fields_changed_after_signing(make_bundle, device, cluster) -> None:
    record = device.record(10)
    sig = device.sign(record)
    doc = make_bundle(
        registration_tx(device.registration()), reading_tx(device.record(10, ts_ms=5), sig, device.hops(record))
    )
    assert "pairing equation" in failures(doc, device, cluster.nodes)["record.abs-signature"]


def test_wrong_policy_digest(make_bundle, device, cluster) -> None:
    record = device.record(11, pd=bytes(32))
    doc = make_bundle(
        registration_tx(device.registration()), reading_tx(record, device.sign(device.record(11)), device.hops(record))
    )
    failed = failures(doc, device, cluster.nodes)
    assert "not the registered" in failed["record.policy-digest"]
    assert "policy-digest" in failed["record.abs-signature"]


def test_registration_not_signed_by_the_authority(make_bundle, device, cluster) -> None:
    reg = device.registration()
    reg["policy"] = "id and 1 of (org=acme, type=temp, site=ward-7)"
    record = device.record(12)
    doc = make_bundle(registration_tx(reg), reading_tx(record, device.sign(record), device.hops(record)))
    assert "registration rejected" in failures(doc, device, cluster.nodes)["registration.aa-signature"]


def test_registration_of_another_device(make_bundle, device, cluster) -> None:
    record = device.record(13)
    doc = make_bundle(
        registration_tx(device.registration(device="dev-043")),
        reading_tx(record, device.sign(record), device.hops(record)),
    )
    failed = failures(doc, device, cluster.nodes)
    assert "registration is dev-043" in failed["record.device"]
    assert "unknown-device" in failed["record.abs-signature"]


def test_registration_committed_after_the_reading(make_bundle, device, cluster) -> None:
    record = device.record(14)
    doc = make_bundle(
        registration_tx(device.registration()),
        reading_tx(record, device.sign(record), device.hops(record)),
        reading_first=True,
    )
    assert list(failures(doc, device, cluster.nodes)) == ["registration.precedes-record"]


def test_reading_marked_invalid_by_the_ledger(make_bundle, device, cluster) -> None:
    record = device.record(15)
    doc = make_bundle(
        registration_tx(device.registration()), reading_tx(record, device.sign(record), device.hops(record)),
        rec_result=TxResult(False, "DUPLICATE"),
    )  # fmt: skip
    assert "marked it invalid (DUPLICATE)" in failures(doc, device, cluster.nodes)["record.result"]


def test_result_attested_by_one_node_is_not_enough(make_bundle, device, cluster) -> None:
    record = device.record(16)
    doc = make_bundle(
        registration_tx(device.registration()),
        reading_tx(record, device.sign(record), device.hops(record)),
        attesters=(2,),
    )
    failed = failures(doc, device, cluster.nodes)
    assert set(failed) == {"record.result", "registration.result"}


def test_compact_signature_needs_its_credential(make_bundle, device, cluster) -> None:
    record = device.record(17)
    reg, tx = (
        registration_tx(device.registration()),
        reading_tx(record, device.sign(record, compact=True), device.hops(record)),
    )
    assert failures(make_bundle(reg, tx, credential=device.cred.encode()), device, cluster.nodes) == {}
    assert "no credential" in failures(make_bundle(reg, tx), device, cluster.nodes)["record.abs-signature"]
    other = device.cred.encode()[:-1] + bytes([device.cred.encode()[-1] ^ 1])
    assert (
        "cannot check"
        in failures(make_bundle(reg, tx, credential=other), device, cluster.nodes)["record.abs-signature"]
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "bundle.version: 2 is not supported"),
        (lambda d: d.update(format="x"), "bundle.format"),
        (lambda d: d["record"].pop("path"), "bundle.record.path: missing"),
        (lambda d: d["record"].update(index=True), "bundle.record.index: wrong type bool"),
        (lambda d: d["record"]["header"].update(height=-1), "bundle.record.header.height: -1 out of range"),
        (lambda d: d["record"]["cert"]["sigs"][0].update(sig="zz"), "bundle.record.cert.sigs[0].sig: not hex"),
        (lambda d: d["record"].update(tx="***"), "bundle.record.tx: not base64"),
        (lambda d: d.update(chain_id="other"), "bundle.chain_id: differs"),
    ],
)
def test_malformed_bundles_get_a_clear_error(good, mutate, message) -> None:
    doc = copy.deepcopy(good)
    mutate(doc)
    with pytest.raises(BundleError, match=message.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        bundle_from_json(doc)


def test_path_hops_checked_against_the_gateway_registration(make_bundle, device, cluster) -> None:
    record = device.record(18)
    reg, gw = registration_tx(device.registration()), gateway_tx(device.gateway_registration())
    hop = device.hops(record)[0]
    moved = [{**hop, "received_ms": hop["received_ms"] + 1}]
    doc = make_bundle(reg, reading_tx(record, device.sign(record), moved), gateway_txs=(gw,))
    failed = failures(doc, device, cluster.nodes)
    assert list(failed) == ["record.path-hops"] and "gw-1" in failed["record.path-hops"]


def test_hop_by_a_gateway_the_bundle_does_not_register(make_bundle, device, cluster) -> None:
    record = device.record(19)
    reg, gw = registration_tx(device.registration()), gateway_tx(device.gateway_registration(gateway="gw-2"))
    doc = make_bundle(reg, reading_tx(record, device.sign(record), device.hops(record)), gateway_txs=(gw,))
    assert "unregistered gateway 'gw-1'" in failures(doc, device, cluster.nodes)["record.path-hops"]


def test_without_gateway_registrations_hops_are_reported_unchecked(make_bundle, device, cluster) -> None:
    record = device.record(20)
    doc = make_bundle(
        registration_tx(device.registration()), reading_tx(record, device.sign(record), device.hops(record))
    )
    checks = {c.name: c for c in verify_bundle(bundle_from_json(doc), cluster.nodes, device.aa)}
    assert all(c.ok for c in checks.values())
    assert checks["record.path-hops"].skipped and "not checked" in checks["record.path-hops"].detail


def test_gateway_registration_not_signed_by_the_authority(make_bundle, device, cluster) -> None:
    record = device.record(22)
    forged = device.gateway_registration()
    forged["public_key"] = "11" * 32
    tx = reading_tx(record, device.sign(record), device.hops(record))
    doc = make_bundle(registration_tx(device.registration()), tx, gateway_txs=(gateway_tx(forged),))
    failed = failures(doc, device, cluster.nodes)
    assert "registration rejected" in failed["gateway[0].aa-signature"]
    assert "unregistered gateway" in failed["record.path-hops"]
