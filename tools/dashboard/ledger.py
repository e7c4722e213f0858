"""Read-through queries to the ledger's HTTP API (issue 4) with its typed client, ledger_node.api.client.

The dashboard keeps no ledger data of its own: each page asks a node, and fails over to the next
node of `--ledger` when one is unreachable or answers 5xx (every honest node answers the same
committed state). An answer is returned as data, `{"ok", "status", "body"}`, so a record the
ledger does not hold is something the page shows, not an error. The one write, a Provenance
Verification request, carries the dashboard's bearer token; the token is never logged or echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx

from ledger_node.api.client import ApiError, LedgerApi

log = logging.getLogger("edgeprov.dashboard.ledger")
Query = Callable[[LedgerApi, int], Awaitable[object]]
DIRECTIONS = ("backward", "forward")
# The proof-bundle endpoint of issue 4 (build_proof_bundle in ledger_node/proof.py, served by a node).
PROOF_PATH = "/v1/proof"


def answer(ok: bool, status: int, body: object) -> dict:
    return {"ok": ok, "status": status, "body": body}


class LedgerQueries:
    def __init__(self, urls: list[str], token: str | None = None) -> None:
        urls = [u.rstrip("/") for u in urls]
        self.api = LedgerApi(urls, timeout_s=10.0)
        self.writer = LedgerApi(urls, token, timeout_s=30.0) if token else None

    async def close(self) -> None:
        await self.api.close()
        if self.writer is not None:
            await self.writer.close()

    async def ask(self, query: Query, api: LedgerApi | None = None) -> dict:
        """The first node's answer (a 4xx is an answer); unreachable nodes and 5xx move on to the next."""
        api = api or self.api
        errors = []
        for node in range(len(api.urls)):
            try:
                return answer(True, 200, await query(api, node))
            except ApiError as exc:
                if exc.status < 500:
                    return answer(False, exc.status, {"error": exc.detail})
                errors.append(f"node {node}: HTTP {exc.status}")
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"node {node}: {type(exc).__name__}")
        message = "; ".join(errors) or "no ledger URL configured (--ledger)"
        return answer(False, 502, {"error": f"no ledger node answered: {message}"})

    async def record(self, record_id: str) -> dict:
        return await self.ask(lambda api, node: api.record(record_id, node=node))

    async def reading(self, record_id: str) -> dict:
        """A record with where it was committed (its proposal's block height and index) and its verifications."""
        found = await self.record(record_id)
        if not found["ok"]:
            return found
        doc = found["body"]
        status = await self.ask(lambda api, node: api.tx_status(doc["proposal"], node=node))
        checks = await self.ask(lambda api, node: api.verifications(record_id, node=node))
        doc["commit"] = status["body"] if status["ok"] else None
        doc["verifications"] = checks["body"] if checks["ok"] else []
        return found

    async def lineage(self, record_id: str, depth: int) -> dict:
        """Both directions merged: where the record came from (inputs) and what was derived from it."""
        parts = [
            await self.ask(lambda api, node, d=d: api.lineage(record_id, direction=d, depth=depth, node=node))
            for d in DIRECTIONS
        ]
        failed = next((p for p in parts if not p["ok"]), None)
        if failed is not None:
            return failed
        nodes = {**parts[0]["body"]["nodes"], **parts[1]["body"]["nodes"]}
        edges = sorted({tuple(e) for p in parts for e in p["body"]["edges"]})
        truncated = any(p["body"]["truncated"] for p in parts)
        return answer(True, 200, {"root": record_id, "nodes": nodes, "edges": edges, "truncated": truncated})

    async def completeness(self, device: str) -> dict:
        return await self.ask(lambda api, node: api.completeness(device, node=node))

    async def proof(self, record_id: str) -> dict:
        return await self.ask(lambda api, node: api.get(PROOF_PATH, node, record=record_id))

    async def verify(self, record_id: str) -> dict:
        """Provenance Verification contract (issue 4): needs the token; None writer means read-only."""
        if self.writer is None:
            return answer(False, 403, {"error": "read-only dashboard"})
        if not self.writer.urls:
            return answer(False, 502, {"error": "no ledger URL configured (--ledger)"})
        try:
            outcome = await self.writer.call("verification", "verify", {"record": record_id})
        except (ApiError, httpx.HTTPError) as exc:
            return answer(False, 502, {"error": f"the ledger refused or did not answer: {type(exc).__name__}"})
        body = {"status": outcome.status, "reason": outcome.reason, "result": outcome.response}
        return answer(outcome.ok, 200 if outcome.ok else 409, body)
