"""Typed async client of the node API (httpx): queries, and endorse-and-submit for writers.

`endorse_and_submit` is the client side of execute-order-validate (DESIGN.md §2 steps 5–8): ask
every node to endorse, keep the endorsements that agree on one read/write set and response,
submit once `quorum` distinct nodes agree (f + 1 unless the node says otherwise), then wait for
the commit and report "committed", or "invalid" / "rejected" with the reason code.

`submit_readings` is the fast path for Data Transfer readings: it packs them into
readings.submit_batch proposals (proposal.py; as many as fit a transaction), asks f + 1 nodes to
endorse them all in one request (the others only for batches those could not agree on), submits,
and answers one Outcome per reading under the reading's own id (`proposal.item_id`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger_node.api import PROOF_PATH
from ledger_node.block import MAX_TX_BYTES
from ledger_node.endorsement.proposal import (
    MAX_ITEMS,
    MAX_PROPOSAL_BYTES,
    PROPOSAL_TAG,
    Proposal,
    Transaction,
    item_id,
    make_batch_proposal,
    make_proposal,
    result_digest,
)
from ledger_node.state import canonical

# An endorsed reading is about 2.7x its args (the record it writes repeats them, plus read set and
# ids): args of up to a quarter of a transaction keep the endorsed batch inside MAX_TX_BYTES.
BATCH_ARGS_BYTES = MAX_TX_BYTES // 4
NO_QUORUM = "NO_ENDORSEMENT_QUORUM"


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code and `detail` the node's message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


@dataclass
class Outcome:
    proposal_id: str
    status: str  # committed | invalid | rejected | timeout | submitted (submit_readings with wait_ms=0)
    reason: str = ""
    response: dict = field(default_factory=dict)
    height: int | None = None
    index: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "committed"


class LedgerApi:
    def __init__(self, urls: list[str], token: str | None = None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.urls = urls
        self.http = httpx.AsyncClient(headers=headers, timeout=timeout_s)
        self._quorum: int | None = None
        self._rotation = 0

    async def __aenter__(self) -> LedgerApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, url: str, **kwargs) -> object:
        reply = await self.http.request(method, url, **kwargs)
        if reply.status_code >= 400:
            try:
                detail = reply.json().get("detail", reply.text)
            except ValueError:
                detail = reply.text
            raise ApiError(reply.status_code, str(detail))
        return reply.json()

    async def get(self, path: str, node: int = 0, **params) -> object:
        return await self._call(
            "GET", self.urls[node] + path, params={k: v for k, v in params.items() if v is not None}
        )

    # ------------------------------------------------------------------ queries

    async def status(self, node: int = 0) -> dict:
        return await self.get("/v1/status", node)

    async def record(self, record_id: str, node: int = 0) -> dict:
        return await self.get("/v1/record", node, id=record_id)

    async def verifications(self, record_id: str, node: int = 0) -> list[dict]:
        return await self.get("/v1/verifications", node, record=record_id)

    async def data_point(self, dp: str, node: int = 0) -> dict:
        return await self.get(f"/v1/datapoints/{dp}", node)

    async def history(self, dp: str, trace: str = "main", limit: int = 100, after: int = -1, node: int = 0) -> dict:
        return await self.get("/v1/history", node, dp=dp, trace=trace, limit=limit, after=after)

    async def lineage(self, record_id: str, direction: str = "backward", depth: int = 10, limit: int = 1000,
                      node: int = 0) -> dict:  # fmt: skip
        return await self.get("/v1/lineage", node, record=record_id, direction=direction, depth=depth, limit=limit)

    async def device(self, device: str, node: int = 0) -> dict:
        return await self.get(f"/v1/devices/{device}", node)

    async def completeness(self, device: str, epoch: int | None = None, node: int = 0) -> dict:
        return await self.get("/v1/completeness", node, device=device, epoch=epoch)

    async def block(self, height: int, node: int = 0) -> dict:
        return await self.get(f"/v1/blocks/{height}", node)

    async def tx_status(self, proposal_id: str, wait_ms: int = 0, node: int = 0) -> dict:
        return await self.get(f"/v1/tx/{proposal_id}", node, wait_ms=wait_ms)

    async def tx_wait(self, proposal_ids: list[str], wait_ms: int = 0, node: int = 0) -> list[dict]:
        """Many statuses in one request, each waited for up to wait_ms (commit-driven, no polling)."""
        body = {"proposal_ids": proposal_ids, "wait_ms": wait_ms}
        return (await self._call("POST", self.urls[node] + "/v1/tx/wait", json=body))["statuses"]

    async def proof(self, record_id: str, node: int = 0) -> dict:
        """One node's proof bundle of a reading, with that node's result attestations only."""
        return await self.get(PROOF_PATH, node, record=record_id)

    async def proof_bundle(self, record_id: str) -> dict:
        """A bundle `edgeprov verify` accepts: fetched from every node, the bundles that agree with the
        most others merged (proof.merge_attestations) once f+1 nodes attest the same result."""
        from ledger_node.proof import merge_attestations  # crypto imports only for auditors

        answers = await asyncio.gather(*(self.proof(record_id, i) for i in range(len(self.urls))),
                                       return_exceptions=True)  # fmt: skip
        bundles = [a for a in answers if isinstance(a, dict)]
        groups: dict[str, list[dict]] = defaultdict(list)
        for bundle in bundles:
            groups[json.dumps([bundle["record"]["tx"], bundle["record"]["block_hash"], bundle["record"]["result"]
                               ["valid"], bundle["registration"]["tx"]])].append(bundle)  # fmt: skip
        best = max(groups.values(), key=len, default=[])
        needed = (len(self.urls) - 1) // 3 + 1
        if len(best) < needed:
            errors = [a for a in answers if isinstance(a, BaseException)]
            if errors and isinstance(errors[0], ApiError) and not best:
                raise errors[0]
            raise ApiError(502, f"{len(best)} nodes agree on a bundle for {record_id}; {needed} needed")
        return merge_attestations(best)

    # ------------------------------------------------------------------- writes

    async def quorum(self) -> int:
        if self._quorum is None:
            self._quorum = (await self.status())["endorsement_quorum"]
        return self._quorum

    async def endorse(self, proposals: list[Proposal], node: int) -> list[dict]:
        body = {"proposals": [p.to_json() for p in proposals]}
        return (await self._call("POST", self.urls[node] + "/v1/endorse", json=body))["results"]

    async def submit(self, txs: list[Transaction], node: int = 0) -> list[dict]:
        body = b'{"transactions":[' + b",".join(t.encode() for t in txs) + b"]}"  # already canonical JSON
        headers = {"Content-Type": "application/json"}
        return (await self._call("POST", self.urls[node] + "/v1/submit", content=body, headers=headers))["accepted"]

    async def _answers(self, proposals: list[Proposal], asked: list[int]) -> tuple[list[list[dict]], list[str]]:
        """Per proposal, the endorsement results of the nodes in `asked` that answered; and the errors."""
        answers = await asyncio.gather(*(self.endorse(proposals, i) for i in asked), return_exceptions=True)
        errors = [f"node {i}: {a!r}" for i, a in zip(asked, answers, strict=True) if isinstance(a, BaseException)]
        return [[a[k] for a in answers if isinstance(a, list)] for k in range(len(proposals))], errors

    async def collect(
        self, proposals: list[Proposal], endorsers: list[int] | None = None
    ) -> list[Transaction | Outcome]:
        """Endorse on `endorsers` (every node by default); per proposal an endorsed transaction, or the
        refusal as an Outcome."""
        quorum = await self.quorum()
        asked = list(range(len(self.urls))) if endorsers is None else endorsers
        results, errors = await self._answers(proposals, asked)
        return [_agree(p, r, quorum, errors) for p, r in zip(proposals, results, strict=True)]

    async def collect_quorum(self, proposals: list[Proposal]) -> list[Transaction | Outcome]:
        """Endorse on f + 1 nodes (rotating), then on the others only the proposals those did not agree on."""
        quorum, n = await self.quorum(), len(self.urls)
        first, self._rotation = self._rotation, (self._rotation + 1) % n
        asked = [(first + k) % n for k in range(quorum)]
        results, errors = await self._answers(proposals, asked)
        out = [_agree(p, r, quorum, errors) for p, r in zip(proposals, results, strict=True)]
        retry = [k for k, o in enumerate(out) if isinstance(o, Outcome) and o.reason == NO_QUORUM]
        others = [i for i in range(n) if i not in asked]
        if retry and others:
            more, more_errors = await self._answers([proposals[k] for k in retry], others)
            for k, extra in zip(retry, more, strict=True):
                out[k] = _agree(proposals[k], results[k] + extra, quorum, errors + more_errors)
        return out

    async def submit_readings(self, txs: list[dict], nonces: list[str] | None = None, wait_ms: int = 20_000,
                              node: int | None = None) -> list[Outcome]:  # fmt: skip
        """Readings (readings.submit args), one Outcome each in the same order, under the id each would
        have as a proposal of its own with that nonce (`item_id`; default nonce: SHA-256 of the
        reading's canonical JSON, so a resubmission names the same reading). committed, invalid with
        the ledger's reason (including the endorsers' refusal codes, e.g. BAD_SIGNATURE), rejected
        (NO_ENDORSEMENT_QUORUM: nothing was ordered; safe to retry) or timeout; with wait_ms=0 the
        ordered ones are "submitted" (follow them with tx_status(proposal_id))."""
        if nonces is None:
            nonces = [hashlib.sha256(canonical(t)).hexdigest() for t in txs]
        items = list(zip(txs, nonces, strict=True))
        batches = await self._endorse_readings(items)
        endorsed = [result for _, result in batches if isinstance(result, Transaction)]
        if node is None:
            node = (self._rotation - 1) % len(self.urls)  # one of the endorsers just asked
        if endorsed:
            await self.submit(endorsed, node)
        ids = [item_id(args, nonce) for args, nonce in items]
        waited = [ids[k] for chunk, result in batches if isinstance(result, Transaction) for k in chunk]
        statuses = await self._statuses(waited, wait_ms, node)
        out: dict[int, Outcome] = {}
        for chunk, result in batches:
            for j, k in enumerate(chunk):
                if isinstance(result, Outcome):
                    out[k] = Outcome(ids[k], "rejected", result.reason, result.response)
                else:
                    response = {key: v for key, v in result.response["items"][j].items() if key != "id"}
                    out[k] = _status_outcome(ids[k], statuses[ids[k]], response)
        return [out[k] for k in range(len(items))]

    async def _endorse_readings(self, items: list[tuple[dict, str]]) -> list[tuple[list[int], Transaction | Outcome]]:
        """Reading batches of `items` (by index) with their endorsed transaction or refusal. A batch
        that turns out too large (its proposal or its endorsed transaction: readings whose records are
        unusually large for their size) is split in two and endorsed again; a lone reading that still
        does not fit is rejected with TX_TOO_LARGE."""
        todo = pack_readings(list(range(len(items))), [args for args, _ in items])
        done = []
        while todo:
            proposals = [make_batch_proposal([items[k] for k in c]) for c in todo]
            collected = await self.collect_quorum(proposals)
            retry = []
            for chunk, proposal, result in zip(todo, proposals, collected, strict=True):
                if _too_large(proposal, result):
                    if len(chunk) > 1:
                        retry += [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
                        continue
                    result = Outcome(proposal.id, "rejected", "TX_TOO_LARGE",
                                     {"message": f"the endorsed reading exceeds {MAX_TX_BYTES} bytes"})  # fmt: skip
                done.append((chunk, result))
            todo = retry
        return done

    async def _statuses(self, proposal_ids: list[str], wait_ms: int, node: int) -> dict[str, dict]:
        if not wait_ms or not proposal_ids:
            return {p: {"status": "submitted", "reason": "", "height": None, "index": None} for p in proposal_ids}
        return dict(zip(proposal_ids, await self.tx_wait(proposal_ids, wait_ms, node), strict=True))

    async def endorse_and_submit_many(self, proposals: list[Proposal], wait_ms: int = 20_000,
                                      endorsers: list[int] | None = None, node: int = 0) -> list[Outcome]:  # fmt: skip
        """Endorse (on `endorsers`, default every node), submit to `node` and wait for the commits."""
        collected = await self.collect(proposals, endorsers)
        txs = [t for t in collected if isinstance(t, Transaction)]
        if txs:
            await self.submit(txs, node)
        done = iter(await self.outcomes(txs, wait_ms, node))
        return [next(done) if isinstance(t, Transaction) else t for t in collected]

    async def outcomes(self, txs: list[Transaction], wait_ms: int = 20_000, node: int = 0) -> list[Outcome]:
        """Wait (one request) for submitted transactions to commit; one Outcome each."""
        if not txs:
            return []
        statuses = await self.tx_wait([t.proposal.id for t in txs], wait_ms, node)
        return [_outcome(t, s) for t, s in zip(txs, statuses, strict=True)]

    async def endorse_and_submit(self, proposal: Proposal, wait_ms: int = 20_000) -> Outcome:
        return (await self.endorse_and_submit_many([proposal], wait_ms))[0]

    async def call(self, contract: str, fn: str, args: dict, key: Ed25519PrivateKey | None = None) -> Outcome:
        """Build, sign (when a key is given), endorse, submit and wait for one contract call."""
        return await self.endorse_and_submit(make_proposal(contract, fn, args, key))

    @classmethod
    def from_cluster(cls, directory: Path, client: str = "tools", timeout_s: float = 60.0) -> LedgerApi:
        """The API of a cluster written by `edgeprov ledger init-cluster --aa-dir`, with `client`'s
        writer token (tokens/<client>.token); node 0 first."""
        from ledger_node.config import api_urls, client_token

        return cls(api_urls(directory), client_token(directory, client), timeout_s)


def _outcome(tx: Transaction, status: dict) -> Outcome:
    return _status_outcome(tx.proposal.id, status, tx.response)


def _too_large(proposal: Proposal, result: Transaction | Outcome) -> bool:
    if isinstance(result, Transaction):
        return len(result.encode()) > MAX_TX_BYTES
    return len(PROPOSAL_TAG + canonical(proposal.body)) > MAX_PROPOSAL_BYTES  # refused as too large


def _status_outcome(pid: str, status: dict, response: dict) -> Outcome:
    if status["status"] == "unknown":
        return Outcome(pid, "timeout", "not committed within the wait", response)
    return Outcome(pid, status["status"], status["reason"], response, status["height"], status["index"])


def pack_readings(keys: list, readings: list[dict]) -> list[list]:
    """`keys` grouped in order so each group's readings (`readings[i]` for `keys[i]`) fit
    BATCH_ARGS_BYTES (at least one per group), at most MAX_ITEMS a group."""
    groups: list[list] = []
    size = 0
    for key, reading in zip(keys, readings, strict=True):
        cost = len(canonical(reading)) + 80  # and the item's nonce and framing
        if not groups or size + cost > BATCH_ARGS_BYTES or len(groups[-1]) >= MAX_ITEMS:
            groups.append([])
            size = 0
        groups[-1].append(key)
        size += cost
    return groups


def _agree(proposal: Proposal, results: list[dict], quorum: int, errors: list[str]) -> Transaction | Outcome:
    """Group endorsements by the digest they sign; a refusal shared by a quorum is the answer."""
    groups: dict[bytes, list[dict]] = defaultdict(list)
    refusals: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        if r.get("ok"):
            groups[result_digest(r["rwset"], r["response"])].append(r)
        else:
            refusals[r.get("code", "REFUSED")].append(r)
    for group in groups.values():
        nodes = {r["endorsement"][0] for r in group}
        if len(nodes) >= quorum:
            first = group[0]
            sigs = tuple(sorted({tuple(r["endorsement"]) for r in group}))
            return Transaction(proposal, first["rwset"], first["response"], sigs)
    if refusals:
        code, rs = max(refusals.items(), key=lambda item: len(item[1]))
        return Outcome(proposal.id, "rejected", code, {"message": rs[0].get("message", "")})
    message = f"{len(results)} answers; unreachable: {'; '.join(errors) or 'none'}"
    return Outcome(proposal.id, "rejected", NO_QUORUM, {"message": message})
