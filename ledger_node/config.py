"""Per-node TOML configuration, and writing a local cluster's configs and keys.

A config names the node, where it listens (nodes, clients, metrics), every node of the cluster
with its address and Ed25519 public key, the data directory and the protocol knobs. The private key
lives in its own file, mode 0600, and is never logged.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger_node.transport import PeerAddress


@dataclass(frozen=True)
class NodeConfig:
    node_id: int
    chain_id: str
    listen: str
    client_listen: str
    metrics_listen: str | None
    data_dir: Path
    key_file: Path
    nodes: list[PeerAddress]
    batch_size: int = 1000
    round_timeout_s: float = 1.0
    max_round_timeout_s: float = 10.0
    checkpoint_interval: int = 100
    log_level: str = "INFO"
    # Contracts and HTTP API (ledger_node/api, issue 4); without authority_dir the node runs TxLogApp.
    authority_dir: Path | None = None
    api_listen: str | None = None
    api_token_file: Path | None = None
    endorsement_quorum: int = 0  # 0 means f + 1
    skew_ms: int = 5_000
    late_ms: int = 60_000

    @property
    def n(self) -> int:
        return len(self.nodes)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def load_config(path: Path) -> NodeConfig:
    raw = tomllib.loads(path.read_text())
    base = path.parent
    nodes = [PeerAddress(int(n["id"]), *_split(n["address"]), bytes.fromhex(n["public_key"])) for n in raw["nodes"]]
    if sorted(p.node_id for p in nodes) != list(range(len(nodes))):
        raise ValueError("node ids must be 0..n-1")
    return NodeConfig(
        node_id=int(raw["node_id"]),
        chain_id=raw["chain_id"],
        listen=raw["listen"],
        client_listen=raw["client_listen"],
        metrics_listen=raw.get("metrics_listen"),
        data_dir=base / raw["data_dir"],
        key_file=base / raw["key_file"],
        nodes=nodes,
        batch_size=int(raw.get("batch_size", 1000)),
        round_timeout_s=float(raw.get("round_timeout_s", 1.0)),
        max_round_timeout_s=float(raw.get("max_round_timeout_s", 10.0)),
        checkpoint_interval=int(raw.get("checkpoint_interval", 100)),
        log_level=raw.get("log_level", "INFO"),
        authority_dir=base / raw["authority_dir"] if "authority_dir" in raw else None,
        api_listen=raw.get("api_listen"),
        api_token_file=base / raw["api_token_file"] if "api_token_file" in raw else None,
        endorsement_quorum=int(raw.get("endorsement_quorum", 0)),
        skew_ms=int(raw.get("skew_ms", 5_000)),
        late_ms=int(raw.get("late_ms", 60_000)),
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must not be readable by group or others (chmod 600)")
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key.private_bytes_raw().hex() + "\n")
    os.chmod(path, 0o600)


def init_cluster(
    directory: Path, n: int, host: str = "127.0.0.1", base_port: int = 7400, batch_size: int = 1000
) -> list[Path]:
    """Write node{i}.toml and node{i}/node.key for an n-node cluster on one host."""
    keys = [Ed25519PrivateKey.generate() for _ in range(n)]
    nodes = [
        {"id": i, "address": f"{host}:{base_port + i}", "public_key": k.public_key().public_bytes_raw().hex()}
        for i, k in enumerate(keys)
    ]
    paths = []
    for i, key in enumerate(keys):
        write_private_key(directory / f"node{i}" / "node.key", key)
        config = {
            "node_id": i,
            "chain_id": f"edgeprov-local-{n}",
            "listen": f"{host}:{base_port + i}",
            "client_listen": f"{host}:{base_port + 100 + i}",
            "metrics_listen": f"{host}:{base_port + 200 + i}",
            "data_dir": f"node{i}",
            "key_file": f"node{i}/node.key",
            "batch_size": batch_size,
            "round_timeout_s": 1.0,
            "max_round_timeout_s": 10.0,
            "checkpoint_interval": 100,
            "nodes": nodes,
        }
        path = directory / f"node{i}.toml"
        path.write_text(tomli_w.dumps(config))
        paths.append(path)
    return paths
