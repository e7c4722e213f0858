"""Signed path hops (edgeprov/pathhop.py) and the gateway registration (`edgeprov authority gateway`).

Shows: a hop verifies only for its own reading, gateway, time and predecessor (chaining); JSON
round-trips and malformed JSON is refused with a clear error (fuzzed); the authority issues a 0600
key whose public half is in a registration that `Registration.verify` accepts.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprov.cli import main
from edgeprov.crypto.statement import Statement
from edgeprov.pathhop import Hop, HopError, load_key, sign_hop, verify_hop, verify_path
from edgeprov.registration import Registration

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
STMT = Statement(b"\x01" * 32, b"\x02" * 32, b"dev-1", 1, 7, 1_700_000_000_000, b"\x01\x01\x01t\x00\x00\x00\x05\x00")


def _variants(stmt: Statement) -> list[Statement]:
    fields = {"device_id": b"dev-2", "epoch": 2, "ctr": 8, "ts_ms": 1, "msg": b"x", "pd": b"\x03" * 32}
    return [Statement(**{**stmt.__dict__, name: value}) for name, value in fields.items()]


def test_hop_binds_reading_gateway_time_and_predecessor():
    first = sign_hop(KEY, "gw-1", 1000, STMT)
    verify_hop(KEY.public_key(), first, STMT)
    for other in _variants(STMT):
        with pytest.raises(HopError, match="does not verify"):
            verify_hop(KEY.public_key(), first, other)
    for forged in (Hop("gw-2", 1000, first.sig), Hop("gw-1", 1001, first.sig)):
        with pytest.raises(HopError):
            verify_hop(KEY.public_key(), forged, STMT)
    with pytest.raises(HopError):
        verify_hop(Ed25519PrivateKey.generate().public_key(), first, STMT)
    second_key = Ed25519PrivateKey.generate()
    second = sign_hop(second_key, "gw-2", 1005, STMT, first)
    keys = {"gw-1": KEY.public_key(), "gw-2": second_key.public_key()}
    verify_path(keys, [first, second], STMT)
    with pytest.raises(HopError):
        verify_path(keys, [second], STMT)  # a hop cut from its chain no longer verifies
    with pytest.raises(HopError, match="unregistered"):
        verify_path({"gw-1": KEY.public_key()}, [first, second], STMT)


def test_hop_json_round_trip_and_refusals():
    hop = sign_hop(KEY, "gw-1", 123, STMT)
    assert Hop.from_json(json.loads(json.dumps(hop.to_json()))) == hop
    for bad in ({**hop.to_json(), "sig": "zz"}, {**hop.to_json(), "received_ms": "1"}, {"gateway": "g"}, [], None):
        with pytest.raises(HopError):
            Hop.from_json(bad)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["gateway", "received_ms", "sig", "x"]), st.none() | st.integers() | st.text()))
def test_hop_from_json_fuzz(doc):
    try:
        hop = Hop.from_json(doc)
    except HopError:
        return
    assert Hop.from_json(hop.to_json()) == hop


def test_authority_issues_gateway_key_and_registration(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    aa = tmp_path / "aa"
    assert main(["authority", "setup", "--aa-dir", str(aa)]) == 0
    assert main(["authority", "gateway", "--aa-dir", str(aa), "--gateway", "gw-1"]) == 0
    out = aa / "gateways" / "gw-1" / "e1"
    assert stat.S_IMODE((out / "gateway.key").stat().st_mode) == 0o600
    gateway, key = load_key(out / "gateway.key")
    printed = capsys.readouterr().out
    assert gateway == "gw-1" and key.private_bytes_raw().hex() not in printed
    public = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(json.loads((aa / "authority.json").read_text())["signing_public_key"])
    )
    reg = Registration.verify(json.loads((out / "registration.json").read_text()), public)
    assert (reg.action, reg.gateway, reg.epoch, reg.device) == ("gateway", "gw-1", 1, "")
    assert reg.public_key == key.public_key().public_bytes_raw().hex()
    assert main(["authority", "gateway", "--aa-dir", str(aa), "--gateway", "gw-1"]) == 0
    assert (aa / "gateways" / "gw-1" / "e2" / "gateway.key").exists()
    assert main(["authority", "gateway", "--aa-dir", str(aa), "--gateway", "../x"]) == 2


def test_gateway_registration_needs_a_key_and_no_device():
    aa_key = Ed25519PrivateKey.generate()
    for bad in (
        Registration("gateway", "", 1, "00", "gw", public_key="ab"),
        Registration("gateway", "d", 1, "00", "gw", public_key="ab" * 32),
    ):
        with pytest.raises(ValueError, match="gateway entry"):
            Registration.verify(bad.sign(aa_key), aa_key.public_key())


def test_key_file_readable_by_others_refused(tmp_path: Path):
    path = tmp_path / "gateway.key"
    path.write_text("{}")
    path.chmod(0o644)
    with pytest.raises(HopError, match="chmod 600"):
        load_key(path)
