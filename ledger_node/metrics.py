"""Prometheus metrics of one node (its own registry, so tests can run several nodes in a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("edgeprov_ledger_height", "Height of the last durably stored block", registry=r)
        self.round = Gauge("edgeprov_ledger_round", "Current consensus round (view)", registry=r)
        self.mempool = Gauge("edgeprov_ledger_mempool_txs", "Transactions waiting to be proposed", registry=r)
        self.inbox = Gauge("edgeprov_ledger_inbox_queue", "Events waiting for the replica", registry=r)
        self.peer_queue = Gauge("edgeprov_ledger_peer_queue", "Frames queued to a peer", ["peer"], registry=r)
        self.committed_txs = Counter("edgeprov_ledger_committed_txs", "Transactions committed", ["valid"], registry=r)
        self.drops = Counter("edgeprov_ledger_dropped", "Frames and messages dropped", ["reason"], registry=r)
        self.commit_latency = Histogram(
            "edgeprov_ledger_commit_latency_seconds",
            "Proposal timestamp to durable local commit",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
