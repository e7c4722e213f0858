"""Per-node TOML configuration, and writing a local cluster's configs and keys.

A config names the node, where it listens (nodes, clients, metrics), every node of the cluster
with its address and Ed25519 public key, the data directory and the protocol knobs. The private key
lives in its own file, mode 0600, and is never logged.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger_node.client import ClientCredential, write_credentials
from ledger_node.transport import PeerAddress

CREDENTIALS_FILE = "clients.toml"
LOCAL_CLIENT = "local"
NODES_FILE = "nodes.json"  # public node keys: what `edgeprov verify --nodes` takes (PROOFS.md)
AUTHORITY_DIR = "authority"  # the cluster's copy of the AA's public authority.json
API_TOKENS_FILE = "api.tokens"  # every writer token, one a line: what the nodes accept
TOKENS_DIR = "tokens"  # tokens/<client>.token: one client's writer token
API_CLIENTS = ("gateway", "tools")


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
    # Secrets of the clients allowed on the client port (client.py); None: the port refuses all.
    client_credentials: Path | None = None
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
        client_credentials=base / raw["client_credentials"] if "client_credentials" in raw else None,
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


@dataclass(frozen=True)
class ContractOptions:
    """What `init-cluster --aa-dir` adds to every node: contracts, the HTTP API and its writer tokens."""

    authority_dir: Path
    api_clients: tuple[str, ...] = API_CLIENTS
    endorsement_quorum: int = 0  # 0 means f + 1
    skew_ms: int = 5_000


PORT_BLOCKS = 4  # init_cluster's layout: node, client, metrics and API ports at base + 100 * k + i


def free_base_port(n: int, host: str = "127.0.0.1") -> int:
    """A base port for init_cluster whose ports are all free now, below the kernel's ephemeral range.

    Fixed or hashed bases collided on a busy machine: an outgoing connection's local port (they come
    from 32768 up) once held a test cluster's client port and the node could not start.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(10_000, 32_000 - 100 * PORT_BLOCKS, 10)
        if all(_bindable(host, base + 100 * k + i) for k in range(PORT_BLOCKS) for i in range(n)):
            return base
    raise RuntimeError("no free port range for a local cluster")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def init_cluster(
    directory: Path,
    n: int,
    host: str = "127.0.0.1",
    base_port: int = 7400,
    batch_size: int = 1000,
    contracts: ContractOptions | None = None,
) -> list[Path]:
    """Write node{i}.toml, node{i}/node.key, the client credential file and the public nodes.json
    for an n-node local cluster. Without `contracts` the nodes run the raw TxLogApp (ordering bench);
    with it each node also runs the contracts and serves the API on base_port + 300 + i."""
    keys = [Ed25519PrivateKey.generate() for _ in range(n)]
    directory.mkdir(parents=True, exist_ok=True)
    write_credentials(directory / CREDENTIALS_FILE, [ClientCredential(LOCAL_CLIENT, os.urandom(32))])
    nodes = [
        {"id": i, "address": f"{host}:{base_port + i}", "public_key": k.public_key().public_bytes_raw().hex()}
        for i, k in enumerate(keys)
    ]
    chain_id = f"edgeprov-local-{n}"
    extra = _contract_settings(directory, contracts) if contracts else {}
    paths = []
    for i, key in enumerate(keys):
        write_private_key(directory / f"node{i}" / "node.key", key)
        config = {
            "node_id": i,
            "chain_id": chain_id,
            "listen": f"{host}:{base_port + i}",
            "client_listen": f"{host}:{base_port + 100 + i}",
            "metrics_listen": f"{host}:{base_port + 200 + i}",
            "data_dir": f"node{i}",
            "key_file": f"node{i}/node.key",
            "batch_size": batch_size,
            "round_timeout_s": 1.0,
            "max_round_timeout_s": 10.0,
            "checkpoint_interval": 100,
            "client_credentials": CREDENTIALS_FILE,
            **extra,
            **({"api_listen": f"{host}:{base_port + 300 + i}"} if contracts else {}),
            "nodes": nodes,
        }
        path = directory / f"node{i}.toml"
        path.write_text(tomli_w.dumps(config))
        paths.append(path)
    from ledger_node.proof import NodeSet  # the verifier's own format, so the two never drift

    public = NodeSet(chain_id, tuple(k.public_key().public_bytes_raw() for k in keys))
    (directory / NODES_FILE).write_text(json.dumps(public.to_json(), indent=2) + "\n")
    return paths


def _contract_settings(directory: Path, options: ContractOptions) -> dict:
    """Copy the authority's public file (nodes never see its secrets) and write the API tokens:
    one per client in tokens/<client>.token, all of them in api.tokens for the nodes (all 0600)."""
    from tools.authority import Authority  # validates the authority file before any node uses it

    Authority.load(options.authority_dir)
    public = directory / AUTHORITY_DIR / "authority.json"
    public.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(options.authority_dir / "authority.json", public)
    tokens = {name: secrets.token_urlsafe(32) for name in options.api_clients}
    for name, token in tokens.items():
        write_secret(directory / TOKENS_DIR / f"{name}.token", token)
    write_secret(directory / API_TOKENS_FILE, "\n".join(tokens.values()))
    return {
        "authority_dir": AUTHORITY_DIR,
        "api_token_file": API_TOKENS_FILE,
        "endorsement_quorum": options.endorsement_quorum,
        "skew_ms": options.skew_ms,
    }


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    os.chmod(path, 0o600)


def api_urls(directory: Path) -> list[str]:
    """The API base URLs of a cluster written by init_cluster, node 0 first."""
    configs = [load_config(p) for p in directory.glob("node*.toml")]
    return [f"http://{c.api_listen}" for c in sorted(configs, key=lambda c: c.node_id) if c.api_listen]


def client_token(directory: Path, client: str) -> str:
    """A client's API writer token from the cluster directory (tokens/<client>.token, 0600)."""
    path = directory / TOKENS_DIR / f"{client}.token"
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must not be readable by group or others (chmod 600)")
    return path.read_text().strip()
