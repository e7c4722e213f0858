"""Ledger health: polls each node's Prometheus endpoint (ledger_node/metrics.py) and keeps a short history.

Per node and poll: height, round (the view), the round's leader (round-robin, Jolteon §3 as in
ledger_node/bft/replica.py `leader`), committed transactions per second and the mean commit latency
(proposal timestamp to durable local commit) over the last interval. A node that does not answer is
shown as down with the error, and polled again next time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tools.dashboard.fleet import Fleet

log = logging.getLogger("edgeprov.dashboard.health")
HISTORY = 600  # samples per node: ten minutes at the default 1 s interval


@dataclass(frozen=True)
class Counters:
    """The cumulative values one scrape gives; rates come from the difference of two scrapes."""

    at: float
    height: int
    round: int
    committed: float
    latency_sum: float
    latency_count: float


@dataclass
class Sample:
    t_ms: int
    up: bool
    height: int = 0
    round: int = 0
    leader: int = 0
    tx_per_s: float = 0.0
    latency_ms: float | None = None
    error: str = ""


def parse_metrics(text: str, at: float) -> Counters:
    """Read the node's gauges and counters from Prometheus text; a missing metric is an error."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value  # sums the `valid` labels
    try:
        return Counters(
            at,
            int(values["edgeprov_ledger_height"]),
            int(values["edgeprov_ledger_round"]),
            values.get("edgeprov_ledger_committed_txs_total", 0.0),
            values["edgeprov_ledger_commit_latency_seconds_sum"],
            values["edgeprov_ledger_commit_latency_seconds_count"],
        )
    except KeyError as exc:
        raise ValueError(f"not an edgeprov ledger metrics page (no {exc.args[0]})") from None


def sample_between(prev: Counters | None, cur: Counters, n_nodes: int) -> Sample:
    sample = Sample(int(cur.at * 1000), True, cur.height, cur.round, cur.round % n_nodes)
    if prev is not None and cur.at > prev.at:
        sample.tx_per_s = max(0.0, cur.committed - prev.committed) / (cur.at - prev.at)
        commits = cur.latency_count - prev.latency_count
        if commits > 0:
            sample.latency_ms = 1000 * (cur.latency_sum - prev.latency_sum) / commits
    return sample


class LedgerHealth:
    """Polls every node's metrics URL each `interval` seconds; `snapshot()` is what the page draws."""

    def __init__(self, metrics_urls: list[str], fleet: Fleet, interval: float = 1.0) -> None:
        self.urls = metrics_urls
        self.fleet = fleet
        self.interval = interval
        self.history: list[deque[Sample]] = [deque(maxlen=HISTORY) for _ in metrics_urls]
        self._last: list[Counters | None] = [None] * len(metrics_urls)

    async def run(self) -> None:
        if not self.urls:
            return
        async with httpx.AsyncClient(timeout=max(0.5, self.interval)) as client:
            while True:
                started = time.monotonic()
                samples = await asyncio.gather(*(self._poll(client, i) for i in range(len(self.urls))))
                self.fleet.publish("ledger", {"nodes": [asdict(s) for s in samples]})
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _poll(self, client: httpx.AsyncClient, i: int) -> Sample:
        try:
            response = await client.get(self.urls[i])
            response.raise_for_status()
            cur = parse_metrics(response.text, time.time())
            sample = sample_between(self._last[i], cur, len(self.urls))
            self._last[i] = cur
        except (httpx.HTTPError, ValueError) as exc:
            sample = Sample(int(time.time() * 1000), False, error=f"{type(exc).__name__}: {exc}")
        self.history[i].append(sample)
        return sample

    def snapshot(self) -> dict:
        return {
            "nodes": [
                {"node": i, "url": url, "history": [asdict(s) for s in self.history[i]]}
                for i, url in enumerate(self.urls)
            ]
        }
