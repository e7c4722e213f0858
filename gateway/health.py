"""Health endpoint and Prometheus metrics over a minimal HTTP/1.0 server (GET /healthz, GET /metrics).

/healthz answers 200 with JSON while the gateway is connected to its broker, 503 otherwise (the
body says why); the outbox depth and ledger reachability are reported, not judged: a gateway whose
ledger is down is still doing its job, buffering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.registry import REFUSED

if TYPE_CHECKING:
    from gateway.service import Gateway


class HealthServer:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self.server = await asyncio.start_server(self._handle, host or "127.0.0.1", int(port))
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    def health(self) -> tuple[int, dict]:
        gw = self.gateway
        connected = gw.client is not None
        body = {
            "gateway": gw.config.gateway_id,
            "status": "ok" if connected else "mqtt-disconnected",
            "mqtt_connected": connected,
            "ledger_reachable": bool(gw.submitter and gw.submitter.ledger_up),
            "registry_reachable": bool(gw.registry.reachable),
            "devices_refused_by_registry": sum(s in REFUSED for s in gw.registry.standings.values()),
            "outbox": int(gw.metrics.outbox._value.get()),
            "devices": len(gw.devices),
        }
        return (200 if connected else 503), body

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path == "/metrics":
                status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(self.gateway.metrics.registry)
            elif path == "/healthz":
                status, doc = self.health()
                ctype, body = "application/json", json.dumps(doc).encode()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            head = f"HTTP/1.0 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: {ctype}\r\n"
            writer.write(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
