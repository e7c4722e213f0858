"""One ledger node: the pure replica wired to the transport, SQLite storage, clients and metrics.

All replica calls happen in one task (the inbox loop), so effects are applied in the order the
replica emitted them: a vote is sent only after its safety state is on disk. Delivered blocks are
applied by the Application at once and written by a separate flusher task (consecutive blocks per
SQLite transaction); clients are told a transaction committed only after its block is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter, deque
from pathlib import Path

from ledger_node import client as proto
from ledger_node.app import Application, TxLogApp
from ledger_node.bft import messages as m
from ledger_node.bft.replica import (
    Deliver,
    Effect,
    PersistSafety,
    Replica,
    ReplicaConfig,
    Send,
    ServeSync,
    SetTimer,
)
from ledger_node.bft.signing import Ed25519Signer, Ed25519Verifier
from ledger_node.block import tx_id
from ledger_node.blockstore import SqliteBlockStore
from ledger_node.config import NodeConfig, _split, load_private_key
from ledger_node.endorsement.validator import contract_app
from ledger_node.metrics import NodeMetrics
from ledger_node.transport import Transport, frame, read_frame

log = logging.getLogger("edgeprov.ledger")

INBOX_LIMIT = 20_000


class Inbox:
    """The replica's event queue, with consensus messages and timers ahead of transaction traffic.

    Client submits and transaction gossip wait behind proposals, votes and timeouts: a vote stuck
    behind megabytes of transactions would stretch every round (issue 3). Events keep their order
    within each class.
    """

    def __init__(self) -> None:
        self._consensus: deque[tuple] = deque()
        self._bulk: deque[tuple] = deque()
        self._ready = asyncio.Semaphore(0)

    def put_nowait(self, event: tuple) -> None:
        bulk = event[0] == "submit" or (event[0] == "frame" and m.is_tx_batch(event[2]))
        (self._bulk if bulk else self._consensus).append(event)
        self._ready.release()

    async def get(self) -> tuple:
        await self._ready.acquire()
        return self._consensus.popleft() if self._consensus else self._bulk.popleft()

    def qsize(self) -> int:
        return len(self._consensus) + len(self._bulk)


class LedgerNode:
    def __init__(self, config: NodeConfig, app: Application | None = None) -> None:
        self.config = config
        self.app = app or (contract_app(config) if config.authority_dir else TxLogApp())
        self.api = None
        self.store = SqliteBlockStore(config.data_dir / "ledger.sqlite3")
        self.metrics = NodeMetrics()
        self._inbox = Inbox()
        self._flush_wanted = asyncio.Event()
        self._waiters: dict[bytes, list[asyncio.StreamWriter]] = {}
        self._reported: Counter[str] = Counter()
        self._tasks: list[asyncio.Task] = []
        self._client_server: asyncio.Server | None = None
        secrets = proto.load_credentials(config.client_credentials) if config.client_credentials else {}
        self._client_auth = proto.ClientAuthenticator(secrets)
        self.client_drops: Counter[str] = Counter()
        self.replica: Replica | None = None
        self.transport: Transport | None = None
        self.stopped = asyncio.Event()

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        cfg = self.config
        identity = load_private_key(cfg.key_file)
        await self.store.open()
        restored = await self.store.load()
        keys = {p.node_id: p.public_key for p in cfg.nodes}
        replica_cfg = ReplicaConfig(
            node_id=cfg.node_id,
            n=cfg.n,
            chain_id=cfg.chain_id.encode(),
            batch_size=cfg.batch_size,
            round_timeout=cfg.round_timeout_s,
            max_round_timeout=cfg.max_round_timeout_s,
            checkpoint_interval=cfg.checkpoint_interval,
        )
        self.replica = Replica(replica_cfg, Ed25519Signer(cfg.node_id, identity), Ed25519Verifier(keys), restored)
        self.transport = Transport(
            node_id=cfg.node_id,
            chain_id=cfg.chain_id.encode(),
            identity=identity,
            peers=cfg.nodes,
            on_frame=self._on_frame,
        )
        await self.transport.start(*_split(cfg.listen))
        self._client_server = await asyncio.start_server(self._serve_client, *_split(cfg.client_listen))
        if cfg.api_listen:
            from ledger_node.api.server import ApiServer  # FastAPI loads only on nodes that serve it

            self.api = ApiServer(self)
            await self.api.start()
        if cfg.metrics_listen:
            self.metrics.serve(*_split(cfg.metrics_listen))
        self._tasks = [
            asyncio.create_task(self._inbox_loop()),
            asyncio.create_task(self._flusher()),
            asyncio.create_task(self._metrics_loop()),
        ]
        self._inbox.put_nowait(("start",))
        log.info("node started", extra={"height": self.store.height, "round": self.replica.round, "n": cfg.n})

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client_server is not None:
            self._client_server.close()
        if self.transport is not None:
            await self.transport.close()
        await self.store.close()
        self.stopped.set()

    # ---------------------------------------------------------------- inbox

    def _on_frame(self, peer: int, payload: bytes) -> None:
        if self._inbox.qsize() >= INBOX_LIMIT:
            self.transport.drops["inbox_full"] += 1
            return
        self._inbox.put_nowait(("frame", peer, payload))

    async def _inbox_loop(self) -> None:
        replica = self.replica
        while True:
            event = await self._inbox.get()
            now = time.time()
            kind = event[0]
            try:
                if kind == "frame":
                    effects = replica.on_frame(now, event[1], event[2])
                elif kind == "timer":
                    effects = replica.on_timer(now, event[1], event[2])
                elif kind == "submit":
                    effects = replica.submit(now, event[1])
                else:
                    effects = replica.start(now)
                await self._apply(effects)
            except Exception:
                # A message that trips a bug must not take the node down; it is logged and counted.
                log.exception("event handling failed", extra={"kind": kind})
                replica.drops["handler_error"] += 1

    async def _apply(self, effects: list[Effect]) -> None:
        loop = asyncio.get_running_loop()
        for effect in effects:
            if isinstance(effect, Send):
                self.transport.send(effect.to, m.encode(effect.message))
            elif isinstance(effect, SetTimer):
                loop.call_later(effect.delay, self._inbox.put_nowait, ("timer", effect.kind, effect.token))
            elif isinstance(effect, PersistSafety):
                await self.store.save_safety(effect.state, effect.voted)
            elif isinstance(effect, Deliver):
                await self._deliver(effect)
            elif isinstance(effect, ServeSync):
                blocks = await self.store.read_blocks(effect.from_height, effect.limit)
                if blocks:
                    self.transport.send(effect.peer, m.encode(m.SyncResponse(tuple(blocks))))

    async def _deliver(self, effect: Deliver) -> None:
        sliced = getattr(self.app, "apply_block_sliced", None)  # contracts: validation yields to the loop
        applied = await sliced(effect.block, self.store) if sliced else self.app.apply_block(effect.block, self.store)
        self.store.stage(effect.block, effect.cert, applied)
        self._flush_wanted.set()

    async def _flusher(self) -> None:
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            for item in await self.store.flush():
                self._after_durable(item)

    def _after_durable(self, item) -> None:
        block = item.block
        self.metrics.height.set(block.height)
        self.metrics.commit_latency.observe(max(0.0, time.time() - block.header.timestamp_ms / 1000))
        if self.api is not None:
            self.api.on_durable(block.tx_ids)
        valid = sum(r.valid for r in item.applied.results)
        self.metrics.committed_txs.labels("true").inc(valid)
        self.metrics.committed_txs.labels("false").inc(len(block.txs) - valid)
        acks: dict[asyncio.StreamWriter, list[tuple[bytes, int, bool]]] = {}
        for key, result in zip(block.tx_ids, item.applied.results, strict=True):
            for writer in self._waiters.pop(key, ()):
                acks.setdefault(writer, []).append((key, block.height, result.valid))
        for writer, entries in acks.items():
            if not writer.is_closing():
                writer.write(frame(proto.encode_committed(entries)))

    # --------------------------------------------------------------- clients

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        challenge = self._client_auth.challenge()
        writer.write(frame(bytes([proto.CHALLENGE]) + challenge))
        authenticated = False
        try:
            while True:
                body = await read_frame(reader)
                if body[:1] == bytes([proto.AUTH]) and not authenticated:
                    authenticated = self._client_auth.verify(challenge, body[1:]) is not None
                    if not authenticated:
                        self.client_drops["client_bad_auth"] += 1
                        writer.write(frame(bytes([proto.REJECTED]) + b"bad credentials"))
                        await writer.drain()
                        return
                    writer.write(frame(bytes([proto.AUTH_OK])))
                elif not authenticated:
                    self.client_drops["client_unauthenticated"] += 1
                    writer.write(frame(bytes([proto.REJECTED]) + b"authenticate first"))
                elif body[:1] == bytes([proto.SUBMIT]):
                    self._client_submit(proto.decode_submit(body[1:]), writer)
                elif body[:1] == bytes([proto.STATUS]):
                    status = bytes([proto.STATUS_REPLY]) + self.store.durable_height.to_bytes(8, "big")
                    writer.write(frame(status + self.replica.round.to_bytes(8, "big")))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    def _client_submit(self, txs: tuple[bytes, ...], writer: asyncio.StreamWriter) -> None:
        fresh, done = [], []
        keys = [tx_id(tx) for tx in txs]
        committed = self.store.committed_txs(keys)
        for tx, key in zip(txs, keys, strict=True):
            known = committed.get(key)
            if known is not None:
                done.append((key, *known))
            else:
                self._waiters.setdefault(key, []).append(writer)
                fresh.append(tx)
        if done:
            writer.write(frame(proto.encode_committed(done)))
        if fresh:
            self._inbox.put_nowait(("submit", fresh))

    # --------------------------------------------------------------- metrics

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.metrics.round.set(self.replica.round)
            self.metrics.mempool.set(len(self.replica.mempool))
            self.metrics.inbox.set(self._inbox.qsize())
            for peer, queue in self.transport.queues.items():
                self.metrics.peer_queue.labels(str(peer)).set(queue.qsize())
            drops = self.replica.drops + self.transport.drops + self.client_drops
            for reason, count in drops.items():
                self.metrics.drops.labels(reason).inc(count - self._reported[reason])
            self._reported = Counter(drops)


async def run_node(config: NodeConfig) -> None:
    node = LedgerNode(config)
    await node.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("node stopping", extra={"height": node.store.height})
    await node.stop()


def block_hashes(data_dir: Path) -> list[bytes]:
    """Hashes of the stored chain, read straight from a (stopped or running) node's database."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(data_dir / "ledger.sqlite3")) as db:
        return [row[0] for row in db.execute("SELECT hash FROM blocks ORDER BY height")]
