"""End to end (issue 6 "Must show"): firmware on MicroPython → Mosquitto (TLS, ACLs) → gateway → 4-node ledger.

Every assertion about readings is made against the ledger (its API: completeness, records, proof
bundles, transaction outcomes), never against a log. dev-1 and dev-2 run the real firmware; dev-3
is a CPython device (edgeprov.crypto.device.DeviceSigner) the tests use to misbehave. The module
shares one fleet; the kill -9 test stops the devices, so it runs last.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from edgeprov import wire
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.device import DeviceSigner
from edgeprov.crypto.objects import DeviceShare
from edgeprov.crypto.points import g1
from ledger_node.api.client import ApiError, LedgerApi
from tests.e2e.conftest import FIRMWARE_DEVICES, eventually, mqtt_client
from tools.fleet import GATEWAY, LocalFleet

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def completeness(api: LedgerApi, device: str) -> dict:
    try:
        return await api.completeness(device)
    except ApiError as exc:
        if exc.status == 404:  # no reading of this device on the ledger yet
            return {"count": 0, "ranges": [], "gaps": []}
        raise


async def committed_at_least(api: LedgerApi, device: str, n: int) -> dict | None:
    found = await completeness(api, device)
    return found if found["count"] >= n else None


def signer(fleet: LocalFleet, device: str) -> DeviceSigner:
    folder = fleet.device_dir(device)
    return DeviceSigner(DeviceBundle.decode((folder / "device.bundle").read_bytes()), folder / "device.record")


def frame(sig: DeviceSigner, temp: int, forge: bool = False, device: str = "", ctr: int | None = None) -> bytes:
    """A reading frame as the firmware makes it; `forge` adds g1 to W_dev (fresh R_dev, so no nonce alert)."""
    msg = wire.Payload.of({"temp": temp}).encode()
    signed = sig.sign(int(time.time() * 1000), msg)
    share = DeviceShare(signed.share.W_dev + g1, signed.share.R_dev) if forge else signed.share
    name = device or sig.bundle.device_id.decode()
    return wire.Reading(name, sig.bundle.epoch, signed.ctr if ctr is None else ctr, signed.ts_ms, msg,
                        share.encode()).encode()  # fmt: skip


async def collect_acks(fleet: LocalFleet, device: str, publish: list[tuple[str, bytes]], want: set[int]) -> dict:
    """Publish frames as `device` (its own account) and collect the gateway's final Acks for counters `want`."""
    acks: dict[int, wire.Ack] = {}
    async with mqtt_client(fleet, device) as client:
        await client.subscribe(wire.topic(GATEWAY, device, "ack"), qos=1)
        for topic, data in publish:
            await client.publish(topic, data, qos=1)
        async for message in client.messages:
            ack = wire.Ack.decode(message.payload)
            if ack.status != wire.ACK_RELAYED:
                acks[ack.ctr] = ack
            if want <= set(acks):
                return acks
    return acks


def test_reading_committed_and_its_proof_bundle_verifies_offline(fleet: LocalFleet, tmp_path: Path) -> None:
    async def scenario() -> tuple[str, dict]:
        async with fleet.api() as api:
            found = await eventually(lambda: committed_at_least(api, "dev-1", 1), "a dev-1 reading committed")
            record_id = f"dev-1@{found['epoch']}#{found['ranges'][0][0]}"
            record = await api.record(record_id)
            assert record["device"] == "dev-1" and record["hops"][0]["gateway"] == GATEWAY
            # f + 1 nodes must attest the result: a node that has not yet committed the block answers 409

            async def bundle() -> dict | None:
                try:
                    return await api.proof_bundle(record_id)
                except ApiError as exc:
                    if exc.status in (409, 502):
                        return None
                    raise

            return record_id, await eventually(bundle, "a proof bundle attested by f+1 nodes")

    record_id, bundle = asyncio.run(scenario())
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(bundle))
    done = subprocess.run(
        [sys.executable, "-m", "tools.verify", str(path), "--nodes", str(fleet.nodes_file), "--aa", str(fleet.aa)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout and "record.abs-signature" in done.stdout, done.stdout
    # tampering with the reading inside the bundle must fail the same offline check
    doc = json.loads(path.read_text())
    tx = json.loads(base64.b64decode(doc["record"]["tx"]))
    args = tx["proposal"]["body"]["args"]
    if "item" in doc["record"]:  # a reading relayed in a batch transaction (readings.submit_batch)
        args = args["items"][doc["record"]["item"]]["args"]
    args["ts_ms"] += 1
    doc["record"]["tx"] = base64.b64encode(json.dumps(tx).encode()).decode()
    path.write_text(json.dumps(doc))
    tampered = subprocess.run(
        [sys.executable, "-m", "tools.verify", str(path), "--nodes", str(fleet.nodes_file), "--aa", str(fleet.aa)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert tampered.returncode == 1 and "REJECTED" in tampered.stdout, tampered.stdout + tampered.stderr
    assert record_id.startswith("dev-1@")


def test_wrong_password_is_refused_by_the_broker(fleet: LocalFleet) -> None:
    async def scenario() -> None:
        with pytest.raises(aiomqtt.MqttCodeError) as refused:
            async with mqtt_client(fleet, "dev-2", password="not-the-password", identifier="e2e-wrong-password"):
                pass
        assert "authoriz" in str(refused.value).lower()
        async with mqtt_client(fleet, "dev-2", identifier="e2e-right-password"):
            pass  # the same account with its own password connects

    asyncio.run(scenario())


def test_device_publishing_under_another_id_never_reaches_the_ledger(fleet: LocalFleet) -> None:
    """dev-3 (its own account) claims to be dev-2: on dev-2's topic the broker's ACL drops it; on its
    own topic the gateway refuses it (topic id ≠ frame id). Neither counter ever shows on the ledger."""
    sig = signer(fleet, "dev-3")
    fake_ctr = 10**9
    own_topic = wire.topic(GATEWAY, "dev-3", "reading")

    async def refused_count() -> float:
        return (await fleet.gateway_counts()).get("refused", 0.0)

    async def scenario() -> None:
        async with fleet.api() as api:
            before_refused = await refused_count()
            before = (await completeness(api, "dev-2"))["count"]
            async with mqtt_client(fleet, "dev-3", identifier="e2e-intruder") as client:
                await client.publish(wire.topic(GATEWAY, "dev-2", "reading"), frame(sig, 1, device="dev-2",
                                     ctr=fake_ctr), qos=1)  # fmt: skip
                await client.publish(own_topic, frame(sig, 2, device="dev-2", ctr=fake_ctr + 1), qos=1)

            async def refused() -> bool:
                return await refused_count() > before_refused

            await eventually(refused, "the gateway refusing dev-3's frame that names dev-2")
            # dev-2's own readings keep committing after the intrusion; the intruder's never do
            await eventually(lambda: committed_at_least(api, "dev-2", before + 4), "dev-2 committing on")
            found = await completeness(api, "dev-2")
            assert max(b for _, b in found["ranges"]) < fake_ctr
            for ctr in (fake_ctr, fake_ctr + 1):
                with pytest.raises(ApiError) as missing:
                    await api.record(f"dev-2@1#{ctr}")
                assert missing.value.status == 404
            assert (await completeness(api, "dev-3"))["count"] == 0  # nothing was recorded as dev-3 either

    asyncio.run(scenario())


def test_forged_share_is_rejected_by_the_ledger_with_its_reason_while_honest_readings_commit(
    fleet: LocalFleet,
) -> None:
    sig = signer(fleet, "dev-3")
    topic = wire.topic(GATEWAY, "dev-3", "reading")
    forged = frame(sig, 4100, forge=True)
    honest = frame(sig, 4200)
    forged_ctr, honest_ctr = wire.Reading.decode(forged).ctr, wire.Reading.decode(honest).ctr

    async def scenario() -> dict:
        acks = await asyncio.wait_for(
            collect_acks(fleet, "dev-3", [(topic, forged), (topic, honest)], {forged_ctr, honest_ctr}), 60
        )
        async with fleet.api() as api:
            found = await completeness(api, "dev-3")
            for device in FIRMWARE_DEVICES:  # honest firmware readings commit alongside
                assert (await completeness(api, device))["count"] > 0
            with pytest.raises(ApiError):
                await api.record(f"dev-3@1#{forged_ctr}")
            assert (await api.record(f"dev-3@1#{honest_ctr}"))["values"] == {"temp": 4200}
        return {"acks": acks, "found": found}

    result = asyncio.run(scenario())
    acks = result["acks"]
    assert acks[forged_ctr].status == wire.ACK_REJECTED and acks[forged_ctr].reason == "BAD_SIGNATURE"
    assert acks[honest_ctr].status == wire.ACK_COMMITTED
    assert [honest_ctr, honest_ctr] in result["found"]["ranges"]
    assert all(not (a <= forged_ctr <= b) for a, b in result["found"]["ranges"])
    with sqlite3.connect(f"file:{fleet.gateway_db}?mode=ro", uri=True) as db:
        row = db.execute("SELECT state, reason FROM readings WHERE device = 'dev-3' AND ctr = ?", (forged_ctr,))
        assert row.fetchone() == ("invalid", "BAD_SIGNATURE")


def test_resubmitting_a_committed_reading_is_idempotent(fleet: LocalFleet) -> None:
    """What a replay after a crash does: the same outbox bytes name the same proposal, so ApiLink
    reports the original commit; other bytes for the same (id, epoch, ctr) are a DUPLICATE_READING."""
    from gateway.config import load_config
    from gateway.ledger_link import make_link, transaction_id

    with sqlite3.connect(f"file:{fleet.gateway_db}?mode=ro", uri=True) as db:
        tx, height = db.execute(
            "SELECT tx, height FROM readings WHERE device = 'dev-1' AND state = 'committed' ORDER BY ctr LIMIT 1"
        ).fetchone()
    doc = json.loads(tx)
    other = json.dumps({**doc, "ts_ms": doc["ts_ms"] + 1}, sort_keys=True, separators=(",", ":")).encode()

    async def scenario() -> tuple:
        link = make_link(load_config(fleet.gateway_toml).ledger)
        try:
            await link.submit([tx, other])
            return await link.committed(transaction_id(tx)), await link.committed(transaction_id(other))
        finally:
            await link.close()

    again, clash = asyncio.run(scenario())
    assert again.valid and again.height == height
    assert not clash.valid and clash.reason == "DUPLICATE_READING" and clash.height is None


class BrokerWatch:
    """The highest counter each firmware device has published, as the broker carried it (read-only account)."""

    def __init__(self, fleet: LocalFleet) -> None:
        self.fleet = fleet
        self.last = dict.fromkeys(FIRMWARE_DEVICES, 0)
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def _watch(self) -> None:
        async with mqtt_client(self.fleet, "dashboard", identifier="e2e-watch") as client:
            await client.subscribe(f"{wire.TOPIC_ROOT}/{GATEWAY}/+/reading", qos=1)
            self.ready.set()
            async for message in client.messages:
                device = str(message.topic).split("/")[3]
                if device in self.last:
                    self.last[device] = max(self.last[device], wire.Reading.decode(message.payload).ctr)

    async def __aenter__(self) -> BrokerWatch:
        self.task = asyncio.create_task(self._watch())
        await asyncio.wait([self.task, asyncio.create_task(self.ready.wait())], return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            self.task.result()  # the subscriber failed: show why
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()


async def streaming(api: LedgerApi) -> None:
    """Readings of every firmware device are flowing and committing right now."""
    before = {d: (await completeness(api, d))["count"] for d in FIRMWARE_DEVICES}
    for device in FIRMWARE_DEVICES:
        await eventually(lambda d=device: committed_at_least(api, d, before[d] + 2), f"{device} streaming")


async def caught_up(api: LedgerApi, published: dict[str, int]) -> dict:
    """The ledger's completeness once it holds, for every device, a counter at least `published`."""

    async def check() -> dict | None:
        found = {d: await completeness(api, d) for d in FIRMWARE_DEVICES}
        done = all(f["ranges"] and f["ranges"][-1][1] >= published[d] for d, f in found.items())
        return found if done else None

    return await eventually(check, "the ledger catching up")


def assert_exactly_once(found: dict, last: int) -> None:
    """Counters 1..last each once on the ledger: one contiguous range, no gap, count = last."""
    assert last > 0
    assert found["ranges"] == [[1, last]], found
    assert found["gaps"] == [] and found["count"] == last, found


def gateway_states(fleet: LocalFleet, device: str) -> list[tuple]:
    with sqlite3.connect(f"file:{fleet.gateway_db}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT state, COUNT(*), MAX(ctr) FROM readings WHERE device = ? GROUP BY state", (device,))
        return rows.fetchall()


def test_ledger_outage_keeps_readings_in_the_outbox_and_commits_them_after(fleet: LocalFleet) -> None:
    """All four nodes stop while the firmware publishes; the gateway keeps readings in its outbox and
    retries (ApiLink raises LedgerUnavailable); once the nodes are back every counter commits, once."""

    async def scenario() -> tuple[dict, dict]:
        async with BrokerWatch(fleet) as watch, fleet.api() as api:
            await streaming(api)
            await asyncio.to_thread(fleet.stop_ledger)
            await asyncio.sleep(3)  # readings keep arriving at the gateway, with nowhere to go
            during = dict(watch.last)
            await asyncio.to_thread(fleet.start_ledger)
            found = await caught_up(api, during)
            return during, found

    during, found = asyncio.run(scenario())
    for device in FIRMWARE_DEVICES:
        top = found[device]["ranges"][-1][1]
        assert top >= during[device]
        assert_exactly_once(found[device], top)
        assert all(state != "invalid" for state, _, _ in gateway_states(fleet, device))


def test_gateway_kill9_mid_stream_loses_and_duplicates_nothing(fleet: LocalFleet) -> None:
    """SIGKILL the gateway while the firmware publishes, restart it; afterwards every counter the
    broker carried for each device is on the ledger exactly once: one contiguous range, no gaps."""

    async def scenario() -> tuple[dict, dict]:
        async with BrokerWatch(fleet) as watch, fleet.api() as api:
            await streaming(api)
            await asyncio.to_thread(fleet.group.kill, "gateway")
            await asyncio.sleep(3)  # devices keep publishing into the broker's queue for the gateway
            await asyncio.to_thread(fleet.start_gateway)
            await streaming(api)
            for device in FIRMWARE_DEVICES:
                await asyncio.to_thread(fleet.group.stop, device)
            await asyncio.sleep(1)  # the subscriber sees the last frames the devices sent
            published = dict(watch.last)
            return published, await caught_up(api, published)

    published, found = asyncio.run(scenario())
    for device in FIRMWARE_DEVICES:
        assert_exactly_once(found[device], published[device])
        # the gateway's own provenance DB agrees: every reading committed, none pending or rejected
        assert gateway_states(fleet, device) == [("committed", published[device], published[device])]
