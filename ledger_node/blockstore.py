"""Per-node durable storage: the certified chain, per-transaction results, world state, safety state.

Two implementations of one interface: SqliteBlockStore (aiosqlite, WAL) for real nodes and
MemoryBlockStore for the simulator, whose contents outlive a simulated crash just as a file does.
Blocks are staged (visible to state reads at once) and then written by flush(), each block with its
transactions and state writes in one SQLite transaction using executemany, so after `kill -9` a
block is either fully there or absent. Nothing is ever updated in place or deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from ledger_node.app import AppliedBlock
from ledger_node.bft.codec import Reader, Writer
from ledger_node.bft.replica import Restored, SafetyState
from ledger_node.block import Block, BlockHeader, CommitCert, block_from_bytes, block_to_bytes, tx_id

RECENT_BLOCKS = 8


@dataclass(frozen=True)
class StoredBlock:
    block: Block
    cert: CommitCert
    applied: AppliedBlock


class BlockStore(ABC):
    def __init__(self) -> None:
        self._staged: list[StoredBlock] = []
        self._overlay: dict[bytes, bytes] = {}
        self.height = 0
        self.durable_height = 0

    def stage(self, block: Block, cert: CommitCert, applied: AppliedBlock) -> None:
        """Queue a delivered block for writing; its state writes are readable at once."""
        if block.height != self.height + 1:
            raise ValueError(f"block {block.height} does not follow stored height {self.height}")
        self._staged.append(StoredBlock(block, cert, applied))
        self._overlay.update(applied.writes)
        self.height = block.height

    def get_state(self, key: bytes) -> bytes | None:
        value = self._overlay.get(key)
        return value if value is not None else self._read_state(key)

    def scan_state(self, prefix: bytes, limit: int, after: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Up to `limit` (key, value) pairs with keys starting with `prefix` and > `after`, in key order,
        staged writes included: an index range read, so its cost follows the answer, not the store."""
        staged = {k: v for k, v in self._overlay.items() if k.startswith(prefix) and k > after}
        rows = dict(self._scan_state(prefix, after, limit))
        rows.update(staged)
        return sorted(rows.items())[:limit]

    async def flush(self) -> list[StoredBlock]:
        """Write every staged block, one transaction each; returns the blocks now durable."""
        written = []
        # Pop each block only once written, so a cancelled flush loses nothing still staged.
        while self._staged:
            try:
                await self._write(self._staged[0])
            except asyncio.CancelledError:
                # _write finishes its transaction before passing a cancellation on: the block is on disk.
                self._written(written)
                raise
            self._written(written)
        # Written blocks are readable from storage now; keep only what is still staged.
        self._overlay = {k: v for item in self._staged for k, v in item.applied.writes.items()}
        return written

    def _written(self, written: list[StoredBlock]) -> None:
        written.append(self._staged.pop(0))
        self.durable_height = written[-1].block.height

    @abstractmethod
    def _read_state(self, key: bytes) -> bytes | None: ...

    @abstractmethod
    def _scan_state(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Stored rows whose keys start with prefix and are > after, in key order."""

    @abstractmethod
    async def _write(self, item: StoredBlock) -> None: ...

    @abstractmethod
    async def save_safety(self, state: SafetyState, voted: Block | None) -> None:
        """Durable before it returns: the replica sends its vote only afterwards.

        Voted blocks are kept until a block at their height is stored (then they are garbage).
        """

    @abstractmethod
    async def load(self) -> Restored: ...

    @abstractmethod
    async def read_blocks(self, from_height: int, limit: int) -> list[tuple[Block, CommitCert]]: ...


class MemoryBlockStore(BlockStore):
    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[StoredBlock] = []
        self.state: dict[bytes, bytes] = {}
        self.safety: bytes | None = None
        self.voted: dict[bytes, Block] = {}

    def crash(self) -> None:
        """What a power cut does: staged, unflushed blocks are gone; written ones stay."""
        self._staged.clear()
        self._overlay.clear()
        self.height = self.durable_height = len(self.blocks)

    def _read_state(self, key: bytes) -> bytes | None:
        return self.state.get(key)

    def _scan_state(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.state if k.startswith(prefix) and k > after)
        return [(k, self.state[k]) for k in keys[:limit]]

    async def _write(self, item: StoredBlock) -> None:
        self.blocks.append(item)
        self.state.update(item.applied.writes)
        height = item.block.height
        self.voted = {h: b for h, b in self.voted.items() if b.height > height}

    async def save_safety(self, state: SafetyState, voted: Block | None) -> None:
        self.safety = state.to_bytes()
        if voted is not None:
            self.voted[voted.hash] = voted

    async def load(self) -> Restored:
        self.height = self.durable_height = len(self.blocks)
        safety = SafetyState.from_bytes(self.safety) if self.safety else None
        recent = tuple((s.block, s.cert) for s in self.blocks[-RECENT_BLOCKS:])
        return Restored(safety, recent, tuple(self.voted.values()))

    async def read_blocks(self, from_height: int, limit: int) -> list[tuple[Block, CommitCert]]:
        return [(s.block, s.cert) for s in self.blocks[from_height - 1 : from_height - 1 + limit]]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, header BLOB NOT NULL, cert BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, txid BLOB NOT NULL, data BLOB NOT NULL,
    valid INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (height, idx));
CREATE INDEX IF NOT EXISTS txs_by_id ON txs (txid);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS voted (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, block BLOB NOT NULL);
"""


def _header_bytes(header: BlockHeader) -> bytes:
    w = Writer()
    header.encode(w)
    return w.raw()


async def _to_the_end(transaction: Coroutine[Any, Any, None]) -> None:
    """Run one SQLite transaction to its end even if the awaiting task is cancelled meanwhile.

    Cancelling an await on COMMIT (node stop) left the outcome unknown, the ROLLBACK that followed
    failed, stop() raised and the unclosed aiosqlite thread kept the process alive (the flaky cluster
    test of issue 3). Here a cancelled caller waits for the transaction, then re-raises.
    """
    task = asyncio.ensure_future(transaction)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        task.result()
        raise


@contextlib.asynccontextmanager
async def _transaction(db: aiosqlite.Connection) -> AsyncIterator[None]:
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


class SqliteBlockStore(BlockStore):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # One aiosqlite connection; block writes and safety writes must not interleave transactions.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.executescript(_SCHEMA)
        # State reads during block application are point lookups; a second, plain connection serves
        # them inline from the page cache instead of a thread hop per key (WAL allows the reader).
        self._reader = sqlite3.connect(self.path, check_same_thread=False)

    async def close(self) -> None:
        try:
            if self._db is not None:
                await self.flush()
        finally:
            # Always: aiosqlite's worker thread is not a daemon and would keep the process alive.
            if self._db is not None:
                await self._db.close()
            if self._reader is not None:
                self._reader.close()

    def _read_state(self, key: bytes) -> bytes | None:
        row = self._reader.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _scan_state(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        # A primary-key range [prefix, prefix + 0xff…) so SQLite stops at the end of the prefix.
        sql = "SELECT key, value FROM state WHERE key >= ? AND key < ? AND key > ? ORDER BY key LIMIT ?"
        return self._reader.execute(sql, (prefix, prefix + b"\xff" * 8, after, limit)).fetchall()

    async def _write(self, item: StoredBlock) -> None:
        block, db = item.block, self._db
        txs = [
            (block.height, i, tx_hash, tx, int(res.valid), res.reason)
            for i, (tx, tx_hash, res) in enumerate(
                zip(block.txs, map(tx_id, block.txs), item.applied.results, strict=True)
            )
        ]
        await _to_the_end(self._write_locked(db, block, item, txs))

    async def _write_locked(self, db: aiosqlite.Connection, block: Block, item: StoredBlock, txs: list[tuple]) -> None:
        async with self._lock, _transaction(db):
            await db.execute(
                "INSERT INTO blocks (height, hash, header, cert) VALUES (?, ?, ?, ?)",
                (block.height, block.hash, _header_bytes(block.header), item.cert.to_bytes()),
            )
            await db.executemany("INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?)", txs)
            await db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", list(item.applied.writes.items()))
            await db.execute("DELETE FROM voted WHERE height <= ?", (block.height,))

    async def save_safety(self, state: SafetyState, voted: Block | None) -> None:
        await _to_the_end(self._save_safety(state, voted))

    async def _save_safety(self, state: SafetyState, voted: Block | None) -> None:
        db = self._db
        async with self._lock, _transaction(db):
            await db.execute("INSERT OR REPLACE INTO meta VALUES ('safety', ?)", (state.to_bytes(),))
            if voted is not None:
                await db.execute(
                    "INSERT OR IGNORE INTO voted VALUES (?, ?, ?)", (voted.hash, voted.height, block_to_bytes(voted))
                )

    async def load(self) -> Restored:
        async with self._db.execute("SELECT value FROM meta WHERE key = 'safety'") as cur:
            row = await cur.fetchone()
        async with self._db.execute("SELECT MAX(height) FROM blocks") as cur:
            self.height = self.durable_height = (await cur.fetchone())[0] or 0
        recent = await self.read_blocks(max(1, self.height - RECENT_BLOCKS + 1), RECENT_BLOCKS)
        async with self._db.execute("SELECT block FROM voted ORDER BY height") as cur:
            voted = tuple(block_from_bytes(row[0]) for row in await cur.fetchall())
        return Restored(SafetyState.from_bytes(row[0]) if row else None, tuple(recent), voted)

    async def read_blocks(self, from_height: int, limit: int) -> list[tuple[Block, CommitCert]]:
        async with self._db.execute(
            "SELECT height, header, cert FROM blocks WHERE height >= ? ORDER BY height LIMIT ?", (from_height, limit)
        ) as cur:
            rows = await cur.fetchall()
        out = []
        for height, header, cert in rows:
            async with self._db.execute("SELECT data FROM txs WHERE height = ? ORDER BY idx", (height,)) as cur:
                txs = tuple(row[0] for row in await cur.fetchall())
            out.append((Block(BlockHeader.decode(Reader(header)), txs), CommitCert.from_bytes(cert)))
        return out

    def committed_tx(self, txid: bytes) -> tuple[int, bool] | None:
        """(height, valid) of a durably committed transaction: an indexed point read, done inline."""
        row = self._reader.execute("SELECT height, valid FROM txs WHERE txid = ? LIMIT 1", (txid,)).fetchone()
        return (row[0], bool(row[1])) if row else None

    def tx_location(self, txid: bytes) -> tuple[int, int, bool, str] | None:
        """(height, index, valid, reason) of a durably committed transaction, for proof bundles."""
        sql = "SELECT height, idx, valid, reason FROM txs WHERE txid = ? ORDER BY height LIMIT 1"
        row = self._reader.execute(sql, (txid,)).fetchone()
        return (row[0], row[1], bool(row[2]), row[3]) if row else None

    async def block_hashes(self) -> list[bytes]:
        async with self._db.execute("SELECT hash FROM blocks ORDER BY height") as cur:
            return [row[0] for row in await cur.fetchall()]
