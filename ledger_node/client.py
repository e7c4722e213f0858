"""The small client port: authenticate, submit transactions, learn when they are durably committed.

Frames are length-prefixed (transport.frame) with a type byte. On connect the node sends CHALLENGE
(32 random bytes); the client answers AUTH (its name and HMAC-SHA256 under its secret over a domain
tag, the challenge and the name). Only then are SUBMIT and STATUS served; anything else before a
valid AUTH gets REJECTED and is counted (`client_unauthenticated`), and a wrong AUTH closes the
connection (`client_bad_auth`). The secrets live in a TOML credential file, mode 0600, written by
`edgeprov ledger init-cluster`; they never appear in logs or on the wire, and the fresh challenge
stops replays. After AUTH the node answers COMMITTED (txid, height, valid) for each submitted
transaction once the block holding it is on disk, including for transactions committed earlier.
STATUS returns height and round. The next issue's HTTP API is the richer front door.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import struct
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from ledger_node.bft.codec import DecodeError, Reader, Writer
from ledger_node.block import MAX_BLOCK_TXS, MAX_TX_BYTES, tx_id
from ledger_node.transport import frame, read_frame

SUBMIT, COMMITTED, STATUS, STATUS_REPLY, CHALLENGE, AUTH, AUTH_OK, REJECTED = 1, 2, 3, 4, 5, 6, 7, 8
AUTH_TAG = b"edgeprov/client-auth/v1"
CHALLENGE_SIZE = 32
MAX_NAME = 64
_ENTRY = struct.Struct(">32sQB")


class AuthError(Exception):
    """The node refused this client's credentials (not an OSError: retrying will not help)."""


@dataclass(frozen=True)
class ClientCredential:
    name: str
    secret: bytes

    def __repr__(self) -> str:  # the secret must not end up in a log line or a traceback
        return f"ClientCredential(name={self.name!r})"


def write_credentials(path: Path, credentials: list[ClientCredential]) -> None:
    """The credential file (mode 0600): [clients] name = "hex secret"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(tomli_w.dumps({"clients": {c.name: c.secret.hex() for c in credentials}}))
    os.chmod(path, 0o600)


def load_credentials(path: Path) -> dict[str, bytes]:
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must not be readable by group or others (chmod 600)")
    clients = tomllib.loads(path.read_text()).get("clients", {})
    return {name: bytes.fromhex(secret) for name, secret in clients.items()}


def load_credential(path: Path, name: str) -> ClientCredential:
    secrets = load_credentials(path)
    if name not in secrets:
        raise KeyError(f"no client {name!r} in {path}")
    return ClientCredential(name, secrets[name])


def auth_mac(secret: bytes, challenge: bytes, name: str) -> bytes:
    return hmac.digest(secret, AUTH_TAG + challenge + name.encode(), "sha256")


def encode_auth(credential: ClientCredential, challenge: bytes) -> bytes:
    w = Writer().u8(AUTH).blob(credential.name.encode()).fixed(auth_mac(credential.secret, challenge, credential.name))
    return w.raw()


class ClientAuthenticator:
    """The node's side: a fresh challenge per connection, checked against the credential file."""

    def __init__(self, secrets: dict[str, bytes]) -> None:
        self._secrets = secrets

    @staticmethod
    def challenge() -> bytes:
        return os.urandom(CHALLENGE_SIZE)

    def verify(self, challenge: bytes, body: bytes) -> str | None:
        """The client's name if `body` is a valid AUTH answer to `challenge`, else None."""
        try:
            r = Reader(body)
            name_bytes, mac = r.blob(MAX_NAME), r.fixed(32)
            r.end()
            name = name_bytes.decode()
        except (DecodeError, UnicodeDecodeError):
            return None
        secret = self._secrets.get(name)
        # Compare against a dummy for unknown names too, so timing does not tell which names exist.
        expected = auth_mac(secret or bytes(32), challenge, name)
        return name if hmac.compare_digest(mac, expected) and secret is not None else None


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


OnCommit = Callable[[bytes, int, bool], None]


class LedgerClient:
    """Async client: connect() authenticates; submit(), then await committed(txid) or status().

    With `on_commit`, acknowledgements go to that callback instead of being kept (load generators
    track thousands of transactions without a future each).
    """

    def __init__(self, host: str, port: int, credential: ClientCredential, on_commit: OnCommit | None = None) -> None:
        self.host, self.port = host, port
        self.commits: dict[bytes, tuple[int, bool]] = {}
        self._credential = credential
        self._on_commit = on_commit
        self._events: dict[bytes, asyncio.Event] = {}
        self._status: asyncio.Future | None = None
        self._reader_task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        challenge = await read_frame(reader, 1 + CHALLENGE_SIZE)
        if challenge[:1] != bytes([CHALLENGE]) or len(challenge) != 1 + CHALLENGE_SIZE:
            raise ConnectionError("node did not send a client challenge")
        self._writer.write(frame(encode_auth(self._credential, challenge[1:])))
        await self._writer.drain()
        answer = await read_frame(reader, 1024)
        if answer[:1] != bytes([AUTH_OK]):
            self._writer.close()
            reason = answer[1:].decode(errors="replace")
            raise AuthError(f"node rejected client {self._credential.name!r}: {reason}")
        self._reader_task = asyncio.create_task(self._read(reader))

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()

    async def submit(self, txs: list[bytes]) -> list[bytes]:
        ids = [tx_id(tx) for tx in txs]
        if self._on_commit is None:
            for txid in ids:
                self._events.setdefault(txid, asyncio.Event())
        self._writer.write(frame(encode_submit(txs)))
        await self._writer.drain()
        return ids

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
                    if self._on_commit is not None:
                        self._on_commit(txid, height, valid)
                        continue
                    self.commits[txid] = (height, valid)
                    self._events.setdefault(txid, asyncio.Event()).set()
            elif body[:1] == bytes([STATUS_REPLY]) and self._status is not None and not self._status.done():
                self._status.set_result(struct.unpack(">QQ", body[1:17]))
