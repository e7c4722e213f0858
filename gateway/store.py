"""Local provenance DB and durable outbox in one SQLite file, written in batches off the event loop.

`readings` keeps every relayed reading with its Data Transfer transaction and, once known, its
commit (height, valid, reason). `outbox` lists the readings not yet committed; a reading and its
outbox row are written in the same transaction, so after a crash the outbox replays exactly what
was accepted. Writes from many coroutines are gathered by one writer task: one transaction per
batch (WAL, synchronous=FULL for a batch with new readings: an acknowledged reading survives power
loss; outcomes alone are not fsynced, see `_write`), run as ONE call on the store's own thread, so
a batch costs the event loop one hand-off however many statements it holds.

Each reading row also keeps its device nonce point R_dev and G4 mark (edgeprov/crypto/replay.py),
written in the reading's own transaction, so the gateway's nonce memory is durable before the
device gets ACK_RELAYED and is seeded from here on start (spec §3.5 G4, §4 D5). Columns added after
the first schema are in ADDED_COLUMNS and added on open to a database that lacks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    device TEXT NOT NULL, epoch INTEGER NOT NULL, ctr INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, digest BLOB NOT NULL,
    txid BLOB NOT NULL, tx BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', height INTEGER, reason TEXT,
    PRIMARY KEY (device, epoch, ctr)
);
CREATE TABLE IF NOT EXISTS outbox (
    device TEXT NOT NULL, epoch INTEGER NOT NULL, ctr INTEGER NOT NULL,
    PRIMARY KEY (device, epoch, ctr)
);
"""

# (table, column, type): NULL in rows written before the column existed
ADDED_COLUMNS = (
    ("readings", "r_dev", "BLOB"),  # G4: compressed device nonce point
    ("readings", "nonce_mark", "BLOB"),  # G4: replay.nonce_mark(ctr, c, share)
)


@dataclass(frozen=True)
class Entry:
    """One relayed reading as stored: key, Data Transfer transaction and its id."""

    device: str
    epoch: int
    ctr: int
    ts_ms: int
    received_ms: int
    digest: bytes
    txid: bytes
    tx: bytes
    r_dev: bytes | None = None  # G4 memory; None where not kept (rows from before the column)
    nonce_mark: bytes | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.device, self.epoch, self.ctr)


@dataclass(frozen=True)
class Outcome:
    """What the ledger decided for one reading."""

    key: tuple[str, int, int]
    height: int
    valid: bool
    reason: str = ""


class Store:
    """Every SQLite call runs on one thread of its own, in submission order (sqlite3 is blocking)."""

    def __init__(self, db: sqlite3.Connection, thread: ThreadPoolExecutor, batch: int) -> None:
        self.db, self.batch = db, batch
        self._thread = thread
        self._queue: asyncio.Queue[tuple[Entry | Outcome, asyncio.Future]] = asyncio.Queue()
        self._writer: asyncio.Task | None = None

    @classmethod
    async def open(cls, path: Path, batch: int = 256) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-store")
        db = await asyncio.get_running_loop().run_in_executor(thread, _connect, path)
        store = cls(db, thread, batch)
        store._writer = asyncio.create_task(store._write_loop(), name="gateway-store-writer")
        return store

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._call(self.db.close)
        self._thread.shutdown()

    def add(self, item: Entry | Outcome) -> asyncio.Future:
        """Queue a reading (into readings + outbox) or an outcome; the future resolves once durable."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._call(self._write, [item for item, _ in batch])
            except Exception as exc:  # a failed batch fails its callers; the loop must keep serving
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, items: list[Entry | Outcome]) -> None:
        """One transaction (store thread): committed, or rolled back on any error."""
        entries = [i for i in items if isinstance(i, Entry)]
        outcomes = [i for i in items if isinstance(i, Outcome)]
        # Only new readings need the fsync: an outcome lost to a power cut leaves its reading in the
        # outbox, which is submitted again and answered with the same outcome (idempotent ids).
        self.db.execute(f"PRAGMA synchronous={'FULL' if entries else 'NORMAL'}")
        with self.db:
            if entries:
                self.db.executemany(
                    "INSERT OR IGNORE INTO readings"
                    " (device, epoch, ctr, ts_ms, received_ms, digest, txid, tx, r_dev, nonce_mark)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.device,
                            e.epoch,
                            e.ctr,
                            e.ts_ms,
                            e.received_ms,
                            e.digest,
                            e.txid,
                            e.tx,
                            e.r_dev,
                            e.nonce_mark,
                        )
                        for e in entries
                    ],
                )
                self.db.executemany("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?)", [e.key for e in entries])
            if outcomes:
                self.db.executemany(
                    "UPDATE readings SET state = ?, height = ?, reason = ? WHERE device = ? AND epoch = ? AND ctr = ?",
                    [("committed" if o.valid else "invalid", o.height, o.reason, *o.key) for o in outcomes],
                )
                self.db.executemany(
                    "DELETE FROM outbox WHERE device = ? AND epoch = ? AND ctr = ?", [o.key for o in outcomes]
                )

    async def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return await self._call(lambda: self.db.execute(sql, params).fetchall())

    async def pending(self) -> list[Entry]:
        """The outbox, oldest first: what must still reach the ledger (replayed after a restart)."""
        rows = await self._rows(
            "SELECT r.device, r.epoch, r.ctr, r.ts_ms, r.received_ms, r.digest, r.txid, r.tx FROM outbox o"
            " JOIN readings r USING (device, epoch, ctr) ORDER BY r.received_ms, r.device, r.ctr"
        )
        return [Entry(*row) for row in rows]

    async def digest(self, device: str, epoch: int, ctr: int) -> bytes | None:
        rows = await self._rows(
            "SELECT digest FROM readings WHERE device = ? AND epoch = ? AND ctr = ?", (device, epoch, ctr)
        )
        return rows[0][0] if rows else None

    async def recent_counters(self, device: str, epoch: int, window: int) -> dict[int, bytes]:
        return dict(
            await self._rows(
                "SELECT ctr, digest FROM readings WHERE device = ? AND epoch = ? ORDER BY ctr DESC LIMIT ?",
                (device, epoch, window),
            )
        )

    async def recent_nonces(self, device: str, epoch: int, window: int) -> list[tuple[bytes, bytes]]:
        """(R_dev, mark) of the device's last `window` readings by counter, oldest first: seeds G4 on start."""
        rows = await self._rows(
            "SELECT r_dev, nonce_mark FROM readings WHERE device = ? AND epoch = ? AND r_dev IS NOT NULL"
            " ORDER BY ctr DESC LIMIT ?",
            (device, epoch, window),
        )
        return rows[::-1]

    async def counts(self) -> dict[str, int]:
        out = dict(await self._rows("SELECT state, COUNT(*) FROM readings GROUP BY state"))
        out["outbox"] = (await self._rows("SELECT COUNT(*) FROM outbox"))[0][0]
        return out


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)  # used by the store's one thread only
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    _add_missing_columns(db)
    db.commit()
    return db


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Migrate a database made by an older SCHEMA; its existing rows keep NULL in the new columns."""
    for table, column, kind in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
