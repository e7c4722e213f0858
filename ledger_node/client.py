"""The small client port: submit transactions and learn when they are durably committed.

Frames are length-prefixed (transport.frame) with a type byte. A client sends SUBMIT (a list of
transactions); the node answers COMMITTED (txid, height, valid) for each once the block holding it
is on disk, including for transactions that committed earlier. STATUS returns height and round.
This port is for local tools and tests and is not authenticated; the next issue's HTTP API
replaces it.
"""

from __future__ import annotations

import asyncio
import struct

from ledger_node.bft.codec import Reader, Writer
from ledger_node.block import MAX_BLOCK_TXS, MAX_TX_BYTES, tx_id
from ledger_node.transport import frame, read_frame

SUBMIT, COMMITTED, STATUS, STATUS_REPLY = 1, 2, 3, 4
_ENTRY = struct.Struct(">32sQB")


def encode_submit(txs: list[bytes]) -> bytes:
    return Writer().u8(SUBMIT).blobs(txs).raw()


def encode_committed(entries: list[tuple[bytes, int, bool]]) -> bytes:
    return bytes([COMMITTED]) + b"".join(_ENTRY.pack(t, h, v) for t, h, v in entries)


def decode_committed(body: bytes) -> list[tuple[bytes, int, bool]]:
    return [(t, h, bool(v)) for t, h, v in _ENTRY.iter_unpack(body)]


def decode_submit(body: bytes) -> tuple[bytes, ...]:
    r = Reader(body)
    txs = r.blobs(MAX_BLOCK_TXS, MAX_TX_BYTES)
    r.end()
    return txs


class LedgerClient:
    """Async client: submit(), then await committed(txid) or status()."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.commits: dict[bytes, tuple[int, bool]] = {}
        self._events: dict[bytes, asyncio.Event] = {}
        self._status: asyncio.Future | None = None
        self._reader_task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._reader_task = asyncio.create_task(self._read(reader))

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()

    async def submit(self, txs: list[bytes]) -> list[bytes]:
        for tx in txs:
            self._events.setdefault(tx_id(tx), asyncio.Event())
        self._writer.write(frame(encode_submit(txs)))
        await self._writer.drain()
        return [tx_id(tx) for tx in txs]

    async def committed(self, txid: bytes) -> tuple[int, bool]:
        await self._events.setdefault(txid, asyncio.Event()).wait()
        return self.commits[txid]

    async def status(self) -> tuple[int, int]:
        self._status = asyncio.get_running_loop().create_future()
        self._writer.write(frame(bytes([STATUS])))
        await self._writer.drain()
        return await self._status

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            body = await read_frame(reader)
            if body[:1] == bytes([COMMITTED]):
                for txid, height, valid in decode_committed(body[1:]):
                    self.commits[txid] = (height, valid)
                    self._events.setdefault(txid, asyncio.Event()).set()
            elif body[:1] == bytes([STATUS_REPLY]) and self._status is not None and not self._status.done():
                self._status.set_result(struct.unpack(">QQ", body[1:17]))
