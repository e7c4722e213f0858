"""Authenticated node-to-node transport over asyncio TCP (SPEC.md §6).

Each node dials every other node once and sends its messages on that connection; it receives on
the connections the others dial to it. A connection starts with a handshake: both sides send a
hello (chain id, node id, ephemeral X25519 key, nonce) and then an Ed25519 signature over the
whole transcript with their configured identity key. The X25519 secret, through HKDF, gives one
HMAC-SHA256 key per direction; each later frame carries a MAC over (frame counter, payload). So a
frame is authenticated for 1 µs instead of a 100 µs signature check, a replayed, reordered or
injected frame fails its MAC, and votes still carry their own signatures where they must be
transferable. Anything wrong (unknown node, bad signature, bad MAC, oversized or undecodable frame)
is dropped and counted, never raised. Send queues are bounded: a slow peer loses frames (the
protocol retransmits), it cannot grow our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import random
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024 * 1024
# Stream buffer limit: with asyncio's 64 KiB default, a multi-megabyte proposal or gossip frame is read
# by pausing and resuming the socket every 128 KiB (a loop iteration each); 4 MiB lets it flow.
STREAM_LIMIT = 4 * 1024 * 1024
MAC_SIZE = 32
HELLO_TAG = b"edgeprov/hello/v1"
HANDSHAKE_TIMEOUT = 5.0
_LEN = struct.Struct(">I")


class FrameError(ValueError):
    """A frame or handshake message that must be dropped; its text is the counted reason."""


@dataclass(frozen=True)
class Hello:
    chain_id: bytes
    node_id: int
    ephemeral: bytes
    nonce: bytes

    def encode(self) -> bytes:
        return (
            HELLO_TAG
            + struct.pack(">H", len(self.chain_id))
            + self.chain_id
            + struct.pack(">H", self.node_id)
            + self.ephemeral
            + self.nonce
        )

    @staticmethod
    def decode(data: bytes) -> Hello:
        if not data.startswith(HELLO_TAG) or len(data) < len(HELLO_TAG) + 2:
            raise FrameError("bad_handshake")
        pos = len(HELLO_TAG)
        (size,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if len(data) != pos + size + 2 + 64:
            raise FrameError("bad_handshake")
        chain_id = data[pos : pos + size]
        (node_id,) = struct.unpack_from(">H", data, pos + size)
        rest = data[pos + size + 2 :]
        return Hello(chain_id, node_id, rest[:32], rest[32:])


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    (size,) = _LEN.unpack(await reader.readexactly(4))
    if size > limit:
        raise FrameError("oversize_frame")
    return await reader.readexactly(size)


class FrameMac:
    """Per-direction HMAC with an implicit counter: replays and reordering inside a stream fail."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 0

    def seal(self, payload: bytes) -> bytes:
        tag = hmac.digest(self._key, struct.pack(">Q", self._counter) + payload, "sha256")
        self._counter += 1
        return payload + tag

    def open(self, data: bytes) -> bytes:
        if len(data) < MAC_SIZE:
            raise FrameError("bad_mac")
        payload, tag = data[:-MAC_SIZE], data[-MAC_SIZE:]
        expected = hmac.digest(self._key, struct.pack(">Q", self._counter) + payload, "sha256")
        if not hmac.compare_digest(tag, expected):
            raise FrameError("bad_mac")
        self._counter += 1
        return payload


@dataclass
class Session:
    peer: int
    send_mac: FrameMac
    recv_mac: FrameMac


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    chain_id: bytes,
    node_id: int,
    identity: Ed25519PrivateKey,
    peers: dict[int, Ed25519PublicKey],
    dialer: bool,
    expect: int | None = None,
) -> Session:
    """Mutual authentication and key agreement (a SIGMA-style signed ephemeral exchange)."""
    ephemeral = X25519PrivateKey.generate()
    mine = Hello(chain_id, node_id, ephemeral.public_key().public_bytes_raw(), os.urandom(32))
    writer.write(frame(mine.encode()))
    await writer.drain()
    theirs = Hello.decode(await read_frame(reader, 4096))
    if theirs.chain_id != chain_id:
        raise FrameError("bad_handshake")
    peer_key = peers.get(theirs.node_id)
    if peer_key is None or theirs.node_id == node_id or (expect is not None and theirs.node_id != expect):
        raise FrameError("unknown_peer")
    first, second = (mine, theirs) if dialer else (theirs, mine)
    transcript = hashlib.sha256(first.encode() + second.encode()).digest()
    role = b"dialer" if dialer else b"listener"
    writer.write(frame(identity.sign(transcript + role)))
    await writer.drain()
    their_sig = await read_frame(reader, 128)
    try:
        peer_key.verify(their_sig, transcript + (b"listener" if dialer else b"dialer"))
    except InvalidSignature as bad:
        raise FrameError("bad_signature") from bad
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(theirs.ephemeral))
    keys = HKDF(hashes.SHA256(), 64, salt=transcript, info=b"edgeprov/frame-keys").derive(shared)
    dial_key, listen_key = keys[:32], keys[32:]
    send, recv = (dial_key, listen_key) if dialer else (listen_key, dial_key)
    return Session(theirs.node_id, FrameMac(send), FrameMac(recv))


@dataclass(frozen=True)
class PeerAddress:
    node_id: int
    host: str
    port: int
    public_key: bytes


class Transport:
    """Moves authenticated frames between nodes; knows nothing about what is inside them."""

    def __init__(
        self,
        *,
        node_id: int,
        chain_id: bytes,
        identity: Ed25519PrivateKey,
        peers: list[PeerAddress],
        on_frame: Callable[[int, bytes], None],
        queue_limit: int = 1024,
    ) -> None:
        self.node_id = node_id
        self.chain_id = chain_id
        self._identity = identity
        self._peers = {p.node_id: p for p in peers if p.node_id != node_id}
        self._keys = {p.node_id: Ed25519PublicKey.from_public_bytes(p.public_key) for p in peers}
        self._on_frame = on_frame
        self.queues: dict[int, asyncio.Queue[bytes]] = {p: asyncio.Queue(queue_limit) for p in self._peers}
        self.drops: Counter[str] = Counter()
        self._tasks: list[asyncio.Task] = []
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, limit=STREAM_LIMIT)
        self._tasks = [asyncio.create_task(self._dial_loop(peer)) for peer in self._peers.values()]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
        for writer in list(self._inbound):
            writer.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def send(self, to: int | None, payload: bytes) -> None:
        targets = self.queues if to is None else ([to] if to in self.queues else [])
        for target in targets:
            try:
                self.queues[target].put_nowait(payload)
            except asyncio.QueueFull:
                self.drops["queue_full"] += 1

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, expect: int | None = None
    ) -> Session:
        """Authenticate a connection; the dialer (`expect` set) names the peer it wants."""
        return await asyncio.wait_for(
            handshake(
                reader,
                writer,
                chain_id=self.chain_id,
                node_id=self.node_id,
                identity=self._identity,
                peers=self._keys,
                dialer=expect is not None,
                expect=expect,
            ),
            HANDSHAKE_TIMEOUT,
        )

    async def _dial_loop(self, peer: PeerAddress) -> None:
        backoff = 0.05
        while True:
            try:
                reader, writer = await asyncio.open_connection(peer.host, peer.port, limit=STREAM_LIMIT)
            except OSError:
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, 2.0)
                continue
            try:
                session = await self._handshake(reader, writer, expect=peer.node_id)
                backoff = 0.05
                await self._pump(self.queues[peer.node_id], session, writer)
            except FrameError as bad:
                self.drops[str(bad)] += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                self.drops["connection_lost"] += 1
            finally:
                writer.close()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, 2.0)

    @staticmethod
    async def _pump(queue: asyncio.Queue[bytes], session: Session, writer: asyncio.StreamWriter) -> None:
        while True:
            payload = await queue.get()
            chunks = [frame(session.send_mac.seal(payload))]
            while not queue.empty() and len(chunks) < 256:
                chunks.append(frame(session.send_mac.seal(queue.get_nowait())))
            writer.writelines(chunks)
            await writer.drain()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._inbound.add(writer)
        try:
            session = await self._handshake(reader, writer)
            while True:
                payload = session.recv_mac.open(await read_frame(reader))
                self._on_frame(session.peer, payload)
        except FrameError as bad:
            self.drops[str(bad)] += 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            self.drops["connection_lost"] += 1
        finally:
            self._inbound.discard(writer)
            writer.close()
