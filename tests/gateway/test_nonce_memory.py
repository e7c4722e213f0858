"""G4's nonce memory on disk (spec §3.5 G4, §4 D5): the store keeps each relayed reading's R_dev and mark,
an old-schema database is migrated on open, and a gateway seeds its NonceGuard from the store on start.

In-process, with real keys from `edgeprov authority` and the real Gateway's own steps (no MQTT; the
service over a real broker, killed and restarted, is test_nonce_restart.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edgeprov import wire
from edgeprov.crypto.abs_iot import check_device_share
from edgeprov.crypto.objects import DeviceShare
from edgeprov.crypto.replay import NonceGuard, Verdict, nonce_mark
from edgeprov.crypto.statement import Statement
from edgeprov.procs import free_port
from gateway.config import load_config
from gateway.refusal import Duplicate, Refused
from gateway.service import Gateway
from gateway.signing import GatewaySigner
from gateway.store import Entry, Store
from tests.gateway.fleet import Fleet, reading_frame, reading_topic
from tests.gateway.rollback import restore_pool

pytestmark = pytest.mark.unit

TS = 1_790_000_000_000

# gateway/store.py SCHEMA before the G4 columns: the format of databases already in the field
OLD_SCHEMA = """
CREATE TABLE readings (
    device TEXT NOT NULL, epoch INTEGER NOT NULL, ctr INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, digest BLOB NOT NULL,
    txid BLOB NOT NULL, tx BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', height INTEGER, reason TEXT,
    PRIMARY KEY (device, epoch, ctr)
);
CREATE TABLE outbox (
    device TEXT NOT NULL, epoch INTEGER NOT NULL, ctr INTEGER NOT NULL,
    PRIMARY KEY (device, epoch, ctr)
);
"""


def entry(ctr: int, device: str = "d", epoch: int = 1, nonce: bool = True) -> Entry:
    r_dev, mark = (bytes([ctr]) * 48, bytes([ctr]) * 32) if nonce else (None, None)
    return Entry(device, epoch, ctr, ctr, ctr, bytes(32), bytes([ctr]) * 32, b"tx%d" % ctr, r_dev, mark)


def test_an_old_schema_database_opens_keeps_its_outbox_and_stores_nonces(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite3"
    with sqlite3.connect(db) as old:
        old.executescript(OLD_SCHEMA)
        old.execute("INSERT INTO readings (device, epoch, ctr, ts_ms, received_ms, digest, txid, tx) VALUES"
                    " ('d', 1, 1, 1, 1, zeroblob(32), zeroblob(32), CAST('tx1' AS BLOB))")  # fmt: skip
        old.execute("INSERT INTO outbox VALUES ('d', 1, 1)")
    old.close()

    async def scenario() -> tuple[list[Entry], list, list]:
        store = await Store.open(db)
        pending = await store.pending()
        before = await store.recent_nonces("d", 1, 10)
        await store.add(entry(2))
        await store.close()
        store = await Store.open(db)  # a second open finds the columns present and changes nothing
        after = await store.recent_nonces("d", 1, 10)
        await store.close()
        return pending, before, after

    pending, before, after = asyncio.run(scenario())
    assert [(e.key, e.tx, e.r_dev) for e in pending] == [(("d", 1, 1), b"tx1", None)]
    assert before == []  # a row from before the migration has no nonce to remember
    assert after == [(bytes([2]) * 48, bytes([2]) * 32)]
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(readings)")]
    conn.close()
    assert columns[-2:] == ["r_dev", "nonce_mark"]


def test_recent_nonces_are_the_last_window_by_counter_oldest_first(tmp_path: Path) -> None:
    async def scenario() -> list:
        store = await Store.open(tmp_path / "db.sqlite3")
        others = [entry(9, device="e"), entry(9, epoch=2), entry(7, nonce=False)]
        await asyncio.gather(*(store.add(e) for e in [*map(entry, (5, 1, 6, 2, 3)), *others]))
        nonces = await store.recent_nonces("d", 1, 4)
        await store.close()
        return nonces

    nonces = asyncio.run(scenario())
    assert nonces == [(bytes([c]) * 48, bytes([c]) * 32) for c in (2, 3, 5, 6)]


def test_a_seeded_guard_keeps_duplicate_and_reuse_apart_and_trims_to_its_window() -> None:
    guard = NonceGuard(window=2)
    first, other = nonce_mark(1, 11, b"share-1"), nonce_mark(4, 44, b"share-4")
    guard.seed(b"d", [(b"R0", nonce_mark(0, 10, b"share-0")), (b"R1", first), (b"R2", nonce_mark(2, 12, b"s"))])
    assert guard.check(b"d", b"R1", 1, 11, b"share-1") is Verdict.DUPLICATE
    assert guard.check_mark(b"d", b"R1", other) is Verdict.NONCE_REUSE
    guard.forget(b"d", b"R1", other)  # not R1's first sighting: kept
    assert guard.check_mark(b"d", b"R1", other) is Verdict.NONCE_REUSE
    assert guard.check_mark(b"d", b"R0", other) is Verdict.NEW  # R0 was the oldest, beyond the window of 2


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path, ["dev-1"]).issue()


async def _relay(gateway: Gateway, frame: bytes) -> None:
    """What Gateway.handle and _relay do for an admitted frame, up to the durable store (before ACK_RELAYED)."""
    admitted = await gateway.sessions.admit(reading_topic("dev-1"), frame)
    signed = gateway.signer.sign(admitted.device, admitted.reading)
    await gateway.store.add(gateway.entry(admitted, signed, TS))


async def _close(gateway: Gateway) -> None:
    await gateway.store.close()
    await gateway.link.close()


def test_a_restarted_gateway_refuses_a_reused_pool_entry_under_a_new_counter(fleet: Fleet) -> None:
    config = load_config(fleet.gateway_config([f"http://127.0.0.1:{free_port()}"]))
    signer = fleet.signer("dev-1")
    signer.precompute(3)
    spent = list(signer.record.entries)
    frames = [reading_frame(signer, TS + i, 4000 + i) for i in range(3)]  # ctr 1..3
    reused = wire.Reading.decode(reading_frame(restore_pool(signer, spent[:1]), TS + 9, 1))  # ctr 4, ctr 1's entry
    assert reused.ctr == 4
    assert DeviceShare.decode(reused.share).R_dev == DeviceShare.decode(wire.Reading.decode(frames[0]).share).R_dev

    async def scenario() -> None:
        first = Gateway(config)
        await first.open()
        for frame in frames:
            await _relay(first, frame)
        await _close(first)

        restarted = Gateway(config)  # a new process's memory: only the store carries G4 over
        await restarted.open()
        try:
            admitted = await restarted.sessions.admit(reading_topic("dev-1"), reused.encode())  # counter is new
            device = admitted.device
            with pytest.raises(Refused) as refusal:
                restarted.signer.sign(device, admitted.reading)
            assert (refusal.value.reason, refusal.value.alert) == ("nonce-reuse", True)
            with pytest.raises(Duplicate):  # a byte-identical redelivery of ctr 2 is only a duplicate
                await restarted.sessions.admit(reading_topic("dev-1"), frames[1])
        finally:
            await _close(restarted)

        # The share itself is genuine (G6 holds) and a gateway without the stored memory would sign it:
        # only G4's memory stands between the two shares of one pool entry.
        stmt = Statement(device.bundle.mpk.aa_fp, device.policy.pd, b"dev-1", 1, 4, reused.ts_ms, reused.msg)
        share = DeviceShare.decode(reused.share)
        assert check_device_share(device.bundle.mpk, device.bundle.k_fog.G_gw, share, stmt.c, device.Z())
        GatewaySigner(config.nonce_window, check_shares=True).sign(device, reused)

    asyncio.run(scenario())


def test_a_reading_that_could_not_be_stored_is_forgotten_so_its_redelivery_is_signed(fleet: Fleet) -> None:
    config = load_config(fleet.gateway_config([f"http://127.0.0.1:{free_port()}"]))
    reading = wire.Reading.decode(reading_frame(fleet.signer("dev-1"), TS, 1))
    gateway = Gateway(config)
    device = gateway.devices["dev-1"]
    signed = gateway.signer.sign(device, reading)
    with pytest.raises(Duplicate):  # remembered: the same share again is a duplicate
        gateway.signer.sign(device, reading)
    gateway.signer.release("dev-1", signed)  # what Gateway._relay does when the store write fails
    again = gateway.signer.sign(device, reading)
    assert (again.r_dev, again.nonce_mark) == (signed.r_dev, signed.nonce_mark)
