"""The dashboard's parts in-process: fleet model, MQTT message routing (fuzzed), metrics parsing, the app's routes."""

from __future__ import annotations

import asyncio
import os
from argparse import Namespace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from edgeprov.wire import ACK_COMMITTED, ACK_REJECTED, Ack, Payload, Reading, topic
from ledger_node.metrics import NodeMetrics
from tools.dashboard.app import Settings, create_app
from tools.dashboard.fleet import EVENT_QUEUE, Fleet, excursions, missing_counters
from tools.dashboard.health import parse_metrics, sample_between
from tools.dashboard.server import SettingsError, read_secret, settings_from, split_address
from tools.dashboard.subscriber import handle

pytestmark = pytest.mark.unit

SHARE = bytes(96)  # the dashboard never checks shares (the gateway and ledger do); any 96 bytes frame


def frame(device: str, ctr: int, values: dict[str, int], epoch: int = 1) -> bytes:
    return Reading(device, epoch, ctr, 1_700_000_000_000 + ctr, Payload.of(values).encode(), SHARE).encode()


def test_missing_counters_are_ranges_between_seen_ones() -> None:
    assert missing_counters(set()) == ([], 0)
    assert missing_counters({1, 2, 3}) == ([], 0)
    assert missing_counters({3, 4, 7, 10}) == ([[1, 2], [5, 6], [8, 9]], 6)
    assert missing_counters(set(range(2, 100, 2)), limit=2) == ([[1, 1], [3, 3]], 49)


def test_excursions_use_the_cold_chain_band_in_milli_units() -> None:
    assert excursions({"temp_c": 2_000, "hum_pct": 99_000}) == []
    assert excursions({"temp_c": 8_001}) == ["temp_c"]
    assert excursions({"temp_c": 1_999}) == ["temp_c"]


def test_fleet_tracks_status_readings_gaps_and_acks() -> None:
    fleet = Fleet()
    handle(fleet, topic("gw-1", "dev-1", "status"), b"online")
    for ctr in (1, 2, 5):
        handle(fleet, topic("gw-1", "dev-1", "reading"), frame("dev-1", ctr, {"temp_c": 4_000 + ctr}))
    handle(fleet, topic("gw-1", "dev-1", "ack"), Ack(1, 5, ACK_REJECTED, "BAD_SIGNATURE").encode())
    handle(fleet, topic("gw-1", "dev-1", "ack"), Ack(1, 2, ACK_COMMITTED).encode())
    (dev,) = fleet.snapshot()["devices"]
    assert (dev["online"], dev["max_ctr"], dev["gaps"], dev["missing"]) == (True, 5, [[3, 4]], 2)
    assert (dev["last"]["status"], dev["last"]["reason"]) == ("rejected", "BAD_SIGNATURE")
    assert fleet.find("dev-1", 1, 2).status == "committed"
    handle(fleet, topic("gw-1", "dev-1", "status"), b"offline")
    assert fleet.snapshot()["devices"][0]["online"] is False


def test_a_new_epoch_restarts_the_counter_record() -> None:
    fleet = Fleet()
    handle(fleet, topic("gw-1", "dev-1", "reading"), frame("dev-1", 7, {"temp_c": 5_000}))
    handle(fleet, topic("gw-1", "dev-1", "reading"), frame("dev-1", 1, {"temp_c": 5_000}, epoch=2))
    (dev,) = fleet.snapshot()["devices"]
    assert (dev["epoch"], dev["max_ctr"], dev["missing"]) == (2, 1, 0)


def test_frames_that_disagree_with_their_topic_or_do_not_decode_are_counted_not_kept() -> None:
    fleet = Fleet()
    handle(fleet, topic("gw-1", "dev-1", "reading"), frame("dev-2", 1, {"temp_c": 1}))  # id is not the topic's
    handle(fleet, topic("gw-1", "dev-1", "reading"), frame("dev-1", 1, {"temp_c": 1})[:-1])
    handle(fleet, topic("gw-1", "dev-1", "status"), b"maybe")
    handle(fleet, "edgeprov/v1/gw-1/dev+1/reading", b"")
    handle(fleet, topic("gw-1", "dev-1", "ack"), b"\x01")
    assert fleet.malformed == 5
    assert fleet.snapshot()["devices"] == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.binary(max_size=300))
def test_handle_never_raises_on_any_topic_and_payload(name: str, payload: bytes) -> None:
    fleet = Fleet()
    handle(fleet, name, payload)
    handle(fleet, topic("gw-1", "dev-1", "reading"), payload)
    handle(fleet, topic("gw-1", "dev-1", "ack"), payload)
    assert fleet.malformed <= 3


def test_live_subscribers_get_events_and_a_slow_one_loses_only_its_oldest() -> None:
    fleet = Fleet()
    queue = fleet.subscribe()
    for ctr in range(1, EVENT_QUEUE + 10):
        fleet.publish("n", {"i": ctr})
    assert queue.qsize() == EVENT_QUEUE
    assert queue.get_nowait() == ("n", {"i": 10})
    fleet.unsubscribe(queue)
    fleet.publish("n", {"i": 0})
    assert queue.qsize() == EVENT_QUEUE - 1


def test_metrics_of_a_real_node_registry_give_height_round_leader_rate_and_latency() -> None:
    m = NodeMetrics()
    m.height.set(10)
    m.round.set(13)
    before = parse_metrics(generate_latest(m.registry).decode(), at=100.0)
    m.height.set(12)
    m.committed_txs.labels("true").inc(30)
    m.committed_txs.labels("false").inc(10)
    for latency in (0.010, 0.030):
        m.commit_latency.observe(latency)
    after = parse_metrics(generate_latest(m.registry).decode(), at=102.0)
    sample = sample_between(before, after, n_nodes=4)
    assert (sample.height, sample.round, sample.leader) == (12, 13, 1)
    assert sample.tx_per_s == pytest.approx(20.0)
    assert sample.latency_ms == pytest.approx(20.0)
    assert sample_between(None, after, 4).latency_ms is None


def test_a_page_that_is_not_ledger_metrics_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="not an edgeprov ledger metrics page"):
        parse_metrics("# just text\nother_metric 1\n", at=0.0)


def test_secret_files_must_be_private_and_addresses_well_formed(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    os.chmod(token, 0o644)
    with pytest.raises(SettingsError, match="chmod 600") as info:
        read_secret(token, "token file")
    assert "s3cret" not in str(info.value)
    os.chmod(token, 0o600)
    assert read_secret(token, "token file") == "s3cret"
    with pytest.raises(SettingsError, match="missing"):
        read_secret(tmp_path / "missing", "token file")
    for bad in ("localhost", ":1883", "host:0", "host:http"):
        with pytest.raises(SettingsError, match="HOST:PORT"):
            split_address(bad, "--broker")
    args = Namespace(broker="::1:1883", password=None, password_file=token, username="dash", tls_ca=None,
                     token_file=None, ledger=[], metrics=[], poll_interval=1.0)  # fmt: skip
    built = settings_from(args)
    assert (built.broker.host, built.broker.port, built.broker.password, built.token) == ("::1", 1883, "s3cret", None)


@pytest.fixture
def app_client() -> TestClient:
    return TestClient(create_app(Settings(broker=None, token="the-token")))


def test_page_and_assets_are_served_from_the_package(app_client: TestClient) -> None:
    with app_client as c:
        page = c.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
        for asset in ("app.js", "charts.js", "style.css", "favicon.svg"):
            assert c.get(f"/static/{asset}").status_code == 200
        assert c.get("/api/config").json()["writable"] is True
        assert c.get("/api/fleet").json()["devices"] == []


def test_writes_need_the_token_and_a_read_only_dashboard_refuses_them(app_client: TestClient) -> None:
    with app_client as c:
        assert c.post("/api/verify/dp4/main/0").status_code == 401
        assert c.post("/api/verify/dp4/main/0", headers={"Authorization": "Bearer wrong"}).status_code == 401
        right = c.post("/api/verify/dp4/main/0", headers={"Authorization": "Bearer the-token"})
        assert right.json() == {"ok": False, "status": 502, "body": {"error": "no ledger URL configured (--ledger)"}}
        assert "the-token" not in right.text
    with TestClient(create_app(Settings(broker=None))) as c:
        refused = c.post("/api/verify/x", headers={"Authorization": "Bearer anything"})
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]


def test_ledger_queries_answer_as_data_and_check_their_input(app_client: TestClient) -> None:
    with app_client as c:
        answer = c.get("/api/ledger/record/vacc1/main/0").json()
        assert (answer["ok"], answer["status"]) == (False, 502)
        assert c.get("/api/ledger/lineage/x?depth=0").status_code == 400
        assert c.get("/api/ledger/lineage/x?depth=ten").status_code == 400
        reading = c.get("/api/readings/dev-1/1/5").json()
        assert (reading["record_id"], reading["local"]) == ("dev-1@1#5", None)


def test_the_event_stream_carries_fleet_changes() -> None:
    app = create_app(Settings(broker=None))

    async def first_event() -> bytes:
        fleet = app.state.fleet
        chunks: list[bytes] = []
        done = asyncio.Event()

        async def receive() -> dict:
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                chunks.append(message["body"])
                done.set()

        scope = {"type": "http", "method": "GET", "path": "/events", "raw_path": b"/events", "query_string": b"",
                 "headers": [], "root_path": "", "scheme": "http", "server": ("t", 80), "app": app}  # fmt: skip
        task = asyncio.create_task(app(scope, receive, send))
        while not fleet._subscribers:
            await asyncio.sleep(0.01)
        handle(fleet, topic("gw-1", "dev-9", "status"), b"online")
        await asyncio.wait_for(done.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return b"".join(chunks)

    body = asyncio.run(first_event())
    assert b"event: device" in body and b'"device": "dev-9"' in body
