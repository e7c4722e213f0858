"""`edgeprov bench NAME`: benchmarks that measure speed (tests never time anything).

Each benchmark is a module in BENCHES exposing

    run(quick: bool) -> dict      # figures with self-explaining keys, e.g. verify_single_ms
    report(results: dict) -> str  # a short human-readable table
    plot(results: dict, out_dir: pathlib.Path) -> list[pathlib.Path]   # figures for the full run

`--quick` must finish in under a minute. Results carry medians; compare ratios measured in one
run, since the machines are noisy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCHES = {
    "crypto": "tools.bench.crypto",
    "device": "tools.bench.device",
    "ordering": "tools.bench.ordering",
    "ledger": "tools.bench.ledger",
    "e2e": "tools.bench.e2e",
    "gateway": "tools.bench.gateway",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (speed is measured here, not in tests)")
    parser.add_argument("name", choices=sorted(BENCHES))
    parser.add_argument("--quick", action="store_true", help="short run, under a minute")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for plots (full run)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHES[args.name])
    started = time.time()
    results: dict[str, Any] = module.run(quick=args.quick)
    results["meta"] = {
        "bench": args.name,
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "wall_s": round(time.time() - started, 1),
    }
    print(module.report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"figures written to {args.json}")
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        for path in module.plot(results, args.out):
            print(f"plot written to {path}")
    return 0


def median_ms(fn: Callable[[], object], repeat: int, per: int = 1) -> float:
    """Median wall time of `fn` over `repeat` calls, in ms, divided by `per` items per call."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000 / per)
    return round(statistics.median(samples), 4)
