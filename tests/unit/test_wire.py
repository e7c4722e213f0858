"""edgeprov.wire: canonical device frames round-trip, and every decoder rejects anything else cleanly."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeprov.wire import (
    ACK_COMMITTED,
    ACK_REJECTED,
    Ack,
    Payload,
    Reading,
    WireError,
    parse_topic,
    topic,
)

pytestmark = pytest.mark.unit

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=32)
payloads = st.builds(
    Payload.of,
    st.dictionaries(names, st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=8),
    st.lists(st.binary(min_size=1, max_size=64), max_size=4).map(tuple),
)


def reading(payload: Payload, jacobian: bool = False) -> Reading:
    return Reading(
        "dev-042", 3, 17, 1_700_000_000_123, payload.encode(), bytes(range(192 if jacobian else 96)), jacobian
    )


@given(payloads, st.booleans())
def test_reading_round_trips_byte_for_byte(payload: Payload, jacobian: bool) -> None:
    frame = reading(payload, jacobian).encode()
    decoded = Reading.decode(frame)
    assert decoded == reading(payload, jacobian)
    assert decoded.payload == payload
    assert decoded.encode() == frame


def test_payload_layout_is_the_documented_one() -> None:
    msg = Payload.of({"temp_c": 4250, "hum": -3}, (b"r1",)).encode()
    assert (
        msg
        == bytes([1, 2, 3])
        + b"hum"
        + (-3).to_bytes(4, "big", signed=True)
        + bytes([6])
        + b"temp_c"
        + (4250).to_bytes(4, "big")
        + bytes([1, 2])
        + b"r1"
    )


@pytest.mark.parametrize(
    "values, error",
    [
        ({}, "1..32 values"),
        ({"Temp": 1}, "names"),
        ({"t": 2**31}, "i32"),
    ],
)
def test_payload_rejects_non_canonical_values(values: dict, error: str) -> None:
    with pytest.raises(WireError, match=error):
        Payload.of(values)


def test_payload_names_must_be_sorted_on_the_wire() -> None:
    unsorted = bytes([1, 2, 1]) + b"b" + bytes(4) + bytes([1]) + b"a" + bytes(4) + bytes([0])
    with pytest.raises(WireError, match="strictly increasing"):
        Payload.decode(unsorted)


def test_reading_rejects_unknown_flags_version_and_trailing_bytes() -> None:
    frame = bytearray(reading(Payload.of({"t": 1})).encode())
    with pytest.raises(WireError, match="trailing"):
        Reading.decode(bytes(frame) + b"\0")
    frame[1] = 0x02
    with pytest.raises(WireError, match="flags"):
        Reading.decode(bytes(frame))
    frame[0] = 2
    with pytest.raises(WireError, match="version"):
        Reading.decode(bytes(frame))


def test_reading_rejects_counter_zero_and_bad_ids() -> None:
    msg = Payload.of({"t": 1}).encode()
    with pytest.raises(WireError, match="ctr"):
        Reading("dev", 1, 0, 0, msg, bytes(96))
    with pytest.raises(WireError, match="device id"):
        Reading("dev/+", 1, 1, 0, msg, bytes(96))


@given(st.binary(max_size=400))
def test_decoders_never_raise_anything_but_wire_error(data: bytes) -> None:
    for decode in (Reading.decode, Payload.decode, Ack.decode):
        with contextlib.suppress(WireError):
            assert decode(data).encode() == data


@given(payloads.map(lambda p: reading(p).encode()), st.data())
def test_any_single_byte_change_is_rejected_or_decodes_to_other_fields(frame: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(frame) - 1))
    mutated = frame[:i] + bytes([frame[i] ^ data.draw(st.integers(1, 255))]) + frame[i + 1 :]
    with contextlib.suppress(WireError):
        assert Reading.decode(mutated) != Reading.decode(frame)


def test_ack_round_trip_and_status_check() -> None:
    for ack in (Ack(2, 9, ACK_COMMITTED), Ack(1, 1, ACK_REJECTED, "forged share")):
        assert Ack.decode(ack.encode()) == ack
    with pytest.raises(WireError, match="status"):
        Ack.decode(Ack(1, 1, 7).encode())


def test_topics() -> None:
    assert topic("gw-1", "dev-042", "reading") == "edgeprov/v1/gw-1/dev-042/reading"
    assert parse_topic("edgeprov/v1/gw-1/dev-042/ack") == ("gw-1", "dev-042", "ack")
    for bad in ("edgeprov/v1/gw-1/dev+/ack", "edgeprov/v2/gw/dev/ack", "edgeprov/v1/gw/dev"):
        with pytest.raises(WireError):
            parse_topic(bad)
