"""Local provenance DB and durable outbox in one SQLite file (aiosqlite), written in batches.

`readings` keeps every relayed reading with its Data Transfer transaction and, once known, its
commit (height, valid, reason). `outbox` lists the readings not yet committed; a reading and its
outbox row are written in the same transaction, so after a crash the outbox replays exactly what
was accepted. Writes from many coroutines are gathered by one writer task: one transaction and one
`executemany` per batch (WAL, synchronous=FULL: an acknowledged reading survives power loss).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

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
    def __init__(self, db: aiosqlite.Connection, batch: int) -> None:
        self.db, self.batch = db, batch
        self._queue: asyncio.Queue[tuple[Entry | Outcome, asyncio.Future]] = asyncio.Queue()
        self._writer: asyncio.Task | None = None

    @classmethod
    async def open(cls, path: Path, batch: int = 256) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.executescript(SCHEMA)
        await db.commit()
        store = cls(db, batch)
        store._writer = asyncio.create_task(store._write_loop(), name="gateway-store-writer")
        return store

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.db.close()

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
                await self._write([item for item, _ in batch])
            except Exception as exc:  # a failed batch fails its callers; the loop must keep serving
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def _write(self, items: list[Entry | Outcome]) -> None:
        entries = [i for i in items if isinstance(i, Entry)]
        outcomes = [i for i in items if isinstance(i, Outcome)]
        try:
            await self.db.executemany(
                "INSERT OR IGNORE INTO readings (device, epoch, ctr, ts_ms, received_ms, digest, txid, tx)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.device, e.epoch, e.ctr, e.ts_ms, e.received_ms, e.digest, e.txid, e.tx) for e in entries],
            )
            await self.db.executemany("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?)", [e.key for e in entries])
            await self.db.executemany(
                "UPDATE readings SET state = ?, height = ?, reason = ? WHERE device = ? AND epoch = ? AND ctr = ?",
                [("committed" if o.valid else "invalid", o.height, o.reason, *o.key) for o in outcomes],
            )
            await self.db.executemany(
                "DELETE FROM outbox WHERE device = ? AND epoch = ? AND ctr = ?", [o.key for o in outcomes]
            )
            await self.db.commit()
        except Exception:
            await self.db.rollback()
            raise

    async def pending(self) -> list[Entry]:
        """The outbox, oldest first: what must still reach the ledger (replayed after a restart)."""
        cursor = await self.db.execute(
            "SELECT r.device, r.epoch, r.ctr, r.ts_ms, r.received_ms, r.digest, r.txid, r.tx FROM outbox o"
            " JOIN readings r USING (device, epoch, ctr) ORDER BY r.received_ms, r.device, r.ctr"
        )
        return [Entry(*row) for row in await cursor.fetchall()]

    async def digest(self, device: str, epoch: int, ctr: int) -> bytes | None:
        cursor = await self.db.execute(
            "SELECT digest FROM readings WHERE device = ? AND epoch = ? AND ctr = ?", (device, epoch, ctr)
        )
        row = await cursor.fetchone()
        return row[0] if row else None

    async def recent_counters(self, device: str, epoch: int, window: int) -> dict[int, bytes]:
        cursor = await self.db.execute(
            "SELECT ctr, digest FROM readings WHERE device = ? AND epoch = ? ORDER BY ctr DESC LIMIT ?",
            (device, epoch, window),
        )
        return dict(await cursor.fetchall())

    async def counts(self) -> dict[str, int]:
        cursor = await self.db.execute("SELECT state, COUNT(*) FROM readings GROUP BY state")
        out = dict(await cursor.fetchall())
        cursor = await self.db.execute("SELECT COUNT(*) FROM outbox")
        out["outbox"] = (await cursor.fetchone())[0]
        return out
