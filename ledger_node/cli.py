"""`edgeprov ledger ...`: init-cluster, run, up (local cluster) and sim (seeded fault simulation)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ledger", help="BFT ledger nodes: configure, run, simulate")
    sub = parser.add_subparsers(dest="ledger_command", required=True)

    init = sub.add_parser("init-cluster", help="write configs and keys for a local n-node cluster")
    init.add_argument("--nodes", type=int, default=4)
    init.add_argument("--dir", type=Path, default=Path("cluster"))
    init.add_argument("--base-port", type=int, default=7400)
    init.add_argument("--batch-size", type=int, default=1000)
    _contract_flags(init)
    init.set_defaults(func=_init_cluster)

    run = sub.add_parser("run", help="run one node from its TOML config")
    run.add_argument("config", type=Path)
    run.set_defaults(func=_run)

    up = sub.add_parser("up", help="run a local cluster (one process per node) until Ctrl-C")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--dir", type=Path, default=Path("cluster"))
    up.add_argument("--base-port", type=int, default=7400)
    up.add_argument("--batch-size", type=int, default=1000)
    _contract_flags(up)
    up.set_defaults(func=_up)

    sim = sub.add_parser("sim", help="seeded fault simulation; exits 1 on any violation")
    sim.add_argument("--seeds", type=int, default=100, help="how many seeds")
    sim.add_argument("--nodes", type=int, choices=(4, 7), default=4)
    sim.add_argument("--seed", type=int, default=0, help="first seed (a failing seed replays exactly)")
    sim.add_argument("--real-crypto", action="store_true", help="Ed25519 instead of the fast keyed hash")
    sim.add_argument("--verbose", action="store_true")
    sim.set_defaults(func=_sim)


def _contract_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aa-dir", "--authority-dir", dest="aa_dir", type=Path,
                        help="run the contracts and the HTTP API, trusting this authority (its authority.json); "
                        "without it the nodes order raw transactions (TxLogApp)")  # fmt: skip
    parser.add_argument("--api-clients", default="gateway,tools", help="one writer token file per client name")
    parser.add_argument("--endorsement-quorum", type=int, default=0, help="0: f + 1")
    parser.add_argument("--skew-ms", type=int, default=5_000, help="how far a reading may lie in the future")


def _write_cluster(args: argparse.Namespace) -> list[Path]:
    from ledger_node.config import ContractOptions, init_cluster

    contracts = None
    if args.aa_dir is not None:
        clients = tuple(c for c in args.api_clients.split(",") if c)
        contracts = ContractOptions(args.aa_dir, clients, args.endorsement_quorum, args.skew_ms)
    return init_cluster(args.dir, args.nodes, base_port=args.base_port, batch_size=args.batch_size,
                        contracts=contracts)  # fmt: skip


def _init_cluster(args: argparse.Namespace) -> int:
    from ledger_node.config import API_TOKENS_FILE, NODES_FILE, TOKENS_DIR, load_config

    paths = _write_cluster(args)
    for path in paths:
        config = load_config(path)
        api = f", API http://{config.api_listen}" if config.api_listen else ""
        print(f"wrote {path}{api}")
    print(f"public node keys (edgeprov verify --nodes): {args.dir / NODES_FILE}")
    if args.aa_dir is not None:
        print(f"API writer tokens: {args.dir / TOKENS_DIR}/<client>.token (nodes accept {args.dir / API_TOKENS_FILE})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ledger_node.config import load_config
    from ledger_node.logs import setup_logging
    from ledger_node.node import run_node

    config = load_config(args.config)
    setup_logging(config.node_id, config.log_level)
    profile_dir = os.environ.get("EDGEPROV_PROFILE")  # benchmarks: where time goes, per node
    if not profile_dir:
        asyncio.run(run_node(config))
        return 0
    import cProfile

    with cProfile.Profile() as profile:
        asyncio.run(run_node(config))
    Path(profile_dir).mkdir(parents=True, exist_ok=True)
    profile.dump_stats(Path(profile_dir) / f"node{config.node_id}.prof")
    return 0


def node_command(config: Path) -> list[str]:
    """How `up`, the bench and the tests start a node: `python -m ledger_node.cli ledger run CONFIG`.

    Not through edgeprov.cli, which imports every command module of the project: a node (re)start
    must not depend on unrelated code (a half-written module elsewhere once failed a restart in the
    cluster test and the cluster lost its quorum).
    """
    return [sys.executable, "-m", "ledger_node.cli", "ledger", "run", str(config)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger_node.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def _up(args: argparse.Namespace) -> int:
    from edgeprov.procs import ProcessGroup
    from ledger_node.config import CREDENTIALS_FILE

    configs = sorted(args.dir.glob("node*.toml")) or _write_cluster(args)
    stop = threading.Event()
    # SIGTERM as well as Ctrl-C: `ledger up` run in the background must not orphan its nodes.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ProcessGroup(args.dir / "logs") as group:
        for path in configs:
            group.start(path.stem, node_command(path))
        print(f"{len(configs)} nodes running from {args.dir} (logs in {args.dir / 'logs'}); "
              f"client credentials in {args.dir / CREDENTIALS_FILE}")  # fmt: skip
        print("Ctrl-C stops them")
        while not stop.wait(0.5):
            if dead := group.dead():
                print(f"node {dead[0].name} exited ({dead[0].proc.returncode}); stopping the others:\n{dead[0].tail()}")
                return 1
    return 0


def _sim(args: argparse.Namespace) -> int:
    from ledger_node.bft.simulator import Simulation

    failures = 0
    started = time.time()
    for seed in range(args.seed, args.seed + args.seeds):
        result = Simulation(seed, args.nodes, real_crypto=args.real_crypto).run()
        if not result.ok:
            failures += 1
            print(f"seed {seed}: VIOLATION {result.violation}")
            print(f"  replay: edgeprov ledger sim --nodes {args.nodes} --seed {seed} --seeds 1 --verbose")
        if args.verbose or not result.ok:
            print(
                f"  seed {seed}: t={result.virtual_time}s events={result.events} heights={result.heights} "
                f"byzantine={result.byzantine} crashes={result.crashes} drops={dict(result.drops)}"
            )
    print(f"{args.seeds} seeds, n={args.nodes}: {failures} violations ({time.time() - started:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
