"""`edgeprov bench ledger`: what a provenance record costs and how lineage queries scale (issue 4).

(a) cost per record, the second seed paper's "gas": state bytes written and execution time of the
    storage contract's `create` (record, lineage edges) as the context grows 32 B → 4 KiB and as the
    inputs grow 0 → 20;
(b) lineage query latency (`api.queries.lineage`, backward) at depth 10, 100, 1000 over the node's
    SQLite store, once with a small and once with a large store: it should follow the lineage size.
    Full run: 1,000,000 filler records (and 50,000); quick: 100,000 (and 5,000), said in the results.
(c) ledger ingest (tools/bench/ledger_ingest.py): pre-signed readings through the API of a 4-node
    cluster, endorsed by f + 1 nodes, sustained 60 s (quick: 15 s): committed readings/s and p50/p99
    submit-to-commit latency (`ingest_*` keys).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ledger_node.api import queries
from ledger_node.app import AppliedBlock
from ledger_node.block import ZERO_HASH, Block, CommitCert
from ledger_node.blockstore import SqliteBlockStore
from ledger_node.contracts import storage
from ledger_node.state import MemoryState, TxContext, encode_value
from tools.bench import ledger_ingest, median_ms

CONTEXT_SIZES = (32, 256, 1024, 4096)
INPUT_COUNTS = (0, 1, 5, 10, 20)
DEPTHS = (10, 100, 1000)
CREATOR = "ab" * 32


def _writes(ctx: TxContext, height: int) -> dict[bytes, bytes]:
    return {k.encode(): encode_value(v, height, 0, 1_700_000_000_000) for k, v in ctx.writes.items()}


def _create(state, height: int, rid: str, context_bytes: int, inputs: list[str]) -> dict[bytes, bytes]:
    """Execute the storage contract's create for one record; returns its encoded state writes."""
    ctx = TxContext(state, CREATOR, f"{height:064x}", None)
    doc = {"kind": "record", "dp": "dp-bench", "creator": CREATOR, "context": {"note": "x" * context_bytes}}
    storage.create(ctx, rid, doc, storage.check_inputs(ctx, inputs))
    return _writes(ctx, height)


def _cost(context_bytes: int, n_inputs: int, repeat: int) -> dict[str, float]:
    state = MemoryState()
    sources = [f"src-{i}" for i in range(n_inputs)]
    for i, rid in enumerate(sources):
        state.apply(_create(state, i + 1, rid, 32, []))
    counter = iter(range(10**9))
    written = _create(state, 0, "probe", context_bytes, sources)
    ms = median_ms(lambda: _create(state, 0, f"r-{next(counter)}", context_bytes, sources), repeat)
    return {
        "context_bytes": context_bytes,
        "inputs": n_inputs,
        "bytes_stored": sum(len(k) + len(v) for k, v in written.items()),
        "ms_per_record": ms,
    }


class _Pending:
    """The store plus writes not yet committed: a chain's next record reads the one before it."""

    def __init__(self, store: SqliteBlockStore, pending: dict[bytes, bytes]) -> None:
        self.store, self.pending = store, pending

    def get_state(self, key: bytes) -> bytes | None:
        return self.pending.get(key) or self.store.get_state(key)


async def _fill(store: SqliteBlockStore, records: int, depth: int, batch: int = 5000) -> str:
    """A chain of `depth` + 1 records (each derived from the previous) after `records` unrelated ones;
    returns the chain's head. Written through the store's block path, one block per batch."""
    pending: dict[bytes, bytes] = {}
    height = store.height

    async def commit() -> None:
        nonlocal height, pending
        height += 1
        block = Block.build(height, height, ZERO_HASH, 0, 0, ())
        store.stage(block, CommitCert(block.hash, ZERO_HASH, ()), AppliedBlock([], pending))
        await store.flush()
        pending = {}

    for i in range(records):
        pending.update(_create(store, height + 1, f"fill-{i:08d}", 32, []))
        if len(pending) >= batch:
            await commit()
    await commit()
    prev: list[str] = []
    for i in range(depth + 1):
        rid = f"chain{depth}-{i:05d}"
        pending.update(_create(_Pending(store, pending), height + 1, rid, 32, prev))
        prev = [rid]
        if len(pending) >= batch:
            await commit()
    await commit()
    return prev[0]


async def _lineage(store_records: int, repeat: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteBlockStore(Path(tmp) / "bench.db")
        await store.open()
        try:
            heads = {}
            for depth in DEPTHS:
                # Most filler goes in before the first chain: every query then runs over the full store.
                heads[depth] = await _fill(store, store_records if depth == DEPTHS[0] else 0, depth)
            rows = []
            for depth, head in heads.items():
                answer = queries.lineage(store, head, "backward", depth + 1, 20_000, 60_000)
                assert len(answer["nodes"]) == depth + 1 and not answer["truncated"]
                samples = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    queries.lineage(store, head, "backward", depth + 1, 20_000, 60_000)
                    samples.append((time.perf_counter() - start) * 1000)
                rows.append({"store_records": store_records, "depth": depth, "nodes": depth + 1,
                             "ms": round(statistics.median(samples), 3)})  # fmt: skip
            return rows
        finally:
            await store.close()


def run(quick: bool) -> dict[str, Any]:
    repeat = 20 if quick else 200
    cost_context = [_cost(size, 1, repeat) for size in CONTEXT_SIZES]
    cost_inputs = [_cost(32, n, repeat) for n in INPUT_COUNTS]
    large = 100_000 if quick else 1_000_000
    small = large // 20
    lineage = asyncio.run(_lineage(small, 5 if quick else 20)) + asyncio.run(_lineage(large, 5 if quick else 20))
    return {
        "cost_by_context": cost_context,
        "cost_by_inputs": cost_inputs,
        "lineage": lineage,
        "lineage_store_records": {"small": small, "large": large, "note": "quick run: 100k, not 1M" if quick else ""},
        **ledger_ingest.run(quick),
    }


def report(results: dict[str, Any]) -> str:
    lines = ["(a) cost per record (storage.create, state bytes written; ms median)"]
    for row in results["cost_by_context"] + results["cost_by_inputs"]:
        lines.append(f"  context {row['context_bytes']:>5} B  inputs {row['inputs']:>2}:  "
                     f"{row['bytes_stored']:>6} B  {row['ms_per_record']:.4f} ms")  # fmt: skip
    lines.append("(b) lineage query, backward, median ms")
    for row in results["lineage"]:
        lines.append(f"  store {row['store_records']:>9,} records  depth {row['depth']:>5}:  {row['ms']:.3f} ms")
    lines.append(
        f"(c) ingest, {results['ingest_seconds']} s, 4 nodes, f+1 endorsers: {results['ingest_readings_per_s']} "
        f"readings/s committed, latency p50 {results['ingest_latency_p50_ms']} ms, p99 "
        f"{results['ingest_latency_p99_ms']} ms (goal 2,500/s); failures {results['ingest_failures'] or 'none'}"
    )
    for name in ("light", "single"):
        if results.get(f"ingest_{name}_batch"):
            p50, p99 = results[f"ingest_{name}_latency_p50_ms"], results[f"ingest_{name}_latency_p99_ms"]
            lines.append(f"    below saturation, {results[f'ingest_{name}_batch']} reading(s) a call: latency p50 "
                         f"{p50} ms, p99 {p99} ms ({results[f'ingest_{name}_readings_per_s']} readings/s)")  # fmt: skip
    if results.get("ingest_profile_split"):
        lines.append(f"    profile split (s): {results['ingest_profile_split']}")
    lines += [f"    {row['share']:6.1%}  {row['function']}" for row in results["ingest_profile_top"][:10]]
    return "\n".join(lines)


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    ctx, inp = results["cost_by_context"], results["cost_by_inputs"]
    axes[0].plot([r["context_bytes"] for r in ctx], [r["bytes_stored"] for r in ctx], "o-", label="context")
    axes[0].plot([r["inputs"] * 200 for r in inp], [r["bytes_stored"] for r in inp], "s-", label="inputs (×200 on x)")
    axes[0].set(title="bytes stored per record", xlabel="context bytes", ylabel="bytes")
    axes[0].legend()
    axes[1].plot([r["inputs"] for r in inp], [r["ms_per_record"] for r in inp], "s-")
    axes[1].set(title="execution time per record vs inputs", xlabel="inputs", ylabel="ms")
    for size in sorted({r["store_records"] for r in results["lineage"]}):
        rows = [r for r in results["lineage"] if r["store_records"] == size]
        axes[2].loglog([r["depth"] for r in rows], [r["ms"] for r in rows], "o-", label=f"{size:,} records")
    axes[2].set(title="lineage query latency", xlabel="lineage depth", ylabel="ms")
    axes[2].legend()
    per_second = results["ingest_per_second"]
    axes[3].plot(range(1, len(per_second) + 1), per_second, "-")
    axes[3].axhline(2500, color="grey", linestyle="--", label="goal 2,500/s")
    axes[3].set(title=f"ingest: committed readings/s (p50 {results['ingest_latency_p50_ms']} ms)",
                xlabel="second", ylabel="readings/s")  # fmt: skip
    axes[3].legend()
    fig.tight_layout()
    path = out_dir / "bench_ledger.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
