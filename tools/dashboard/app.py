"""The dashboard's ASGI app (Starlette): the page, its JSON endpoints and the live event stream.

Read-only for everyone; the one write (asking the ledger to verify a record) needs the bearer
token of `--token-file`, and without that file the dashboard refuses every write. All assets are
served from the package (static/), so the page works with no network beyond this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tools.dashboard.fleet import Fleet
from tools.dashboard.health import LedgerHealth
from tools.dashboard.ledger import LedgerQueries
from tools.dashboard.subscriber import BrokerSettings, run_subscriber

STATIC = Path(__file__).parent / "static"
MAX_DEPTH = 100


def reading_record_id(device: str, epoch: int, ctr: int) -> str:
    """The ledger's record id of a reading (ledger_node/contracts/readings.py `Reading.record_id`)."""
    return f"{device}@{epoch}#{ctr}"


@dataclass
class Settings:
    broker: BrokerSettings | None
    ledger_urls: list[str] = field(default_factory=list)
    metrics_urls: list[str] = field(default_factory=list)
    token: str | None = None
    poll_interval: float = 1.0


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def write_refusal(settings: Settings, request: Request) -> JSONResponse | None:
    """None if the request carries the dashboard's token; otherwise the refusal to send."""
    if settings.token is None:
        return error(403, "read-only dashboard: start it with --token-file to allow writes")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), settings.token.encode()):
        return error(401, "this action needs the dashboard's bearer token")
    return None


def create_app(settings: Settings) -> Starlette:
    fleet = Fleet()
    health = LedgerHealth(settings.metrics_urls, fleet, settings.poll_interval)
    ledger = LedgerQueries(settings.ledger_urls, settings.token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(health.run())]
        if settings.broker is not None:
            tasks.append(asyncio.create_task(run_subscriber(settings.broker, fleet)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ledger.close()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def config(request: Request) -> Response:
        return JSONResponse(
            {
                "bands": fleet.snapshot()["bands"],
                "writable": settings.token is not None,
                "ledger_nodes": len(settings.ledger_urls),
                "metrics_nodes": len(settings.metrics_urls),
            }
        )

    async def fleet_view(request: Request) -> Response:
        return JSONResponse(fleet.snapshot())

    async def device_readings(request: Request) -> Response:
        return JSONResponse({"readings": fleet.readings(request.path_params["device"])})

    async def reading(request: Request) -> Response:
        p = request.path_params
        item = fleet.find(p["device"], p["epoch"], p["ctr"])
        record_id = reading_record_id(p["device"], p["epoch"], p["ctr"])
        return JSONResponse(
            {
                "record_id": record_id,
                "local": asdict(item) if item else None,
                "ledger": await ledger.reading(record_id),
            }
        )

    async def ledger_health(request: Request) -> Response:
        return JSONResponse(health.snapshot())

    async def record(request: Request) -> Response:
        return JSONResponse(await ledger.record(request.path_params["ident"]))

    async def lineage(request: Request) -> Response:
        try:
            depth = int(request.query_params.get("depth", "10"))
        except ValueError:
            depth = -1
        if not 1 <= depth <= MAX_DEPTH:
            return error(400, f"depth must be an integer from 1 to {MAX_DEPTH}")
        return JSONResponse(await ledger.lineage(request.path_params["ident"], depth))

    async def completeness(request: Request) -> Response:
        return JSONResponse(await ledger.completeness(request.path_params["device"]))

    async def proof_download(request: Request) -> Response:
        ident = request.path_params["ident"]
        result = await ledger.proof(ident)
        if not result["ok"]:
            return JSONResponse(result["body"], status_code=result["status"])
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in ident)
        headers = {"Content-Disposition": f'attachment; filename="proof-{name}.json"'}
        return JSONResponse(result["body"], headers=headers)

    async def request_verification(request: Request) -> Response:
        refusal = write_refusal(settings, request)
        if refusal is not None:
            return refusal
        return JSONResponse(await ledger.verify(request.path_params["ident"]))

    async def events(request: Request) -> Response:
        queue = fleet.subscribe()

        async def stream() -> AsyncIterator[ServerSentEvent]:
            try:
                while True:
                    kind, data = await queue.get()
                    yield ServerSentEvent(json.dumps(data), event=kind)
            finally:
                fleet.unsubscribe(queue)

        return EventSourceResponse(stream(), ping=15)

    routes = [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/fleet", fleet_view),
        Route("/api/devices/{device}/readings", device_readings),
        Route("/api/readings/{device}/{epoch:int}/{ctr:int}", reading),
        Route("/api/ledger/health", ledger_health),
        Route("/api/ledger/record/{ident:path}", record),
        Route("/api/ledger/lineage/{ident:path}", lineage),
        Route("/api/ledger/completeness/{device}", completeness),
        Route("/api/proof/{ident:path}", proof_download),
        Route("/api/verify/{ident:path}", request_verification, methods=["POST"]),
        Route("/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.fleet, app.state.health = fleet, health
    return app
