"""The node's HTTP JSON API: FastAPI served by uvicorn inside the node's asyncio loop.

The OpenAPI schema is published at `/openapi.json` (docs at `/docs`). Write endpoints (endorse,
submit) need `Authorization: Bearer <token>`; the node keeps only SHA-256 digests of the tokens
from `api_token_file` (mode 0600, one token per line) and never logs or echoes them. Reads are
public: the ledger is meant to be audited. Reads see durably committed state only where it
matters (transaction status waits for the block to be on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from edgeprov.crypto.credstore import CredentialStore
from ledger_node.api import PROOF_PATH, queries
from ledger_node.api.commits import CommitWaiters
from ledger_node.bft.signing import Ed25519Signer
from ledger_node.block import MAX_TX_BYTES
from ledger_node.config import _split, load_private_key
from ledger_node.contracts import Env
from ledger_node.endorsement import worker
from ledger_node.endorsement.batcher import EndorseBatcher
from ledger_node.endorsement.endorser import Endorser
from ledger_node.endorsement.proposal import ProposalError, decode_transaction
from ledger_node.endorsement.validator import quorum_of
from ledger_node.proof import NodeSet, NotProvable, record_bundle
from ledger_node.state import canonical

log = logging.getLogger("edgeprov.api")

MAX_BATCH = 4096
MAX_WAIT_MS = 30_000
RecordId = Annotated[str, Query(min_length=1, max_length=160, pattern=r"^[A-Za-z0-9_.@#/-]+$")]
Name = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class EndorseRequest(BaseModel):
    proposals: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class SubmitRequest(BaseModel):
    transactions: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class Submitted(BaseModel):
    proposal_id: str
    tx_hash: str


class SubmitResponse(BaseModel):
    accepted: list[Submitted]


class EndorseResponse(BaseModel):
    results: list[dict[str, Any]]


class TxStatus(BaseModel):
    proposal_id: str
    status: Literal["committed", "invalid", "unknown"]
    reason: str = ""
    height: int | None = None
    index: int | None = None
    tx: str | None = None
    item: int | None = None  # a reading of a batch transaction: its position in the batch
    attempts: list[dict[str, Any]] | None = None


class WaitRequest(BaseModel):
    proposal_ids: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(min_length=1, max_length=MAX_BATCH)
    wait_ms: int = Field(default=0, ge=0, le=MAX_WAIT_MS)


class WaitResponse(BaseModel):
    statuses: list[TxStatus]


class NodeStatus(BaseModel):
    node_id: int
    chain_id: str
    n: int
    endorsement_quorum: int
    height: int
    durable_height: int


def load_tokens(path) -> frozenset[bytes]:
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must not be readable by group or others (chmod 600)")
    tokens = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return frozenset(hashlib.sha256(t.encode()).digest() for t in tokens)


_bearer = HTTPBearer(auto_error=False)


class TokenCheck:
    """FastAPI dependency of the write endpoints: constant-time comparison of token digests."""

    def __init__(self, tokens: frozenset[bytes]) -> None:
        self.tokens = tokens

    def __call__(self, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        digest = hashlib.sha256(creds.credentials.encode()).digest() if creds else b""
        if not any(hmac.compare_digest(digest, t) for t in self.tokens):
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


def build_env(config) -> Env:
    from tools.authority import Authority

    aa = Authority.load(config.authority_dir)
    return Env(aa.mpk, aa.signing_public, config.skew_ms, config.late_ms, CredentialStore())


def verify_pool(config) -> Executor | None:
    """The worker process of signature batches (EDGEPROV_ENDORSE_WORKERS, default 1; 0: a thread)."""
    workers = int(os.environ.get("EDGEPROV_ENDORSE_WORKERS", "1"))
    if workers <= 0:
        return None
    context = multiprocessing.get_context("spawn")  # no fork of a process running threads and sockets
    return ProcessPoolExecutor(workers, context, initializer=worker.init, initargs=(str(config.authority_dir),))


def create_app(node, pool: Executor | None = None, commits: CommitWaiters | None = None) -> FastAPI:
    """The API of one LedgerNode (node.store is the state snapshot; node._inbox feeds ordering)."""
    cfg = node.config
    tokens = load_tokens(cfg.api_token_file) if cfg.api_token_file else frozenset()
    signer = Ed25519Signer(cfg.node_id, load_private_key(cfg.key_file))
    batcher = EndorseBatcher(Endorser(build_env(cfg), signer, cfg.chain_id.encode()), node.store, pool)
    commits = commits or CommitWaiters()
    nodes = NodeSet(cfg.chain_id, tuple(p.public_key for p in sorted(cfg.nodes, key=lambda p: p.node_id)))
    writer = TokenCheck(tokens)
    app = FastAPI(title="edgeprov ledger node", version="1", description=__doc__)

    @app.post("/v1/endorse", response_model=EndorseResponse, dependencies=[Depends(writer)])
    async def endorse(request: EndorseRequest) -> dict:
        """Execute proposals against current state; each result is a signed endorsement or a refusal.

        Requests arriving together are endorsed as one batch (one batch signature verification)."""
        return {"results": await batcher.endorse(request.proposals)}

    @app.post("/v1/submit", response_model=SubmitResponse, dependencies=[Depends(writer)])
    async def submit(request: SubmitRequest) -> dict:
        """Hand endorsed transactions to ordering; follow them with GET /v1/tx/{proposal_id}."""
        raw, accepted, items = [], [], []
        for k, doc in enumerate(request.transactions):
            if k % 8 == 7:
                await asyncio.sleep(0)  # a reading batch transaction is ~1 ms to encode and check
            try:
                data = _canonical_tx(doc)
                tx = decode_transaction(data)
                pid = tx.proposal.id
            except (ProposalError, ValueError, TypeError) as exc:
                raise HTTPException(400, f"transaction rejected: {exc}") from None
            if len(data) > MAX_TX_BYTES:
                raise HTTPException(413, f"transaction larger than {MAX_TX_BYTES} bytes")
            raw.append(data)
            accepted.append({"proposal_id": pid, "tx_hash": hashlib.sha256(data).hexdigest()})
            items.append([r["id"] for r in tx.response["items"] if isinstance(r.get("id"), str)]
                         if "items" in tx.rwset else [])  # fmt: skip
        for entry, ids in zip(accepted, items, strict=True):
            commits.submitted(bytes.fromhex(entry["tx_hash"]), entry["proposal_id"], *ids)
        node._inbox.put_nowait(("submit", raw))
        return {"accepted": accepted}

    async def wait_statuses(proposal_ids: list[str], wait_ms: int) -> list[dict]:
        """Each status once durably committed or found invalid; "unknown" if not within wait_ms. One
        state read per wake-up for all of them; woken by the commit path, no polling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        done: dict[str, dict] = {}
        todo = list(dict.fromkeys(proposal_ids))
        while todo:
            found = queries.tx_statuses(node.store, todo, commits)
            durable = node.store.durable_height
            done |= {p: s for p, s in found.items() if s["status"] != "unknown" and s["height"] <= durable}
            todo = [p for p in todo if p not in done]
            left = deadline - loop.time()
            if not todo or left <= 0:
                break
            await asyncio.wait([asyncio.ensure_future(commits.wait(p, left)) for p in todo])
        unknown = {"status": "unknown", "reason": ""}
        return [done.get(p) or {"proposal_id": p, **unknown} for p in proposal_ids]

    @app.get("/v1/tx/{proposal_id}", response_model=TxStatus)
    async def tx_status(proposal_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
                        wait_ms: Annotated[int, Query(ge=0, le=MAX_WAIT_MS)] = 0) -> dict:  # fmt: skip
        """Status of a proposal; with wait_ms, waits until it is durably committed or found invalid."""
        return (await wait_statuses([proposal_id], wait_ms))[0]

    @app.post("/v1/tx/wait", response_model=WaitResponse)
    async def tx_wait(request: WaitRequest) -> dict:
        """The statuses of many proposals, each waited for as GET /v1/tx/{id}?wait_ms= does."""
        return {"statuses": await wait_statuses(request.proposal_ids, request.wait_ms)}

    @app.get(PROOF_PATH)
    async def proof(record: RecordId) -> dict:
        """The proof bundle of a committed reading (ledger_node/PROOFS.md), with this node's result
        attestations; merge bundles from f+1 nodes (proof.merge_attestations) for `edgeprov verify`."""
        try:
            return await record_bundle(node.store, nodes, record, signer)
        except NotProvable as exc:
            raise HTTPException(409, str(exc)) from None
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/v1/record")
    async def record(id: RecordId) -> dict:
        """One provenance record (reading or generic) with its version, commit time and late flag."""
        return _found(queries.record(node.store, id, cfg.late_ms), f"record {id}")

    @app.get("/v1/verifications")
    async def verifications(record: RecordId) -> list[dict]:
        """Stored Provenance Verification results for a record: who asked, when, what was found."""
        return queries.verifications(node.store, record)

    @app.get("/v1/datapoints/{dp}")
    async def data_point(dp: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]) -> dict:
        """A data point: owner, approved party, use case and its parallel traces."""
        return _found(queries.data_point(node.store, dp), f"data point {dp}")

    @app.get("/v1/history")
    async def history(dp: Name, trace: Name = "main", limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      after: Annotated[int, Query(ge=-1, le=2**40)] = -1) -> dict:  # fmt: skip
        """The records of one trace of a data point, oldest first (page with `after`)."""
        return queries.history(node.store, dp, trace, limit, after, cfg.late_ms)

    @app.get("/v1/lineage")
    async def lineage(record: RecordId, direction: Literal["backward", "forward"] = "backward",
                      depth: Annotated[int, Query(ge=0, le=queries.MAX_DEPTH)] = 10,
                      limit: Annotated[int, Query(ge=1, le=queries.MAX_NODES)] = 1000) -> dict:  # fmt: skip
        """Lineage and derivation graph: backward (inputs) or forward (uses), depth- and size-limited."""
        graph = queries.lineage(node.store, record, direction, depth, limit, cfg.late_ms)
        return _found(graph if graph["nodes"] else None, f"record {record}")

    @app.get("/v1/devices/{device}")
    async def device(device: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]) -> dict:
        """A device's current Device Registration entry."""
        return _found(queries.device(node.store, device), f"device {device}")

    @app.get("/v1/completeness")
    async def completeness(device: Name, epoch: Annotated[int | None, Query(ge=1, lt=2**32)] = None) -> dict:
        """Counter ranges present for a device epoch and the gaps between them."""
        return _found(queries.completeness(node.store, device, epoch), f"device {device}")

    @app.get("/v1/blocks/{height}")
    async def block(height: Annotated[int, Path(ge=1, le=2**62)]) -> dict:
        """A committed block: header, commit certificate, transactions with their outcomes."""
        if height > node.store.durable_height:
            raise HTTPException(404, f"no committed block at height {height}")
        ((blk, cert),) = await node.store.read_blocks(height, 1)
        return _block_json(node.store, blk, cert)

    @app.get("/v1/status", response_model=NodeStatus)
    async def status() -> dict:
        return {"node_id": cfg.node_id, "chain_id": cfg.chain_id, "n": cfg.n, "endorsement_quorum": quorum_of(cfg),
                "height": node.store.height, "durable_height": node.store.durable_height}  # fmt: skip

    return app


def _canonical_tx(doc: dict) -> bytes:
    try:
        return canonical(doc)
    except (ValueError, TypeError):
        raise ProposalError("MALFORMED_TX", "not plain JSON (NaN or infinity?)") from None


def _found(value: dict | None, what: str) -> dict:
    if value is None:
        raise HTTPException(404, f"{what} not found")
    return value


def _block_json(snapshot, blk, cert) -> dict:
    txs = []
    for data in blk.txs:
        tx_hash = hashlib.sha256(data).hexdigest()
        entry: dict[str, Any] = {"tx_hash": tx_hash}
        try:
            tx = decode_transaction(data)
            status = queries.tx_status(snapshot, tx.proposal.id)
            mine = status["status"] == "committed" and status["tx"] == tx_hash
            reasons = [a["reason"] for a in status.get("attempts") or [] if a["tx"] == tx_hash]
            entry |= {"proposal_id": tx.proposal.id, "valid": mine, "reason": "" if mine else (reasons or [""])[0],
                      "proposal": tx.proposal.body, "response": tx.response}  # fmt: skip
        except ProposalError as exc:
            entry |= {"valid": False, "reason": exc.code}
        txs.append(entry)
    h = blk.header
    return {
        "height": h.height, "round": h.round, "hash": blk.hash.hex(), "prev_hash": h.prev_hash.hex(),
        "merkle_root": h.merkle_root.hex(), "proposer": h.proposer, "timestamp_ms": h.timestamp_ms,
        "cert": {"aux": cert.aux.hex(), "signatures": [[n, s.hex()] for n, s in cert.sigs]},
        "transactions": txs,
    }  # fmt: skip


class ApiServer:
    """uvicorn on the node's own event loop (no second thread touching node state)."""

    def __init__(self, node) -> None:
        host, port = _split(node.config.api_listen)
        self.pool = verify_pool(node.config)
        self.commits = CommitWaiters()
        app = create_app(node, self.pool, self.commits)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task | None = None

    def on_durable(self, tx_ids: tuple[bytes, ...]) -> None:
        """Called by the node when a block is on disk: wake the waiters of its transactions."""
        self.commits.on_durable(tx_ids)

    async def start(self) -> None:
        self.server.capture_signals = contextlib.nullcontext  # the node owns SIGTERM/SIGINT
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        if self.task.done():
            self.task.result()
            raise OSError(f"API server did not start on {self.server.config.host}:{self.server.config.port}")
        log.info("api listening", extra={"address": f"{self.server.config.host}:{self.server.config.port}"})

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
