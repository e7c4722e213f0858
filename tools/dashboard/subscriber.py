"""The dashboard's MQTT subscriber: its own read-only broker account, every device topic, into the Fleet.

Topics and frames are edgeprov.wire's (DESIGN.md §5): `edgeprov/v1/<gateway>/<device>/reading`
(QoS 1), `.../ack` and the retained `.../status` (the device's last will). A frame that does not
decode is counted and dropped; the reason is logged, the payload never is.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from edgeprov.wire import TOPIC_ROOT, Ack, Reading, WireError, parse_topic
from tools.dashboard.fleet import Fleet

log = logging.getLogger("edgeprov.dashboard.mqtt")
SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/+"
RETRY_S = (0.5, 1, 2, 5)


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None

    def client(self) -> aiomqtt.Client:
        tls = ssl.create_default_context(cafile=str(self.tls_ca)) if self.tls_ca else None
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=f"edgeprov-dashboard-{uuid.uuid4().hex[:8]}",
            tls_context=tls,
            keepalive=15,
        )


def handle(fleet: Fleet, topic: str, payload: bytes) -> None:
    """Route one message into the fleet model; malformed topics or frames are counted, not raised."""
    try:
        gateway, device, kind = parse_topic(topic)
        if kind == "reading":
            fleet.on_reading(gateway, device, Reading.decode(payload))
        elif kind == "ack":
            fleet.on_ack(gateway, device, Ack.decode(payload))
        elif kind == "status":
            fleet.on_status(gateway, device, payload)
    except WireError as exc:
        fleet.on_malformed()
        log.warning("dropped a message on %s: %s", topic, exc)


async def run_subscriber(settings: BrokerSettings, fleet: Fleet) -> None:
    """Subscribe until cancelled; reconnect with backoff, since the broker may start after the dashboard."""
    attempt = 0
    while True:
        try:
            async with settings.client() as client:
                await client.subscribe(SUBSCRIPTION, qos=1)
                attempt = 0
                fleet.set_broker(True)
                log.info("subscribed to %s on %s:%d", SUBSCRIPTION, settings.host, settings.port)
                async for message in client.messages:
                    handle(fleet, message.topic.value, bytes(message.payload))
        except aiomqtt.MqttError as exc:
            fleet.set_broker(False, str(exc))
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            attempt += 1
            log.warning("broker %s:%d: %s; retrying in %s s", settings.host, settings.port, exc, delay)
            await asyncio.sleep(delay)
