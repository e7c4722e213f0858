"""The gateway's one dependence on the ledger: submit Data Transfer transactions, learn their commit.

`LedgerLink` is what the relay needs; `ApiLink` implements it over the nodes' HTTP API: the readings
contract runs on f+1 endorsers, so a forged share comes back as an invalid Commit with the ledger's
reason (DESIGN.md §2 steps 5-8). Readings never bypass the contracts (the nodes' raw client port
orders opaque transactions only, for the ordering bench). Anything that breaks the link raises
`LedgerUnavailable`; the relay then retries with backoff. Resubmitting is safe: a
transaction's id is the hash of its bytes, the outbox keeps the bytes, and the ledger keeps one
record per (id, epoch, ctr) (spec §3.6 L1, L3).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import httpx

from gateway.config import LedgerConfig
from ledger_node.api.client import ApiError, LedgerApi, Outcome, _agree
from ledger_node.block import tx_id
from ledger_node.endorsement.proposal import Proposal, Transaction

log = logging.getLogger("edgeprov.gateway.ledger")

NO_QUORUM = "NO_ENDORSEMENT_QUORUM"  # LedgerApi's code when too few nodes answered alike
DUPLICATE_WAIT_MS = 1000  # a record in state becomes durable within a block's commit


class LedgerUnavailable(Exception):
    """No endpoint answered, or the connection broke; the reading stays in the outbox."""


@dataclass(frozen=True)
class Commit:
    height: int | None  # None: refused by the endorsers, never ordered
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


def proposal_of(tx: bytes) -> Proposal:
    """The unsigned readings.submit proposal for a stored Data Transfer transaction.

    Its nonce is the transaction id, so the proposal id is a function of the outbox bytes: a
    resubmission (retry, replay after a crash) names the same proposal, and the ledger commits a
    proposal id at most once (DUPLICATE_TXID) and a reading at most once (DUPLICATE_READING).
    """
    return Proposal(
        {"contract": "readings", "fn": "submit", "args": json.loads(tx), "creator": "", "nonce": tx_id(tx).hex()},
        "",
    )


class ApiLink(LedgerLink):
    """Over the nodes' HTTP API: endorse on every node (f+1 must agree), submit, long-poll the outcome.

    One HTTP call endorses a whole batch on each node and one submits the endorsed batch; a refusal
    by the endorsers (e.g. BAD_SIGNATURE for a forged share) is final and comes back as an invalid
    Commit with the contract's reason code, never retried. "No endorsement quorum" (nodes down or
    disagreeing) is not the ledger's decision: that entry is retried.
    """

    def __init__(self, urls: tuple[str, ...], token: str | None, timeout_s: float = 10.0) -> None:
        if not urls:
            raise ValueError("at least one ledger API URL is needed")
        self.api = LedgerApi([u.rstrip("/") for u in urls], token, timeout_s)
        self.poll_ms = int(min(timeout_s / 2, 5.0) * 1000)  # each status long-poll ends well inside the HTTP timeout
        self._proposals: dict[bytes, str] = {}  # txid -> proposal id, while the relay waits for it
        self._refused: dict[bytes, str] = {}  # txid -> endorsers' reason code
        self._node = 0

    async def _quorum(self) -> None:
        if self.api._quorum is not None:
            return
        # LedgerApi asks only node 0 for the quorum; any live node knows it.
        for node in range(len(self.api.urls)):
            with contextlib.suppress(httpx.TransportError, ApiError):
                self.api._quorum = (await self.api.status(node))["endorsement_quorum"]
                return
        raise LedgerUnavailable("no ledger node answers /v1/status")

    async def _on_some_node(self, call):
        """`call(node)` on the current node, then the others; LedgerUnavailable when none answers."""
        errors = []
        for _ in self.api.urls:
            node = self._node
            try:
                return await call(node)
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status < 500:
                    raise LedgerUnavailable(f"node {node} refused the request: {exc}") from None
                errors.append(f"node {node}: {exc!r}")
                self._node = (node + 1) % len(self.api.urls)
        raise LedgerUnavailable("; ".join(errors))

    async def submit(self, txs: list[bytes]) -> list[bytes]:
        await self._quorum()
        proposals = [proposal_of(tx) for tx in txs]
        collected = await self._endorse(proposals)
        if all(isinstance(c, Outcome) and c.reason == NO_QUORUM for c in collected):
            raise LedgerUnavailable(f"no endorsement quorum: {collected[0].response.get('message', '')}")
        endorsed = [c for c in collected if isinstance(c, Transaction)]
        if endorsed:
            await self._on_some_node(lambda node: self.api.submit(endorsed, node))
        ids = []
        for tx, proposal, result in zip(txs, proposals, collected, strict=True):
            txid = tx_id(tx)
            self._proposals[txid] = proposal.id
            if isinstance(result, Outcome):
                self._refused[txid] = result.reason
            ids.append(txid)
        return ids

    async def _endorse(self, proposals: list[Proposal]) -> list[Transaction | Outcome]:
        """Ask every node; done as soon as f+1 agree on every proposal, so one slow node (catching up
        after a restart) does not hold the batch. Refusals wait for every answer: the most common wins."""
        quorum = await self.api.quorum()
        calls = {asyncio.ensure_future(self.api.endorse(proposals, i)): i for i in range(len(self.api.urls))}
        answers: list[list[dict]] = []
        errors: list[str] = []
        pending = set(calls)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for call in done:
                    try:
                        answers.append(call.result())
                    except (httpx.TransportError, ApiError) as exc:
                        errors.append(f"node {calls[call]}: {exc!r}")
                agreed = [_agree(p, [a[k] for a in answers], quorum, errors) for k, p in enumerate(proposals)]
                if all(isinstance(a, Transaction) for a in agreed):
                    return agreed
            return agreed
        finally:
            for call in pending:
                call.cancel()

    async def committed(self, txid: bytes) -> Commit:
        pid = self._proposals.get(txid)
        if pid is None:
            raise LedgerUnavailable("transaction was not submitted through this link")
        try:
            reason = self._refused.pop(txid, None)
            if reason == NO_QUORUM:
                raise LedgerUnavailable("no endorsement quorum for this reading")
            if reason is not None and reason != "DUPLICATE_READING":
                return Commit(None, False, reason)
            return await self._outcome(pid, refused_as_duplicate=reason is not None)
        finally:
            self._proposals.pop(txid, None)

    async def _outcome(self, pid: str, refused_as_duplicate: bool) -> Commit:
        # a duplicate's record is already in state, so its commit (if this proposal made it) is too
        wait_ms = DUPLICATE_WAIT_MS if refused_as_duplicate else self.poll_ms
        while True:
            status = await self._on_some_node(lambda node: self.api.tx_status(pid, wait_ms, node))
            if status["status"] == "committed":
                return Commit(status["height"], True)
            if status["status"] == "invalid":
                return Commit(status["height"], False, status["reason"])
            if refused_as_duplicate:
                # The endorsers hold a record for this (id, epoch, ctr) that this proposal did not write.
                return Commit(None, False, "DUPLICATE_READING")

    async def close(self) -> None:
        await self.api.close()


def make_link(config: LedgerConfig) -> LedgerLink:
    return ApiLink(config.api_urls, config.token(), config.http_timeout_s)


def transaction_id(tx: bytes) -> bytes:
    return tx_id(tx)
