"""firmware/lib/wire.py (MicroPython) against edgeprov/wire.py (CPython): the same inputs give the same
bytes for payloads and reading frames, and the ack decoder accepts and rejects exactly the same frames
(fuzzed with hypothesis). Runs the real MicroPython VM, one process per batch of cases."""

from __future__ import annotations

import json

import pytest
from conftest import run_micropython
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprov.wire import Ack, Payload, Reading, WireError

pytestmark = pytest.mark.integration

DRIVER = """
import json, binascii, wire
for line in open(sys.argv[1]):
    case = json.loads(line)
    kind = case["kind"]
    try:
        if kind == "payload":
            out = wire.payload(case["values"], [binascii.unhexlify(r) for r in case["inputs"]])
        elif kind == "reading":
            out = wire.reading(case["id"], case["epoch"], case["ctr"], case["ts"], binascii.unhexlify(case["msg"]),
                               binascii.unhexlify(case["share"]), case["jacobian"])
        else:
            e, c, s, r = wire.ack(binascii.unhexlify(case["data"]))
            out = ("%d %d %d " % (e, c, s)).encode() + r.encode()
        print("ok", binascii.hexlify(out).decode())
    except wire.WireError as exc:
        print("err", exc)
"""

names = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=32)
i32 = st.integers(-(2**31), 2**31 - 1)
payloads = st.builds(
    Payload.of,
    st.dictionaries(names, i32, min_size=1, max_size=32),
    st.lists(st.binary(min_size=1, max_size=64), max_size=32).map(tuple),
)
ids = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    jacobian = draw(st.booleans())
    return Reading(
        draw(ids), draw(st.integers(1, 2**32 - 1)), draw(st.integers(1, 2**64 - 1)), draw(st.integers(0, 2**64 - 1)),
        draw(payloads).encode(), draw(st.binary(min_size=192 if jacobian else 96, max_size=192 if jacobian else 96)),
        jacobian,
    )  # fmt: skip


ack_frames = st.one_of(
    st.builds(
        lambda a: a.encode(),
        st.builds(Ack, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2), st.text(max_size=40)),
    ),
    st.binary(max_size=40),
    st.binary(min_size=15, max_size=30).map(lambda b: b"\x01" + b[1:]),
)


def run_cases(tmp_path, cases: list[dict]) -> list[str]:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    return run_micropython(DRIVER, tmp_path, str(path)).splitlines()


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.lists(payloads, min_size=1, max_size=20))
def test_payload_bytes_match(tmp_path, batch: list[Payload]) -> None:
    cases = [{"kind": "payload", "values": list(p.values), "inputs": [r.hex() for r in p.inputs]} for p in batch]
    assert run_cases(tmp_path, cases) == [f"ok {p.encode().hex()}" for p in batch]


@SETTINGS
@given(st.lists(readings(), min_size=1, max_size=20))
def test_reading_frame_bytes_match(tmp_path, batch: list[Reading]) -> None:
    cases = [
        {"kind": "reading", "id": r.device_id, "epoch": r.epoch, "ctr": r.ctr, "ts": r.ts_ms, "msg": r.msg.hex(),
         "share": r.share.hex(), "jacobian": r.jacobian}
        for r in batch
    ]  # fmt: skip
    assert run_cases(tmp_path, cases) == [f"ok {r.encode().hex()}" for r in batch]


def expected_ack(data: bytes) -> str:
    try:
        ack = Ack.decode(data)
    except WireError:
        return "err"
    return f"{ack.epoch} {ack.ctr} {ack.status}"


@SETTINGS
@given(st.lists(ack_frames, min_size=1, max_size=30))
def test_ack_decoder_accepts_and_rejects_the_same_frames(tmp_path, batch: list[bytes]) -> None:
    got = run_cases(tmp_path, [{"kind": "ack", "data": d.hex()} for d in batch])
    for data, line in zip(batch, got, strict=True):
        want = expected_ack(data)
        if want == "err":
            assert line.startswith("err "), (data, line)
            continue
        fields = bytes.fromhex(line.removeprefix("ok ")).decode("utf-8", "replace")
        assert fields.startswith(want + " "), (data, line)
        reason = Ack.decode(data).reason
        if "\ufffd" not in reason:
            assert fields == f"{want} {reason}"


def test_device_rejects_payloads_outside_the_canonical_form(tmp_path) -> None:
    bad = [
        {"kind": "payload", "values": [["Temp", 1]], "inputs": []},
        {"kind": "payload", "values": [], "inputs": []},
        {"kind": "payload", "values": [["t", 2**31]], "inputs": []},
        {"kind": "payload", "values": [["t", 1], ["t", 2]], "inputs": []},
        {"kind": "payload", "values": [["t", 1]], "inputs": [""]},
        {"kind": "reading", "id": "d", "epoch": 1, "ctr": 1, "ts": 0, "msg": "", "share": "00" * 95, "jacobian": False},
    ]
    assert all(line.startswith("err ") for line in run_cases(tmp_path, bad))
