"""Prometheus metrics of one gateway (own registry, so several gateways can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.received = Counter("edgeprov_gateway_frames_received", "MQTT reading frames received", registry=r)
        self.refused = Counter("edgeprov_gateway_frames_refused", "frames refused, by reason", ["reason"], registry=r)
        self.duplicates = Counter("edgeprov_gateway_duplicates", "byte-identical frames dropped (G4)", registry=r)
        self.alerts = Counter("edgeprov_gateway_alerts", "alerts (nonce reuse, G4)", ["reason"], registry=r)
        self.relayed = Counter("edgeprov_gateway_relayed", "readings signed and stored in the outbox", registry=r)
        self.submitted = Counter("edgeprov_gateway_submitted", "transactions handed to the ledger", registry=r)
        self.resubmitted = Counter("edgeprov_gateway_resubmitted", "transactions submitted again", registry=r)
        self.submit_failures = Counter("edgeprov_gateway_submit_failures", "failed submit attempts", registry=r)
        self.committed = Counter("edgeprov_gateway_committed", "readings committed valid", registry=r)
        self.invalid = Counter("edgeprov_gateway_invalid", "readings the ledger marked invalid", registry=r)
        self.reconnects = Counter("edgeprov_gateway_mqtt_reconnects", "MQTT connection losses", registry=r)
        self.mqtt_connected = Gauge("edgeprov_gateway_mqtt_connected", "1 while connected to the broker", registry=r)
        self.registry_devices = Gauge(
            "edgeprov_gateway_registry_devices", "served devices by their ledger registry standing", ["standing"],
            registry=r,
        )  # fmt: skip
        self.registry_failures = Counter(
            "edgeprov_gateway_registry_failures", "registry entries the ledger did not answer", registry=r
        )
        self.outbox = Gauge("edgeprov_gateway_outbox", "readings waiting for their commit", registry=r)
        ledger_buckets = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
        self.batch_readings = Histogram(
            "edgeprov_gateway_batch_readings",
            "readings per submitted batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.batch_limit = Gauge(
            "edgeprov_gateway_batch_limit", "the batch cap adapted to the ledger's endorsement time", registry=r
        )
        self.submit_seconds = Histogram(
            "edgeprov_gateway_submit_seconds",
            "a batch's endorsement and submission (ledger API), per batch",
            buckets=ledger_buckets,
            registry=r,
        )
        self.outcome_seconds = Histogram(
            "edgeprov_gateway_outcome_seconds",
            "a batch submitted to its last outcome (ordering and commit), per batch",
            buckets=ledger_buckets,
            registry=r,
        )
        self.relay_seconds = Histogram(
            "edgeprov_gateway_relay_seconds",
            "frame received to durably stored",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=r,
        )
