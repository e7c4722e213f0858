"""The gateway's one dependence on the ledger: submit Data Transfer transactions, learn their outcomes.

`LedgerLink` is what the relay needs; `ApiLink` implements it over the nodes' HTTP API with
`LedgerApi.submit_readings`: a batch of readings is packed into reading-batch transactions
(ledger_node/contracts/README.md "Batched readings"), endorsed by f+1 nodes in one request each,
submitted in one request, and its outcomes are waited for in one `POST /v1/tx/wait` (DESIGN.md §2
steps 5-8). A reading the endorsers refuse (BAD_SIGNATURE for a forged share, ...) stays in its batch
with their reason, so it never sinks the honest ones. Readings never bypass the contracts (the
nodes' raw client port orders opaque transactions only, for the ordering bench). `ApiLink.registration`
also reads a device's Device Registration entry, for the registry follower (registry.py, rule G1).

Anything that breaks the link, or no endorsement quorum, raises `LedgerUnavailable`; the relay then
retries with backoff. Resubmitting is safe: a reading's id is the id of the single-reading proposal
whose nonce is the transaction id (the hash of the bytes submitted: the outbox bytes, or their
compact-signature form, compact.py), and the ledger keeps one record per (id, epoch, ctr) and one
status per id (spec §3.6 L1, L3).
"""

from __future__ import annotations

import contextlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import httpx

from gateway.config import LedgerConfig
from ledger_node.api.client import NO_QUORUM, ApiError, LedgerApi, Outcome
from ledger_node.block import tx_id
from ledger_node.endorsement.proposal import item_id

log = logging.getLogger("edgeprov.gateway.ledger")

DUPLICATE = "DUPLICATE_READING"


class LedgerUnavailable(Exception):
    """No endpoint answered, the connection broke, or no endorsement quorum; the reading stays in the outbox."""


@dataclass(frozen=True)
class Commit:
    height: int | None  # None: refused by the endorsers, so no record of this reading is on the ledger
    valid: bool
    reason: str = ""


class LedgerLink(ABC):
    @abstractmethod
    async def submit(self, txs: list[bytes], wait_s: float = 0.0) -> list[Commit | None]:
        """Hand transactions to the ledger; per transaction its outcome if decided within wait_s, else
        None (ordered, outcome pending: follow it with `outcomes`). Raises LedgerUnavailable."""

    @abstractmethod
    async def outcomes(self, txids: list[bytes], wait_s: float) -> list[Commit | None]:
        """The outcomes of submitted transactions, waiting up to wait_s for them all; None: not decided
        yet. Raises LedgerUnavailable."""

    @abstractmethod
    async def recorded(self, txs: list[bytes]) -> list[Commit | None]:
        """Per transaction, its reading's commit if the ledger holds one under that transaction's id now
        (it need not have been submitted through this link), else None. Raises LedgerUnavailable."""

    @abstractmethod
    async def close(self) -> None: ...

    async def registration(self, device: str) -> dict | None:
        """The device's current Device Registration entry, None if the ledger has none (registry.py).
        Raises LedgerUnavailable, as here: a link that cannot read the registry leaves G1 to the ledger."""
        raise LedgerUnavailable(f"{type(self).__name__} does not read the ledger's registry")

    async def committed(self, txid: bytes) -> Commit:
        """Wait until `txid` is committed (valid or marked invalid). Raises LedgerUnavailable."""
        while True:
            found = (await self.outcomes([txid], 5.0))[0]
            if found is not None:
                return found


class ApiLink(LedgerLink):
    """Over the nodes' HTTP API: `submit_readings` (f+1 endorsers, one submit, one batched wait) on
    one node, the next one when it stops answering.

    An endorsers' refusal other than DUPLICATE_READING is final and comes back at once as an invalid
    Commit with their reason code. DUPLICATE_READING means the ledger already holds that (id, epoch,
    ctr): if this reading's id is committed (an earlier submission of the same bytes), that commit is
    the answer; otherwise it is a rejection.
    """

    def __init__(self, urls: tuple[str, ...], token: str | None, timeout_s: float = 10.0) -> None:
        if not urls:
            raise ValueError("at least one ledger API URL is needed")
        self.api = LedgerApi([u.rstrip("/") for u in urls], token, timeout_s)
        self.max_wait_s = min(timeout_s / 2, 5.0)  # each wait ends well inside the HTTP timeout
        self._ids: dict[bytes, str] = {}  # txid -> reading id, while the relay waits for it
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

    async def _on_node(self, call):
        """`call(node)` on the current node; on a failure the next call goes to the next node."""
        node = self._node
        try:
            return await call(node)
        except (httpx.TransportError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status < 500:
                raise LedgerUnavailable(f"node {node} refused the request: {exc}") from None
            self._node = (node + 1) % len(self.api.urls)
            raise LedgerUnavailable(f"node {node}: {exc!r}") from None

    def _wait_ms(self, wait_s: float) -> int:
        return int(min(wait_s, self.max_wait_s) * 1000)

    async def submit(self, txs: list[bytes], wait_s: float = 0.0) -> list[Commit | None]:
        await self._quorum()
        args = [json.loads(tx) for tx in txs]
        nonces = [tx_id(tx).hex() for tx in txs]
        wait_ms = self._wait_ms(wait_s)
        found = await self._on_node(lambda node: self.api.submit_readings(args, nonces, wait_ms, node))
        if any(o.status == "rejected" and o.reason == NO_QUORUM for o in found):
            # not the ledger's decision (nodes down or disagreeing): the whole batch is tried again
            raise LedgerUnavailable(f"no endorsement quorum: {found[0].response.get('message', '')}")
        out = []
        for tx, outcome in zip(txs, found, strict=True):
            self._ids[tx_id(tx)] = outcome.proposal_id
            out.append(self._decided(tx_id(tx), outcome))
        return out

    def _decided(self, txid: bytes, outcome: Outcome) -> Commit | None:
        refusal = outcome.response.get("code") or (outcome.reason if outcome.status == "rejected" else None)
        if refusal and refusal != DUPLICATE:
            commit = Commit(None, False, refusal)  # the endorsers' answer is final, and ordered or not, no record
        elif outcome.status == "committed":
            commit = Commit(outcome.height, True)
        elif outcome.status == "invalid":
            commit = Commit(None if refusal else outcome.height, False, refusal or outcome.reason)
        else:
            return None
        self._ids.pop(txid, None)
        return commit

    async def outcomes(self, txids: list[bytes], wait_s: float) -> list[Commit | None]:
        missing = [t for t in txids if t not in self._ids]
        if missing:
            raise LedgerUnavailable(f"{len(missing)} transactions were not submitted through this link")
        pids = [self._ids[t] for t in txids]
        wait_ms = self._wait_ms(wait_s)
        statuses = await self._on_node(lambda node: self.api.tx_wait(pids, wait_ms, node))
        out = []
        for txid, status in zip(txids, statuses, strict=True):
            refused = status["status"] == "invalid" and status["reason"] == DUPLICATE
            outcome = Outcome(status["proposal_id"], status["status"], status.get("reason", ""),
                              {"code": DUPLICATE} if refused else {}, status.get("height"))  # fmt: skip
            out.append(self._decided(txid, outcome))
        return out

    async def recorded(self, txs: list[bytes]) -> list[Commit | None]:
        ids = [item_id(json.loads(tx), tx_id(tx).hex()) for tx in txs]
        statuses = await self._on_node(lambda node: self.api.tx_wait(ids, 0, node))
        return [Commit(s.get("height"), True) if s["status"] == "committed" else None for s in statuses]

    async def registration(self, device: str) -> dict | None:
        """On the current node; after a failure the next call goes to the next node."""

        async def entry(node: int) -> dict | None:
            try:
                return await self.api.device(device, node)
            except ApiError as exc:
                if exc.status == 404:
                    return None
                raise

        return await self._on_node(entry)

    async def close(self) -> None:
        await self.api.close()


def make_link(config: LedgerConfig) -> LedgerLink:
    return ApiLink(config.api_urls, config.token(), config.http_timeout_s)


def transaction_id(tx: bytes) -> bytes:
    return tx_id(tx)
