"""Schemathesis fuzzes a live node's API from its own OpenAPI schema: no 5xx, and the nodes agree.

"Nothing partially written": after the fuzzing every node holds the same chain and state, and
every stored transaction outcome is complete (no write without a status key).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from ledger_node.api.server import MAX_WAIT_MS

# A generated wait_ms may be the maximum, and the first endorsement starts the node's worker
# process: the client waits well beyond both, so only a real hang fails the request.
CLIENT_TIMEOUT_S = MAX_WAIT_MS / 1000 + 60

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_no_server_errors(cluster) -> None:
    schema = schemathesis.openapi.from_url(cluster.urls[0] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {cluster.token}"}, timeout=CLIENT_TIMEOUT_S)
            case.validate_response(response, checks=(not_a_server_error,))

        fuzz()


def test_nodes_agree_after_fuzzing(cluster) -> None:
    async def settle() -> None:
        async with cluster.api() as api:
            while len({(await api.status(i))["durable_height"] for i in range(4)}) > 1:
                await asyncio.sleep(0.2)

    asyncio.run(asyncio.wait_for(settle(), 60))
    chains, states = [], []
    for config in cluster.configs:
        with contextlib.closing(sqlite3.connect(config.parent / config.stem / "ledger.sqlite3")) as db:
            chains.append(db.execute("SELECT hash FROM blocks ORDER BY height").fetchall())
            states.append(db.execute("SELECT key, value FROM state ORDER BY key").fetchall())
    assert all(c == chains[0] for c in chains) and all(s == states[0] for s in states)
    # Every transaction outcome is whole: each committed proposal has its status key, nothing else
    # was written by an invalid one (its only key is x|<pid>|<tx hash>).
    keys = [k.decode() for k, _ in states[0]]
    assert all(k.split("|")[0] in {"t", "x"} for k in keys), sorted({k.split("|")[0] for k in keys})
