"""The second seed paper's worked example (§5) end to end on a real 4-node cluster over loopback.

Nodes are separate processes running BFT ordering, the contracts and the HTTP API; this test is
a client of the API only (LedgerApi.endorse_and_submit: f+1 endorsements, submit, wait).
"""

from __future__ import annotations

import asyncio

import pytest
from cluster import ContractCluster
from ledger_harness import Fleet, client

from edgeprov.admin_grant import AdminGrant
from edgeprov.wire import Payload
from ledger_node.endorsement.proposal import make_proposal

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def grant(fleet: Fleet, usecase: str, admin: str, policy: str) -> dict:
    """The authority names the use case's admin (edgeprov authority grant-admin does the same)."""
    return AdminGrant(usecase, admin, policy, 1_000).sign(fleet.aa)


async def ok(api, contract: str, fn: str, args: dict, key=None) -> dict:
    outcome = await api.call(contract, fn, args, key)
    assert outcome.ok, (contract, fn, outcome)
    return outcome.response


@pytest.mark.timeout(240)
def test_vaccine_lineage_derivation_traces_and_invalidation(cluster: ContractCluster, fleet: Fleet) -> None:
    factory, factory_id = client()
    squatter, _ = client()
    rfid_gate, rfid_gate_id = client()
    airline, airline_id = client()
    rfid_air1, rfid_air1_id = client()
    averager, averager_id = client()
    converter, converter_id = client()

    async def scenario() -> None:
        async with cluster.api() as api:
            await ok(api, "registry", "gateway", {"doc": fleet.gateway("gw-1")})
            await ok(api, "registry", "register", {"doc": fleet.device("air1-temp")})
            # Calling setup first wins nothing: the AA's grant names the factory, whose proposal must carry it.
            granted = {"grant": grant(fleet, "vaccine", factory_id, "allowlist")}
            for args, reason in (({"policy": "allowlist"}, "BAD_GRANT"), (granted, "NOT_GRANTEE")):
                squat = await api.call("vaccine", "setup", args, squatter)
                assert (squat.status, squat.reason) == ("rejected", reason), squat
            await ok(api, "vaccine", "setup", granted, factory)
            for who in (averager_id, airline_id):
                await ok(api, "vaccine", "allow", {"client": who}, factory)

            # Lineage: vacc1 created at the factory, read at the factory gate and at air1's door.
            await ok(api, "vaccine", "mint", {"dp": "vacc1"}, factory)
            created = await ok(api, "vaccine", "record", {"dp": "vacc1", "context": {
                "agent": "operator1@SaferVaccinesInc", "event": "created", "temperature": 5}}, factory)  # fmt: skip
            await ok(api, "generic", "set_operator", {"operator": rfid_gate_id, "approved": True}, factory)
            gate = await ok(api, "vaccine", "record", {"dp": "vacc1", "inputs": [created["record"]], "context": {
                "agent": "rfid1@SaferVaccinesInc", "event": "left factory", "location": "factory gate"}}, rfid_gate)  # fmt: skip
            refused = await api.call("vaccine", "record", {"dp": "vacc1", "inputs": [gate["record"]],
                                                           "context": {"agent": "rfid1@air1"}}, rfid_air1)  # fmt: skip
            assert (refused.status, refused.reason) == ("rejected", "NOT_OWNER")
            await ok(api, "generic", "transfer", {"dp": "vacc1", "to": airline_id}, factory)
            after = await api.call("vaccine", "record", {"dp": "vacc1", "context": {"agent": "x"}}, factory)
            assert after.reason == "NOT_OWNER"  # the transfer moved the right away from the factory
            await ok(api, "generic", "approve", {"dp": "vacc1", "to": rfid_air1_id}, airline)
            door = await ok(api, "vaccine", "record", {"dp": "vacc1", "inputs": [gate["record"]], "context": {
                "agent": "rfid1@air1", "event": "entered aircraft", "location": "air1 door"}}, rfid_air1)  # fmt: skip
            graph = await api.lineage(door["record"], depth=10)
            assert set(graph["nodes"]) == {"vacc1/main/0", "vacc1/main/1", "vacc1/main/2"}
            assert sorted(graph["edges"]) == [["vacc1/main/1", "vacc1/main/0"], ["vacc1/main/2", "vacc1/main/1"]]
            assert (await api.data_point("vacc1"))["owner"] == airline_id

            # Derivation: three signed temperature readings (°F), averaged into dp4, converted to °C.
            proposals = [make_proposal("readings", "submit", fleet.reading("air1-temp", ctr, {"temp_f_milli": v}))
                         for ctr, v in ((1, 38000), (2, 45000), (3, 40000))]  # fmt: skip
            outcomes = await api.endorse_and_submit_many(proposals)
            assert [o.status for o in outcomes] == ["committed"] * 3, outcomes
            dps = [o.response["record"] for o in outcomes]
            await ok(api, "vaccine", "mint", {"dp": "dp4"}, averager)
            avg = await ok(api, "vaccine", "record", {"dp": "dp4", "inputs": dps, "context": {
                "agent": "averager@air1", "temperature": 41, "unit": "F"}}, averager)  # fmt: skip
            await ok(api, "generic", "approve", {"dp": "dp4", "to": converter_id}, averager)
            celsius = await ok(api, "vaccine", "update", {"record": avg["record"], "context": {
                "agent": "converter@air1", "temperature": 5, "unit": "C"}}, converter)  # fmt: skip
            derivation = await api.lineage(celsius["record"], depth=10)
            assert set(derivation["nodes"]) == {celsius["record"], avg["record"], *dps}
            forward = await api.lineage(dps[0], direction="forward")
            assert set(forward["nodes"]) == {dps[0], avg["record"], celsius["record"]}
            reading = await api.record(dps[1])
            assert reading["values"] == {"temp_f_milli": 45000} and reading["valid"]

            # Parallel traces of air1: temperature and location, submitted together, both commit.
            await ok(api, "vaccine", "mint", {"dp": "air1"}, airline)
            traces = [make_proposal("vaccine", "record", {"dp": "air1", "trace": t, "context": c}, airline)
                      for t, c in (("temperature", {"agent": "sensor@air1", "temperature": 4.5}),
                                   ("location", {"agent": "gps@air1", "location": "FRA"}))]  # fmt: skip
            assert all(o.ok for o in await api.endorse_and_submit_many(traces))
            assert set((await api.data_point("air1"))["traces"]) == {"temperature", "location"}
            history = await api.history("air1", "location")
            assert [r["context"]["location"] for r in history["records"]] == ["FRA"]

            # Invalidation: an invalidated record is refused as an input.
            await ok(
                api, "vaccine", "invalidate", {"record": avg["record"], "reason": "sensor miscalibrated"}, averager
            )
            reuse = await api.call("vaccine", "record", {"dp": "dp4", "inputs": [avg["record"]],
                                                         "context": {"agent": "averager@air1"}}, averager)  # fmt: skip
            assert (reuse.status, reuse.reason) == ("rejected", "INVALID_INPUT")
            assert (await api.record(avg["record"]))["valid"] is False

            # Provenance Verification of a reading: signature, path, inclusion; stored with the asker.
            result = await ok(api, "verification", "verify", {"record": dps[0]}, airline)
            assert result["ok"] and result["signature"] == "ok" and result["path"] == "ok"
            stored = await api.verifications(dps[0])
            assert [v["asked_by"] for v in stored] == [airline_id]
            # Every node answers the same from its own copy of the state.
            answers = [await api.record(door["record"], node=i) for i in range(4)]
            assert all(a == answers[0] for a in answers)

    asyncio.run(asyncio.wait_for(scenario(), 200))


@pytest.mark.timeout(240)
def test_bad_readings_rejected_honest_ones_commit(cluster: ContractCluster, fleet: Fleet) -> None:
    async def scenario() -> None:
        async with cluster.api() as api:
            await ok(api, "registry", "gateway", {"doc": fleet.gateway("gw-2")})
            await ok(api, "registry", "register", {"doc": fleet.device("ward-1", gateway="gw-2")})
            await ok(api, "registry", "register", {"doc": fleet.device("ward-2", gateway="gw-2")})
            await ok(api, "registry", "revoke", {"doc": fleet.revoke("ward-2")})
            first = fleet.reading("ward-1", 1, gateway="gw-2")
            assert (await api.call("readings", "submit", first)).ok
            forged = fleet.reading("ward-1", 2, gateway="gw-2")
            forged = fleet.rehop({**forged, "msg": Payload.of({"temp_mc": 99999}).encode().hex()}, "gw-2")
            other_policy = fleet.system.device("ward-x", ["org=acme"], "id and org=acme").policy.pd.hex()
            batch = {
                "honest-3": fleet.reading("ward-1", 3, gateway="gw-2"),
                "forged": forged,
                "replayed": first,
                "wrong-policy": fleet.rehop({**fleet.reading("ward-1", 4, gateway="gw-2"), "pd": other_policy}, "gw-2"),
                "revoked": fleet.reading("ward-2", 1, gateway="gw-2"),
                "honest-5": fleet.reading("ward-1", 5, gateway="gw-2"),
                "honest-2": fleet.reading("ward-1", 2, gateway="gw-2"),  # fills the gap left by the forgery
            }
            outcomes = await api.endorse_and_submit_many(
                [make_proposal("readings", "submit", r) for r in batch.values()]
            )
            got = {name: (o.status, o.reason) for name, o in zip(batch, outcomes, strict=True)}
            assert got == {
                "honest-3": ("committed", ""),
                "forged": ("rejected", "BAD_SIGNATURE"),
                "replayed": ("rejected", "DUPLICATE_READING"),
                "wrong-policy": ("rejected", "WRONG_POLICY"),
                "revoked": ("rejected", "REVOKED_DEVICE"),
                "honest-5": ("committed", ""),
                "honest-2": ("committed", ""),
            }
            report = await api.completeness("ward-1")
            assert (report["ranges"], report["gaps"]) == ([[1, 3], [5, 5]], [[4, 4]])

    asyncio.run(asyncio.wait_for(scenario(), 200))


@pytest.mark.timeout(240)
def test_conflicting_transfers_and_forged_endorsement(cluster: ContractCluster, fleet: Fleet) -> None:
    owner, owner_id = client()
    _, alice_id = client()
    _, bob_id = client()

    async def scenario() -> None:
        async with cluster.api() as api:
            await ok(api, "health", "setup", {"grant": grant(fleet, "health", owner_id, "pending")}, owner)
            await ok(api, "health", "mint", {"dp": "monitor-7"}, owner)
            # Both transfers are endorsed against the same version of dp|monitor-7, then ordered.
            transfers = [make_proposal("generic", "transfer", {"dp": "monitor-7", "to": who}, owner)
                         for who in (alice_id, bob_id)]  # fmt: skip
            txs = await api.collect(transfers)
            await api.submit(txs)
            outcomes = await api.outcomes(txs)
            assert sorted((o.status, o.reason) for o in outcomes) == [
                ("committed", ""), ("invalid", "MVCC_READ_CONFLICT")]  # fmt: skip
            winner = alice_id if outcomes[0].ok else bob_id
            assert (await api.data_point("monitor-7"))["owner"] == winner

            # A Byzantine node (its real key) signs a made-up write set; one signature is not f + 1.
            from ledger_node.bft.signing import Ed25519Signer
            from ledger_node.config import load_private_key
            from ledger_node.endorsement.proposal import Transaction, endorsement_message, result_digest

            (honest,) = await api.collect([make_proposal("health", "mint", {"dp": "monitor-8"}, owner)])
            rwset = {**honest.rwset, "writes": [["dp|monitor-8", {"dp": "monitor-8", "owner": bob_id,
                                                                  "approved": "", "usecase": "health"}]]}  # fmt: skip
            byzantine = Ed25519Signer(3, load_private_key(cluster.configs[3].parent / "node3" / "node.key"))
            sig = byzantine.sign(endorsement_message(b"edgeprov-local-4", honest.proposal.id,
                                                     result_digest(rwset, honest.response)))  # fmt: skip
            copied = [e for e in honest.endorsements if e[0] != 3][:1]  # an honest signature over other data
            forged = Transaction(honest.proposal, rwset, honest.response, (*copied, (3, sig.hex())))
            await api.submit([forged])
            status = await api.tx_status(honest.proposal.id, wait_ms=20_000)
            assert (status["status"], status["reason"]) == ("invalid", "ENDORSEMENT_POLICY_FAILURE")
            with pytest.raises(Exception, match="404"):
                await api.data_point("monitor-8")

    asyncio.run(asyncio.wait_for(scenario(), 200))
