"""`edgeprov verify` as an auditor runs it (`python -m tools.verify`, the same parser): a separate
process, files only, per-check output, exit status 0 / 1 / 2, node keys from an `init-cluster`
config or its public-only export."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger_node.config import init_cluster, load_config, load_private_key
from ledger_node.proof import NodeSet
from tests.proofs.conftest import Cluster, certified_bundle, gateway_tx, reading_tx, registration_tx

pytestmark = pytest.mark.unit


def verify(*args: str | Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tools.verify", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory, device) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audit")
    configs = init_cluster(root / "cluster", 4, base_port=17400)
    config = load_config(configs[0])
    keys = [load_private_key(root / "cluster" / f"node{i}" / "node.key") for i in range(4)]
    cluster = Cluster(keys, NodeSet(config.chain_id, tuple(p.public_key for p in config.nodes)))
    record = device.record(21)
    reg, tx = registration_tx(device.registration()), reading_tx(record, device.sign(record), device.hops(record))
    bundle = certified_bundle(root, cluster, reg, tx, gateway_txs=(gateway_tx(device.gateway_registration()),))
    (root / "bundle.json").write_text(json.dumps(bundle))
    (root / "aa").mkdir()
    public = {"format": "edgeprov-aa-public", "version": 1, "d": device.mpk.d, "mpk": device.mpk.encode().hex(),
              "aa_fp": device.mpk.aa_fp.hex(),
              "signing_public_key": device.aa_signing.public_key().public_bytes_raw().hex()}  # fmt: skip
    (root / "aa" / "authority.json").write_text(json.dumps(public))
    return {"root": root, "config": configs[0], "bundle": root / "bundle.json", "aa": root / "aa" / "authority.json"}


def test_verifies_with_the_init_cluster_config(files) -> None:
    out = verify(files["bundle"], "--nodes", files["config"], "--aa", files["aa"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "VERIFIED" in out.stdout and "record.abs-signature" in out.stdout
    assert "private" not in out.stdout.lower() and "FAIL" not in out.stdout


def test_public_only_export_and_json_output(files) -> None:
    nodes = files["root"] / "nodes.json"
    assert verify("--export-nodes", files["config"], nodes).returncode == 0
    exported = json.loads(nodes.read_text())
    assert set(exported) == {"format", "version", "chain_id", "public_keys"} and len(exported["public_keys"]) == 4
    out = verify(files["bundle"], "--nodes", nodes, "--aa", files["aa"].parent, "--json")
    result = json.loads(out.stdout)
    assert out.returncode == 0 and result["verified"] is True
    assert all(c["ok"] for c in result["checks"]) and len(result["checks"]) >= 14


def test_tampered_bundle_exits_1_naming_the_check(files) -> None:
    doc = json.loads(files["bundle"].read_text())
    tx = json.loads(base64.b64decode(doc["record"]["tx"]))
    tx["proposal"]["body"]["args"]["ctr"] += 1
    doc["record"]["tx"] = base64.b64encode(json.dumps(tx, sort_keys=True, separators=(",", ":")).encode()).decode()
    bad = files["root"] / "tampered.json"
    bad.write_text(json.dumps(doc))
    out = verify(bad, "--nodes", files["config"], "--aa", files["aa"])
    assert out.returncode == 1
    failed = [line.split()[1] for line in out.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert "record.merkle-path" in failed and "record.abs-signature" in failed and "REJECTED" in out.stdout


@pytest.mark.parametrize("content", ["", "{", '{"format": "edgeprov-proof-bundle", "version": 9}', "[1]"])
def test_unreadable_bundle_exits_2_with_a_clear_error(files, content) -> None:
    bad = files["root"] / "bad.json"
    bad.write_text(content)
    out = verify(bad, "--nodes", files["config"], "--aa", files["aa"])
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
