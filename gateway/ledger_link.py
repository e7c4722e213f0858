"""The gateway's one dependence on the ledger: submit Data Transfer transactions, learn their commit.

`LedgerLink` is what the relay needs; `NodeLink` implements it on the ledger nodes' client port
(ledger_node.client, length-prefixed frames over TCP), failing over between endpoints. Anything
that breaks the link raises `LedgerUnavailable`; the relay then retries with backoff. Resubmitting
is safe: a transaction's id is the hash of its bytes, the outbox keeps the bytes, and the ledger
keeps one record per (id, epoch, ctr) (spec §3.6 L1, L3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ledger_node.block import tx_id
from ledger_node.client import LedgerClient

log = logging.getLogger("edgeprov.gateway.ledger")


class LedgerUnavailable(Exception):
    """No endpoint answered, or the connection broke; the reading stays in the outbox."""


@dataclass(frozen=True)
class Commit:
    height: int
    valid: bool
    reason: str = ""


class LedgerLink(ABC):
    @abstractmethod
    async def submit(self, txs: list[bytes]) -> list[bytes]:
        """Hand transactions to the ledger; returns their ids. Raises LedgerUnavailable."""

    @abstractmethod
    async def committed(self, txid: bytes) -> Commit:
        """Wait until `txid` is committed (valid or marked invalid). Raises LedgerUnavailable."""

    @abstractmethod
    async def close(self) -> None: ...


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class NodeLink(LedgerLink):
    """Over ledger nodes' client ports; connects lazily and moves to the next endpoint on failure."""

    def __init__(self, endpoints: tuple[str, ...], connect_timeout_s: float = 3.0) -> None:
        if not endpoints:
            raise ValueError("at least one ledger endpoint is needed")
        self.endpoints = [_split(e) for e in endpoints]
        self.connect_timeout_s = connect_timeout_s
        self._next = 0
        self._client: LedgerClient | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> LedgerClient:
        async with self._lock:
            if self._client is not None and not self._dead(self._client):
                return self._client
            await self._drop()
            errors = []
            for _ in self.endpoints:
                host, port = self.endpoints[self._next]
                self._next = (self._next + 1) % len(self.endpoints)
                client = LedgerClient(host, port)
                try:
                    await asyncio.wait_for(client.connect(), self.connect_timeout_s)
                except (OSError, TimeoutError) as exc:
                    errors.append(f"{host}:{port}: {exc or type(exc).__name__}")
                    continue
                log.info("connected to ledger node %s:%d", host, port)
                self._client = client
                return client
            raise LedgerUnavailable("; ".join(errors))

    @staticmethod
    def _dead(client: LedgerClient) -> bool:
        # LedgerClient has no public liveness flag: its reader task ends when the connection does.
        task = client._reader_task
        return task is None or task.done()

    async def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    async def submit(self, txs: list[bytes]) -> list[bytes]:
        client = await self._connected()
        try:
            return await client.submit(txs)
        except (OSError, ConnectionError) as exc:
            await self._drop()
            raise LedgerUnavailable(f"submit failed: {exc}") from None

    async def committed(self, txid: bytes) -> Commit:
        client = await self._connected()
        waiter = asyncio.ensure_future(client.committed(txid))
        try:
            done, _ = await asyncio.wait({waiter, client._reader_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiter.done():
                waiter.cancel()
        if waiter not in done:
            raise LedgerUnavailable("connection to the ledger node closed")
        height, valid = waiter.result()
        return Commit(height, valid, "" if valid else "invalid")

    async def close(self) -> None:
        await self._drop()


def transaction_id(tx: bytes) -> bytes:
    return tx_id(tx)
