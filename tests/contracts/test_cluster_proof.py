"""A reading's proof bundle from a real 4-node cluster, verified offline (PROOFS.md, issue 4 §3–4).

The cluster is configured by init_cluster with contracts on (as `edgeprov ledger init-cluster
--aa-dir`); the bundle is fetched with `edgeprov query proof` (a separate process asking every
node's GET /v1/proof and merging f+1 result attestations) and checked by `python -m tools.verify`
with only the cluster's public nodes.json and the authority's public file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import ContractCluster
from ledger_harness import Fleet

from ledger_node.api import client
from ledger_node.api.client import ApiError
from ledger_node.config import NODES_FILE
from ledger_node.endorsement.proposal import make_proposal

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def fetch_proof(cluster: ContractCluster, record: str, out: Path) -> subprocess.CompletedProcess:
    return run("-m", "edgeprov.cli", "query", "--node", ",".join(cluster.urls), "proof", record, "--out", out)


def verify(cluster: ContractCluster, bundle: Path) -> subprocess.CompletedProcess:
    return run("-m", "tools.verify", bundle, "--nodes", cluster.directory / NODES_FILE, "--aa", cluster.aa_dir)


@pytest.fixture(scope="module")
def committed(cluster: ContractCluster, fleet: Fleet) -> list[str]:
    """Three committed readings of one device: a full-form signature, then a compact one, then a compact
    one in a reading batch (submit_readings) next to a forged reading that the batch must not sink."""

    async def scenario() -> list[str]:
        async with cluster.api() as api:
            for doc in (fleet.gateway("gw-1"), fleet.device("proof-dev")):
                outcome = await api.call("registry", doc["action"], {"doc": doc})
                assert outcome.ok, outcome
            records = []
            for ctr, compact in ((1, False), (2, True)):
                proposal = make_proposal("readings", "submit", fleet.reading("proof-dev", ctr, compact=compact))
                (outcome,) = await api.endorse_and_submit_many([proposal])
                assert outcome.ok, outcome
                records.append(outcome.response["record"])
            forged = fleet.reading("proof-dev", 4, compact=True)
            forged = fleet.rehop({**forged, "ts_ms": forged["ts_ms"] + 1})
            batched = await api.submit_readings([forged, fleet.reading("proof-dev", 3, compact=True)])
            assert [(o.status, o.reason) for o in batched] == [("invalid", "BAD_SIGNATURE"), ("committed", "")]
            status = await api.tx_status(batched[1].proposal_id)
            assert status["item"] == 1 and status["tx"] == (await api.tx_status(batched[0].proposal_id))["tx"]
            return [*records, batched[1].response["record"]]

    return asyncio.run(scenario())


@pytest.mark.timeout(240)
def test_proof_fetched_by_cli_verifies_offline(cluster: ContractCluster, committed: list[str], tmp_path: Path) -> None:
    for record in committed:
        out = tmp_path / f"{record.replace('#', '_')}.json"
        fetched = fetch_proof(cluster, record, out)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        bundle = json.loads(out.read_text())
        assert len(bundle["record"]["result"]["attestations"]) >= 2  # f + 1 nodes attested the result
        checked = verify(cluster, out)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "VERIFIED" in checked.stdout
    compact = json.loads((tmp_path / f"{committed[1].replace('#', '_')}.json").read_text())
    assert compact["credential"] is not None  # the compact signature verified with the ledger's credential
    batched = json.loads((tmp_path / f"{committed[2].replace('#', '_')}.json").read_text())
    assert batched["record"]["item"] == 1  # the batch transaction's bytes and the reading's position


@pytest.mark.timeout(240)
def test_tampered_bundles_are_rejected(cluster: ContractCluster, committed: list[str], tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    assert fetch_proof(cluster, committed[0], good).returncode == 0
    bundle = json.loads(good.read_text())

    altered = json.loads(base64.b64decode(bundle["record"]["tx"]))
    altered["proposal"]["body"]["args"]["ts_ms"] += 1  # a different reading in the same place
    tx_tampered = {
        **bundle,
        "record": {**bundle["record"], "tx": base64.b64encode(json.dumps(altered).encode()).decode()},
    }
    one_node = json.loads(good.read_text())
    one_node["record"]["result"]["attestations"] = one_node["record"]["result"]["attestations"][:1]
    for name, doc, failing in (("tx", tx_tampered, "record.merkle-path"), ("attest", one_node, "record.result")):
        path = tmp_path / f"tampered-{name}.json"
        path.write_text(json.dumps(doc))
        checked = verify(cluster, path)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert any(line.split()[:2] == ["FAIL", failing] for line in checked.stdout.splitlines()), checked.stdout


@pytest.mark.timeout(120)
def test_proof_endpoint_refuses_what_it_cannot_prove(cluster: ContractCluster, committed: list[str]) -> None:
    async def ask() -> None:
        async with cluster.api() as api:
            with pytest.raises(ApiError) as missing:
                await api.proof("proof-dev@1#999")
            assert missing.value.status == 404
            single = await api.proof(committed[0], node=1)
            assert [a["node"] for a in single["record"]["result"]["attestations"]] == [1]

    asyncio.run(ask())


@pytest.mark.timeout(120)
def test_submit_readings_without_waiting_then_follow_by_id(cluster: ContractCluster, fleet: Fleet, committed) -> None:
    """A gateway may hand readings over (wait_ms=0) and follow each by its own id later."""

    async def scenario() -> tuple[list, list[dict], dict]:
        async with cluster.api() as api:
            readings = [fleet.reading("proof-dev", ctr, compact=True) for ctr in (5, 6)]
            handed = await api.submit_readings(readings, wait_ms=0)
            statuses = await api.tx_wait([o.proposal_id for o in handed], wait_ms=20_000, node=1)
            return handed, statuses, await api.completeness("proof-dev", node=2)

    handed, statuses, complete = asyncio.run(scenario())
    assert [o.status for o in handed] == ["submitted"] * 2
    assert [s["status"] for s in statuses] == ["committed"] * 2  # any node answers by the reading's id
    assert complete["ranges"] == [[1, 3], [5, 6]] and complete["gaps"] == [[4, 4]]  # ctr 4 was the forged one


@pytest.mark.timeout(120)
def test_a_batch_too_large_once_endorsed_is_split_not_lost(
    cluster: ContractCluster, fleet: Fleet, committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packing is by the readings' size; should an endorsed batch still exceed a transaction (here:
    packing told to put everything in one), the client splits it and every reading commits."""
    monkeypatch.setattr(client, "BATCH_ARGS_BYTES", 10**9)
    readings = [fleet.reading("proof-dev", ctr, compact=True) for ctr in range(10, 80)]

    async def scenario() -> list:
        async with cluster.api() as api:
            return await api.submit_readings(readings)

    outcomes = asyncio.run(scenario())
    assert [o.status for o in outcomes] == ["committed"] * len(readings)
    assert [o.response["record"] for o in outcomes] == [f"proof-dev@1#{ctr}" for ctr in range(10, 80)]
