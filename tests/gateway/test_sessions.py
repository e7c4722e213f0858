"""Per-device sessions and the gateway's signing rules (gateway/session.py, gateway/signing.py).

Shows, each with its refusal reason: unknown device, topic id ≠ frame id, wrong gateway, other
epoch, replayed counter with another frame, oversize and malformed frames (fuzzed), a forged share
caught by G6, a repeated R_dev under a new counter refused with an alert (G4); and what must pass:
a byte-identical redelivery is a Duplicate (not a refusal), a lower unused counter is accepted
(offline buffer), a counter older than the replay window is checked against the provenance DB,
and the combined signature of an admitted reading verifies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprov import wire
from edgeprov.crypto.abs_iot import Record, verify
from edgeprov.crypto.objects import DeviceShare
from edgeprov.crypto.points import g1
from gateway.devices import load_devices
from gateway.refusal import Duplicate, Refused
from gateway.session import Sessions
from gateway.signing import GatewaySigner
from gateway.store import Store
from tests.gateway.fleet import GATEWAY, Fleet, reading_frame, reading_topic

pytestmark = pytest.mark.unit

TS = 1_790_000_000_000


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return Fleet(tmp_path_factory.mktemp("fleet"), ["dev-1", "dev-2"]).issue()


@pytest.fixture(scope="module")
def devices(fleet: Fleet):
    return load_devices(fleet.aa / "issued", GATEWAY)


def _sessions(devices, db: dict | None = None, window: int = 1000) -> Sessions:
    async def lookup(device: str, epoch: int, ctr: int) -> bytes | None:
        return (db or {}).get((device, epoch, ctr))

    return Sessions(GATEWAY, devices, max_frame=2048, window=window, lookup=lookup)


def _reason(coro) -> str:
    with pytest.raises(Refused) as info:
        asyncio.run(coro)
    return info.value.reason


def test_admission_refusals_have_reasons(fleet: Fleet, devices):
    sessions = _sessions(devices)
    frame = reading_frame(fleet.signer("dev-1"), TS, 4250)
    assert _reason(sessions.admit(reading_topic("dev-1"), b"\x00" * 3000)) == "oversize"
    assert _reason(sessions.admit(reading_topic("dev-1"), b"\x01\x00garbage")) == "malformed"
    assert _reason(sessions.admit("edgeprov/v1/gw-1/dev-1", frame)) == "malformed"
    assert _reason(sessions.admit(wire.topic("gw-2", "dev-1", "reading"), frame)) == "wrong-gateway"
    assert _reason(sessions.admit(reading_topic("dev-2"), frame)) == "topic-id-mismatch"
    stranger = wire.Reading.decode(frame)
    stranger = wire.Reading("dev-9", 1, 1, TS, stranger.msg, stranger.share).encode()
    assert _reason(sessions.admit(reading_topic("dev-9"), stranger)) == "unknown-device"
    other_epoch = wire.Reading.decode(frame)
    other_epoch = wire.Reading("dev-1", 2, 1, TS, other_epoch.msg, other_epoch.share).encode()
    assert _reason(sessions.admit(reading_topic("dev-1"), other_epoch)) == "epoch"


def test_counters_duplicates_gaps_and_window(fleet: Fleet, devices):
    signer = fleet.signer("dev-2")
    frames = [reading_frame(signer, TS + i, i) for i in range(4)]  # ctr 1..4
    db = {}
    sessions = _sessions(devices, db, window=2)
    for frame in (frames[3], frames[0]):  # ctr 4, then the buffered ctr 1: a lower unused counter is fine
        asyncio.run(sessions.admit(reading_topic("dev-2"), frame))
    with pytest.raises(Duplicate):
        asyncio.run(sessions.admit(reading_topic("dev-2"), frames[3]))
    replay = wire.Reading.decode(frames[3])
    replay = wire.Reading("dev-2", 1, replay.ctr, TS + 99, replay.msg, replay.share).encode()
    assert _reason(sessions.admit(reading_topic("dev-2"), replay)) == "counter-used"
    # ctr 2 is below the window (high 4 - 2): the DB decides; it holds another reading there.
    db[("dev-2", 1, 2)] = b"\x00" * 32
    assert _reason(sessions.admit(reading_topic("dev-2"), frames[1])) == "counter-used"
    del db[("dev-2", 1, 2)]
    assert asyncio.run(sessions.admit(reading_topic("dev-2"), frames[1])).reading.ctr == 2


def test_signed_reading_verifies_and_g6_catches_a_forged_share(fleet: Fleet, devices):
    device = devices["dev-1"]
    sessions = _sessions(devices)
    signer = fleet.signer("dev-1")
    admitted = asyncio.run(sessions.admit(reading_topic("dev-1"), reading_frame(signer, TS, 1)))
    signed = GatewaySigner(64, check_shares=True).sign(device, admitted.reading)
    r = admitted.reading
    record = Record(r.device_id.encode(), r.epoch, r.ctr, r.ts_ms, r.msg, device.policy.pd)
    verify(device.bundle.mpk, device.registry_entry, record, signed.signature)  # raises if invalid
    honest = wire.Reading.decode(reading_frame(signer, TS + 1, 2))
    share = DeviceShare.decode(honest.share)
    forged = wire.Reading(
        "dev-1", 1, honest.ctr, honest.ts_ms, honest.msg, DeviceShare(share.W_dev + g1, share.R_dev).encode()
    )
    with pytest.raises(Refused) as info:
        GatewaySigner(64, check_shares=True).sign(device, forged)
    assert info.value.reason == "share-invalid"


def test_nonce_reuse_is_refused_with_an_alert(fleet: Fleet, devices):
    device = devices["dev-1"]
    signer = GatewaySigner(64, check_shares=False)
    first = wire.Reading.decode(reading_frame(fleet.signer("dev-1"), TS, 7))
    signer.sign(device, first)
    with pytest.raises(Duplicate):
        signer.sign(device, first)  # byte-identical: a redelivery, dropped quietly
    reused = wire.Reading("dev-1", 1, first.ctr + 100, first.ts_ms, first.msg, first.share)  # same R_dev, new statement
    with pytest.raises(Refused) as info:
        signer.sign(device, reused)
    assert info.value.reason == "nonce-reuse" and info.value.alert


def test_malformed_share_refused(fleet: Fleet, devices):
    good = wire.Reading.decode(reading_frame(fleet.signer("dev-2"), TS, 1))
    bad = wire.Reading("dev-2", 1, good.ctr, TS, good.msg, b"\xff" * 96)
    with pytest.raises(Refused) as info:
        GatewaySigner(64, False).sign(devices["dev-2"], bad)
    assert info.value.reason == "share-malformed"


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=300))
def test_random_frames_are_refused_not_crashing(devices, frame):
    sessions = _sessions(devices)
    with pytest.raises((Refused, Duplicate)):
        asyncio.run(sessions.admit(reading_topic("dev-1"), frame))


def test_store_batches_and_replays(tmp_path: Path):
    from gateway.store import Entry, Outcome

    async def scenario():
        store = await Store.open(tmp_path / "db.sqlite3", batch=8)
        entries = [Entry("d", 1, c, c, c, bytes(32), bytes([c]) * 32, b"tx%d" % c) for c in range(1, 21)]
        await asyncio.gather(*(store.add(e) for e in entries), store.add(entries[0]))  # a repeat is ignored
        await store.add(Outcome(("d", 1, 5), 3, True))
        await store.close()
        store = await Store.open(tmp_path / "db.sqlite3")
        pending, counts = await store.pending(), await store.counts()
        await store.close()
        return pending, counts

    pending, counts = asyncio.run(scenario())
    assert [e.ctr for e in pending] == [c for c in range(1, 21) if c != 5]
    assert counts == {"pending": 19, "committed": 1, "outbox": 19}
