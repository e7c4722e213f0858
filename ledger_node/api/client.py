"""Typed async client of the node API (httpx): queries, and endorse-and-submit for writers.

`endorse_and_submit` is the client side of execute-order-validate (DESIGN.md §2 steps 5–8): ask
every node to endorse, keep the endorsements that agree on one read/write set and response,
submit once `quorum` distinct nodes agree (f + 1 unless the node says otherwise), then wait for
the commit and report "committed", or "invalid" / "rejected" with the reason code.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger_node.endorsement.proposal import Proposal, Transaction, make_proposal, result_digest


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code and `detail` the node's message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


@dataclass
class Outcome:
    proposal_id: str
    status: str  # committed | invalid | rejected | timeout
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

    # ------------------------------------------------------------------- writes

    async def quorum(self) -> int:
        if self._quorum is None:
            self._quorum = (await self.status())["endorsement_quorum"]
        return self._quorum

    async def endorse(self, proposals: list[Proposal], node: int) -> list[dict]:
        body = {"proposals": [p.to_json() for p in proposals]}
        return (await self._call("POST", self.urls[node] + "/v1/endorse", json=body))["results"]

    async def submit(self, txs: list[Transaction], node: int = 0) -> list[dict]:
        body = {"transactions": [_tx_json(t) for t in txs]}
        return (await self._call("POST", self.urls[node] + "/v1/submit", json=body))["accepted"]

    async def collect(self, proposals: list[Proposal]) -> list[Transaction | Outcome]:
        """Endorse on every node; per proposal an endorsed transaction, or the refusal as an Outcome."""
        quorum = await self.quorum()
        answers = await asyncio.gather(*(self.endorse(proposals, i) for i in range(len(self.urls))),
                                       return_exceptions=True)  # fmt: skip
        errors = [f"node {i}: {a!r}" for i, a in enumerate(answers) if isinstance(a, BaseException)]
        out: list[Transaction | Outcome] = []
        for k, proposal in enumerate(proposals):
            results = [a[k] for a in answers if isinstance(a, list)]
            out.append(_agree(proposal, results, quorum, errors))
        return out

    async def endorse_and_submit_many(self, proposals: list[Proposal], wait_ms: int = 20_000) -> list[Outcome]:
        collected = await self.collect(proposals)
        txs = [t for t in collected if isinstance(t, Transaction)]
        if txs:
            await self.submit(txs)
        waits = [self._wait(t.proposal.id, t.response, wait_ms) for t in txs]
        done = iter(await asyncio.gather(*waits))
        return [next(done) if isinstance(t, Transaction) else t for t in collected]

    async def endorse_and_submit(self, proposal: Proposal, wait_ms: int = 20_000) -> Outcome:
        return (await self.endorse_and_submit_many([proposal], wait_ms))[0]

    async def call(self, contract: str, fn: str, args: dict, key: Ed25519PrivateKey | None = None) -> Outcome:
        """Build, sign (when a key is given), endorse, submit and wait for one contract call."""
        return await self.endorse_and_submit(make_proposal(contract, fn, args, key))

    async def _wait(self, pid: str, response: dict, wait_ms: int) -> Outcome:
        status = await self.tx_status(pid, wait_ms)
        if status["status"] == "unknown":
            return Outcome(pid, "timeout", "not committed within the wait", response)
        return Outcome(pid, status["status"], status["reason"], response, status["height"], status["index"])


def _tx_json(tx: Transaction) -> dict:
    return json.loads(tx.encode())


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
    return Outcome(proposal.id, "rejected", "NO_ENDORSEMENT_QUORUM", {"message": message})
