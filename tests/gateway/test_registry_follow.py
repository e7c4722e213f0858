"""The gateway follows the ledger's Device Registration (gateway/registry.py, rule G1), with real parts:
the gateway as a subprocess, a real TLS Mosquitto, a real 4-node ledger cluster with contracts and API.

Shows: dev-1 and dev-2 relay readings that commit; the AA revokes dev-1 (`edgeprov authority revoke`)
and the revocation commits on the ledger; within the gateway's poll interval (0.5 s here) dev-1's
next readings are refused by the gateway as "revoked" (counted in /metrics, the revocation logged
once, not per frame, and nothing new of dev-1 reaches the ledger), while dev-2's readings keep being
relayed and committed; dev-3, which the ledger does not know, is still relayed and refused by the
ledger itself (UNKNOWN_DEVICE). The follower alone, against the same cluster: a device re-keyed on
the ledger (`authority keygen --rekey`, epoch 2 registered) is refused as "stale-epoch" by a gateway
holding its epoch-1 bundle.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov import wire
from gateway.devices import load_devices
from gateway.ledger_link import ApiLink
from gateway.metrics import Metrics
from gateway.refusal import Refused
from gateway.registry import RegistryFollower, Standing
from ledger_node.api.client import ApiError
from tests.gateway.fleet import GATEWAY, POLICY, Fleet, reading_frame, reading_topic, run
from tests.gateway.test_gateway_service import GatewayProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
from cluster import ContractCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = ["dev-1", "dev-2", "dev-3", "dev-4", "dev-5"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return Fleet(tmp_path_factory.mktemp("fleet"), DEVICES).issue()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet):
    aa_key = json.loads((fleet.aa / "authority.json").read_text())["signing_public_key"]
    c = ContractCluster(
        tmp_path_factory.mktemp("cluster"), fleet.mpk(), Ed25519PublicKey.from_public_bytes(bytes.fromhex(aa_key))
    )
    with c.running():
        asyncio.run(submit(c, "gateway", fleet.aa / "gateways" / GATEWAY / "e1" / "registration.json"))
        yield c


async def submit(cluster: ContractCluster, fn: str, doc: Path) -> None:
    """An AA-signed registry document, committed (Device Registration contract)."""
    async with cluster.api() as api:
        outcome = await api.call("registry", fn, {"doc": json.loads(doc.read_text())})
    assert outcome.ok, outcome


def registration(fleet: Fleet, device: str, epoch: int = 1) -> Path:
    return fleet.aa / "issued" / device / f"e{epoch}" / "registration.json"


def gateway_config(fleet: Fleet, cluster: ContractCluster) -> Path:
    token = fleet.root / "ledger.token"
    token.write_text(cluster.token + "\n")
    os.chmod(token, 0o600)
    path = fleet.gateway_config(list(cluster.urls))
    doc = tomllib.loads(path.read_text())
    doc["ledger"] |= {"token_file": str(token), "registry_poll_s": 0.5}
    path.write_text(tomli_w.dumps(doc))
    return path


async def final_ack(fleet: Fleet, device: str, frame: bytes) -> wire.Ack:
    """Publish one frame as `device` and return its last Ack (committed or rejected, not ACK_RELAYED)."""
    ctr = wire.Reading.decode(frame).ctr
    async with fleet.device_client(device) as client:
        await client.subscribe(reading_topic(device, "ack"), qos=1)
        await client.publish(reading_topic(device), frame, qos=1)
        async for message in client.messages:
            ack = wire.Ack.decode(message.payload)
            if ack.ctr == ctr and ack.status != wire.ACK_RELAYED:
                return ack
    raise AssertionError(f"{device}: no final Ack for ctr {ctr}")


async def ranges(cluster: ContractCluster, device: str) -> list:
    async with cluster.api() as api:
        try:
            return (await api.completeness(device, 1))["ranges"]
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise


def test_a_revocation_on_the_ledger_stops_the_gateway_relaying_that_device(
    fleet: Fleet, cluster: ContractCluster, mosquitto_broker
) -> None:
    mosquitto_broker(config=fleet.broker_config())
    for device in ("dev-1", "dev-2"):
        asyncio.run(submit(cluster, "register", registration(fleet, device)))
    gateway = GatewayProcess(gateway_config(fleet, cluster)).start()
    try:
        signers = {d: fleet.signer(d) for d in ("dev-1", "dev-2", "dev-3")}
        ts = int(time.time() * 1000)

        def send(device: str, k: int) -> wire.Ack:
            frame = reading_frame(signers[device], ts + k, 4000 + k)
            return asyncio.run(asyncio.wait_for(final_ack(fleet, device, frame), 60))  # bounds a broken run only

        before = [send("dev-1", 1), send("dev-2", 1), send("dev-3", 1)]
        run("authority", "revoke", "--aa-dir", str(fleet.aa), "--device", "dev-1")
        asyncio.run(submit(cluster, "revoke", fleet.aa / "issued" / "dev-1" / "revocation.json"))
        gateway.wait_for(lambda h: h["devices_refused_by_registry"] == 1, "learnt the revocation")
        after = [send("dev-1", 2), send("dev-1", 3), send("dev-2", 2), send("dev-2", 3)]
        metrics = gateway.get("/metrics")[1].decode()
        health = gateway.health()
        found = {d: asyncio.run(ranges(cluster, d)) for d in ("dev-1", "dev-2")}
    finally:
        gateway.stop()
    log = gateway.log.read_text()

    assert [(a.ctr, a.status) for a in before[:2]] == [(1, wire.ACK_COMMITTED)] * 2
    assert (before[2].status, before[2].reason) == (wire.ACK_REJECTED, "UNKNOWN_DEVICE")  # relayed; the ledger refused
    assert [(a.ctr, a.status, a.reason) for a in after[:2]] == [
        (2, wire.ACK_REJECTED, "revoked"),
        (3, wire.ACK_REJECTED, "revoked"),
    ]
    assert [(a.ctr, a.status) for a in after[2:]] == [(2, wire.ACK_COMMITTED), (3, wire.ACK_COMMITTED)]
    assert found == {"dev-1": [[1, 1]], "dev-2": [[1, 3]]}
    assert 'edgeprov_gateway_frames_refused_total{reason="revoked"} 2.0' in metrics
    assert 'edgeprov_gateway_registry_devices{standing="revoked"} 1.0' in metrics
    assert health["registry_reachable"] is True
    assert log.count("device dev-1 is revoked on the ledger") == 1  # once, not per frame or per poll
    assert log.count("device dev-3 is not registered on the ledger") == 1


def test_a_device_re_keyed_on_the_ledger_is_refused_as_stale(fleet: Fleet, cluster: ContractCluster) -> None:
    held = {d: k for d, k in load_devices(fleet.aa / "issued", GATEWAY).items() if d in ("dev-4", "dev-5")}
    asyncio.run(submit(cluster, "register", registration(fleet, "dev-4")))
    asyncio.run(submit(cluster, "register", registration(fleet, "dev-5")))
    attrs = ("--attr", "org=acme", "--attr", "type=temp")
    run("authority", "keygen", "--aa-dir", str(fleet.aa), "--device", "dev-4", "--policy", POLICY,
        "--gateway", GATEWAY, "--comb-width", "2", "--rekey", *attrs)  # fmt: skip
    asyncio.run(submit(cluster, "register", registration(fleet, "dev-4", 2)))

    async def scenario() -> tuple[dict, list]:
        follower = RegistryFollower(ApiLink(tuple(cluster.urls), None), held, Metrics(), len(cluster.urls))
        try:
            await follower.poll()
            reasons = []
            for device in held.values():
                try:
                    follower.check(device)
                    reasons.append(None)
                except Refused as refused:
                    reasons.append(refused.reason)
            return dict(follower.standings), reasons
        finally:
            await follower.link.close()

    standings, reasons = asyncio.run(scenario())
    assert standings == {"dev-4": Standing.STALE_EPOCH, "dev-5": Standing.ACTIVE}
    assert reasons == ["stale-epoch", None]
    assert load_devices(fleet.aa / "issued", GATEWAY)["dev-4"].epoch == 2  # with the new bundle it is current
