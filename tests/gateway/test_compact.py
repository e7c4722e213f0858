"""The signature form decision (gateway/compact.py, spec §3.6 L4) on real ABS-IOT-V1 readings.

Shows: the compact form derived from the outbox bytes is exactly `Signature.compact()` of the full
one, everything else unchanged; a reading goes full until a full-form reading with its credential
key is committed valid, compact after that (per credential key only), and full again after a compact
one is refused with BAD_SIGNATURE; and on the real contracts (in-process endorsers and validator)
the derived compact form commits once the ledger holds the credential and is refused before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from edgeprov.crypto.objects import Signature
from gateway.compact import CredentialMarks, Forms, Sent
from gateway.ledger_link import Commit
from gateway.transaction import encode
from ledger_node.contracts import storage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
from ledger_harness import Fleet, Ledger, Rejected

pytestmark = pytest.mark.unit

BAD_SIGNATURE = Commit(None, False, "BAD_SIGNATURE")


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(b"gateway compact")


@pytest.fixture(scope="module")
def registrations(fleet: Fleet) -> list[dict]:
    return [fleet.gateway("gw-1"), fleet.device("dev-a"), fleet.device("dev-b")]


def forms(fleet: Fleet, device: str, ctr: int) -> Forms:
    return Forms.of(encode(fleet.reading(device, ctr)))


def test_the_compact_form_is_the_same_signature_with_its_cred_id(fleet: Fleet, registrations: list[dict]) -> None:
    f = forms(fleet, "dev-a", 1)
    full, compact = json.loads(f.full), json.loads(f.compact)
    sig = Signature.decode(bytes.fromhex(full["signature"]))
    assert compact["signature"] == sig.compact().encode().hex()
    assert compact["signature"].startswith("81") and full["signature"].startswith("01")
    assert {k: v for k, v in compact.items() if k != "signature"} == {k: v for k, v in full.items() if k != "signature"}
    assert f.compact == encode(compact)  # canonical JSON, like the outbox bytes
    assert (f.key.cred_id, f.key.device_id, f.key.epoch, f.key.pd.hex()) == (
        sig.cred_id,
        b"dev-a",
        1,
        full["pd"],
    )


def test_full_until_committed_then_compact_then_full_after_a_refusal(fleet: Fleet, registrations: list[dict]) -> None:
    marks = CredentialMarks()
    first, later, other = forms(fleet, "dev-a", 1), forms(fleet, "dev-a", 2), forms(fleet, "dev-b", 1)
    assert not marks.choose(first).compact and not marks.choose(later).compact
    # neither a refused nor an invalid full-form reading puts the credential on the ledger
    assert marks.learn(marks.choose(first), BAD_SIGNATURE) is False
    assert marks.learn(marks.choose(first), Commit(7, False, "MVCC_READ_CONFLICT")) is False
    assert not marks.choose(later).compact
    assert marks.learn(marks.choose(first), Commit(7, True)) is False
    sent = marks.choose(later)
    assert sent.compact and sent.tx == later.compact and sent.other == later.full
    assert not marks.choose(other).compact  # another device's credential key is not on the ledger
    # a compact reading invalid for another reason keeps the mark
    assert marks.learn(sent, Commit(8, False, "FUTURE_TIMESTAMP")) is False
    assert marks.choose(later).compact
    # refused for its signature: the ledger lacks the credential; send it again in full form
    assert marks.learn(sent, BAD_SIGNATURE) is True
    assert not marks.choose(later).compact and marks.choose(later).tx == later.full
    assert marks.learn(Sent(later, compact=False), Commit(9, True)) is False
    assert marks.choose(forms(fleet, "dev-a", 3)).compact


def test_derived_compact_form_commits_once_the_ledger_holds_the_credential(
    fleet: Fleet, registrations: list[dict]
) -> None:
    ledger = Ledger(fleet)
    for doc in registrations:
        ledger.run("registry", doc["action"], {"doc": doc})
    early = forms(fleet, "dev-a", 2)
    with pytest.raises(Rejected) as refused:
        ledger.run("readings", "submit", json.loads(early.compact))
    assert refused.value.code == "BAD_SIGNATURE"  # no credential on the ledger yet (L4)
    ledger.run("readings", "submit", json.loads(forms(fleet, "dev-a", 1).full))
    ledger.run("readings", "submit", json.loads(early.compact))
    ledger.run("readings", "submit", json.loads(forms(fleet, "dev-a", 3).compact))
    assert ledger.value(storage.record_key("dev-a@1#3"))["signature"].startswith("81")
