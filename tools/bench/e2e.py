"""`edgeprov bench e2e`: the whole system on one box, the first seed paper's experiments (§IV).

A LocalFleet (tools/fleet.py) in a temp folder: real Mosquitto with TLS and ACLs, the gateway
(ApiLink), 4 ledger nodes with contracts and the HTTP API, every device registered on the ledger.
The devices are CPython load generators (tools/loadgen.py) using the devices' own provisioned
keys and broker accounts; none runs the MicroPython firmware here (`device_kind` in the JSON).

(a) 1 to 50 devices at 2 readings/s each;
(b) 30 devices, per-device rate stepped from 10 to 300 readings/s;
(c) saturation: 30 devices offered 2x the best committed rate of (b) for 60 s, with the CPU
    of every process (broker, gateway, each node, load generator) over that window from
    /proc/<pid>/stat (each process with its children); then a run at half that rate gives the
    latency below saturation, which is what the DESIGN.md §6 budget is about.

Latency is per reading: device publish call -> ACK_COMMITTED received by the device (see
tools/loadgen.py and tools/bench/README.md for exactly what the Ack means). A device keeps at
most 64 readings without an outcome and skips scheduled readings beyond that (counted), so
overload shows as a bounded queue. Between steps the bench waits for the gateway's outbox to
empty, so one step's backlog is not measured in the next.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tools import loadgen
from tools.fleet import HOST, LocalFleet

NODES = 4
BUDGET_RATE = 1000.0  # DESIGN.md §6: one-box end-to-end committed readings/s
BUDGET_P50_MS, BUDGET_P99_MS = 50.0, 250.0  # publish -> commit, below saturation
PRESIGN_RATE = 2500.0  # readings/s pre-signed per step at most, 2.5x the budget; see _step
WARMUP_S = 3.0  # every device at the (a) rate first, so caches are warm (_experiments)
SATURATION_FACTOR = 2.0  # (c) offers this times the best committed rate of (a)/(b)
FULL = {
    "devices": 50,
    "a_counts": (1, 5, 10, 20, 30, 40, 50),
    "a_rate": 2.0,
    "a_step_s": 10.0,
    "b_devices": 30,
    "b_rates": (10.0, 25.0, 50.0, 100.0, 200.0, 300.0),
    "b_step_s": 8.0,
    "sat_s": 60.0,
    "below_s": 20.0,
    "drain_s": 15.0,
    "procs": 2,
}
QUICK = {
    "devices": 10,
    "a_counts": (1, 10),
    "a_rate": 2.0,
    "a_step_s": 3.0,
    "b_devices": 10,
    "b_rates": (10.0, 50.0),
    "b_step_s": 3.0,
    "sat_s": 5.0,
    "below_s": 0.0,
    "drain_s": 5.0,
    "procs": 2,
}
MEASURED = (
    "per reading: device publish call -> ACK_COMMITTED received by the device; the gateway sends it "
    "when the ledger node it waits on (one batched wait per batch) reports the reading's block committed "
    "(a 2f+1 commit certificate exists and that node has applied the block)"
)
TICK = os.sysconf("SC_CLK_TCK")
GATEWAY_COUNTERS = ("edgeprov_gateway_submitted", "edgeprov_gateway_resubmitted", "edgeprov_gateway_submit_failures",
                    "edgeprov_gateway_committed", "edgeprov_gateway_relayed")  # fmt: skip
GATEWAY_HISTOGRAMS = {"edgeprov_gateway_relay_seconds", "edgeprov_gateway_batch_readings",
                      "edgeprov_gateway_submit_seconds", "edgeprov_gateway_outcome_seconds"}  # fmt: skip
NODE_COUNTERS = ("edgeprov_ledger_height", "edgeprov_ledger_committed_txs")  # node0: blocks, transactions


# ---- CPU per process tree, from /proc/<pid>/stat ------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, utime + stime in s) for every live process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # it exited meanwhile
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return table


def _tree_cpu(table: dict[int, tuple[int, float]], root: int) -> float:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += table.get(pid, (0, 0.0))[1]
        stack += children.get(pid, [])
    return total


def scrape(url: str, families: set[str]) -> dict[str, float]:
    """Sum of each wanted Prometheus family's samples at `url` (counters and gauges); {} when down."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name not in families:
            continue
        if family.type == "histogram":  # its total and its count, as <name>_sum and <name>_count
            out |= {s.name: s.value for s in family.samples if s.name.endswith(("_sum", "_count"))}
        else:
            out[family.name] = sum(s.value for s in family.samples if not s.name.endswith("_created"))
    return out


def _gateway_split(before: dict[str, float], after: dict[str, float]) -> dict:
    """Means over a step from two scrapes of the gateway's histograms: per reading, the gateway's own
    relay (frame received -> durably stored); per batch, its size, the ledger API's endorsement and
    submission, and ordering + commit (submitted -> last outcome)."""

    def mean(name: str, scale: float = 1.0) -> float | None:
        count = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
        total = after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
        return round(scale * total / count, 2) if count else None

    return {
        "gateway_relay_ms_mean": mean("edgeprov_gateway_relay_seconds", 1000),
        "batch_readings_mean": mean("edgeprov_gateway_batch_readings"),
        "ledger_endorse_submit_ms_mean": mean("edgeprov_gateway_submit_seconds", 1000),
        "ledger_order_commit_ms_mean": mean("edgeprov_gateway_outcome_seconds", 1000),
    }


class Sampler(threading.Thread):
    """Every `period_s`: CPU seconds of named process trees, and counters of the gateway and node0.

    `load generator` is this process's tree minus the fleet's: the spawned loadgen workers (and
    this bench, idle meanwhile but for this thread).
    """

    def __init__(self, roots: dict[str, int], metrics: dict[str, str], period_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots, self.metrics, self.period_s = roots, metrics, period_s
        self.samples: list[tuple[float, dict[str, float], dict[str, float]]] = []
        self.halt = threading.Event()

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        table = _proc_table()
        cpu = {name: _tree_cpu(table, pid) for name, pid in self.roots.items()}
        cpu["load generator"] = _tree_cpu(table, os.getpid()) - sum(cpu.values())
        counters: dict[str, float] = {}
        for url in set(self.metrics.values()):
            counters |= scrape(url, {f for f, u in self.metrics.items() if u == url})
        return cpu, counters

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.time(), *self.snapshot()))
            self.halt.wait(self.period_s)

    def profile(self, start: float, end: float) -> dict:
        """CPU as % of one core per tree, and counter rates per s, over [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        (t0, cpu0, m0), (t1, cpu1, m1) = inside[0], inside[-1]
        span = t1 - t0
        rates = {name: round((m1[name] - m0[name]) / span, 2) for name in m1.keys() & m0.keys()}
        return {
            "cpu_percent_of_one_core": {n: round(100 * (cpu1[n] - cpu0[n]) / span, 1) for n in cpu0},
            "per_s": rates,
        }


# ---- the fleet ----------------------------------------------------------------------------------


def _gateway_outbox(fleet: LocalFleet) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{fleet.state.gateway_http}/healthz", timeout=2) as answer:
            return int(json.loads(answer.read())["outbox"])
    except urllib.error.HTTPError as error:  # 503 while the broker is unreachable: the body still says
        return int(json.loads(error.read())["outbox"])
    except OSError:
        return None


def _quiesce(fleet: LocalFleet, limit_s: float) -> int | None:
    """Wait until the gateway's outbox is empty (bounded); returns what is left."""
    deadline = time.monotonic() + limit_s
    while (left := _gateway_outbox(fleet)) != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _step(fleet: LocalFleet, cfg: dict, names: list[str], rate: float, duration: float) -> tuple[loadgen.Result, dict]:
    """One load step; its result and the gateway's split of where the time went (_gateway_split)."""
    # Pre-sign at most PRESIGN_RATE readings/s in all: beyond what the system commits they would be
    # skipped anyway (the device limit), and signing them is what makes a step slow to start.
    frames = math.ceil(min(rate, PRESIGN_RATE / len(names)) * duration) + loadgen.Load.max_outstanding
    load = loadgen.Load(rate, duration, drain_s=cfg["drain_s"], max_frames=frames)
    devices = loadgen.fleet_devices(fleet, names)
    metrics = f"http://{HOST}:{fleet.state.gateway_http}/metrics"
    before = scrape(metrics, GATEWAY_HISTOGRAMS)
    result = loadgen.run_load(loadgen.fleet_broker(fleet), devices, load, cfg["procs"])
    dead = [c.name for c in fleet.group.dead()]
    if dead:
        raise RuntimeError(f"fleet processes died during the bench: {dead}; logs in {fleet.logs}")
    _quiesce(fleet, cfg["drain_s"])
    return result, _gateway_split(before, scrape(metrics, GATEWAY_HISTOGRAMS))


def _where_time_goes(profile: dict) -> dict:
    rates = profile.get("per_s", {})
    blocks, txs = rates.get("edgeprov_ledger_height"), rates.get("edgeprov_ledger_committed_txs")
    return {
        "cpu_percent_of_one_core": profile.get("cpu_percent_of_one_core", {}),
        "counters_per_s": rates,
        "ledger_blocks_per_s": blocks,
        "ledger_txs_per_block": round(txs / blocks, 1) if blocks and txs is not None else None,
    }


def _summary(step: tuple[loadgen.Result, dict]) -> dict:
    result, split = step
    return {"device_kind": "cpython-loadgen", **result.summary(), "where_time_goes": split}


def _timeline(result: loadgen.Result) -> list[tuple[int, int]]:
    """Committed readings per second of the run, by the second their ACK_COMMITTED arrived."""
    per_second: dict[int, int] = {}
    for s in result.samples:
        if s.status == loadgen.COMMITTED:
            second = int(s.sent + s.outcome_s - result.start)
            per_second[second] = per_second.get(second, 0) + 1
    return sorted(per_second.items())


def _experiments(fleet: LocalFleet, cfg: dict) -> dict:
    names = fleet.state.devices
    # Warm-up, not measured: a node verifies a device's credential once (full-form signature, L4) and
    # the gateway endorses on f+1 rotating nodes, so every node meets every device in a few batches.
    warmup = _summary(_step(fleet, cfg, names, cfg["a_rate"], WARMUP_S))
    out: dict = {"warmup": warmup, "a_devices_steps": [], "b_rate_steps": []}
    for count in cfg["a_counts"]:
        out["a_devices_steps"].append(_summary(_step(fleet, cfg, names[:count], cfg["a_rate"], cfg["a_step_s"])))
    group = names[: cfg["b_devices"]]
    for rate in cfg["b_rates"]:
        out["b_rate_steps"].append(_summary(_step(fleet, cfg, group, rate, cfg["b_step_s"])))
    best = max(p["committed_readings_per_s"] for p in out["b_rate_steps"] + out["a_devices_steps"])
    sat_rate = max(1.0, round(SATURATION_FACTOR * best / len(group), 1))
    roots = {name: fleet.group.children[name].proc.pid for name in ("mosquitto", "gateway")}
    roots |= {f"node{i}": fleet.group.children[f"node{i}"].proc.pid for i in range(NODES)}
    gateway_metrics = f"http://{HOST}:{fleet.state.gateway_http}/metrics"
    sampler = Sampler(
        roots,
        {f: gateway_metrics for f in GATEWAY_COUNTERS} | dict.fromkeys(NODE_COUNTERS, fleet.state.metrics_urls[0]),
    )
    sampler.start()
    try:
        saturated, split = _step(fleet, cfg, group, sat_rate, cfg["sat_s"])
    finally:
        sampler.halt.set()
        sampler.join()
    out["c_saturation"] = {
        **_summary((saturated, split)),
        **_where_time_goes(sampler.profile(saturated.start, saturated.start + cfg["sat_s"])),
        "committed_timeline": _timeline(saturated),
    }
    if cfg["below_s"]:
        below_rate = max(0.5, round(0.5 * out["c_saturation"]["committed_readings_per_s"] / len(group), 2))
        out["c_below_saturation"] = _summary(_step(fleet, cfg, group, below_rate, cfg["below_s"]))
    return out


def run(quick: bool) -> dict:
    cfg = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="edgeprov-bench-e2e-") as tmp:
        fleet = LocalFleet(Path(tmp) / "fleet")
        fleet.create(devices=cfg["devices"], interval_ms=500, device_kind="cpython")
        try:
            fleet.start(devices=[])
            results = _experiments(fleet, cfg)
        finally:
            fleet.stop()
    sat = results["c_saturation"]
    below = results.get("c_below_saturation") or min(
        results["a_devices_steps"], key=lambda p: p["offered_readings_per_s"]
    )
    return {
        "nodes": NODES,
        "device_kind": "cpython-loadgen",
        "micropython_devices": 0,
        "latency_measured": MEASURED,
        "e2e_committed_readings_per_s": sat["committed_readings_per_s"],
        "e2e_latency_p50_ms": sat["latency_p50_ms"],
        "e2e_latency_p99_ms": sat["latency_p99_ms"],
        "e2e_below_saturation_offered_readings_per_s": below["offered_readings_per_s"],
        "e2e_below_saturation_latency_p50_ms": below["latency_p50_ms"],
        "e2e_below_saturation_latency_p99_ms": below["latency_p99_ms"],
        "budget_committed_readings_per_s": BUDGET_RATE,
        "budget_latency_p50_ms": BUDGET_P50_MS,
        "budget_latency_p99_ms": BUDGET_P99_MS,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        **results,
    }


# ---- report and plots ----------------------------------------------------------------------------


def _row(p: dict, label: str) -> str:
    def ms(v: float | None) -> str:
        return f"{v:>8.1f}" if v is not None else "       -"

    return (
        f"    {label:<22} offered {p['offered_readings_per_s']:>7,.0f}/s"
        f"  published {p['published_readings_per_s']:>7,.0f}/s"
        f"  committed {p['committed_readings_per_s']:>7,.1f}/s  p50 {ms(p['latency_p50_ms'])} ms"
        f"  p99 {ms(p['latency_p99_ms'])} ms  skipped {p['skipped_at_device_limit']}"
        f"  rejected {p['rejected']}  no outcome {p['no_outcome']}"
        + (f"  not pre-signed {unsigned}" if (unsigned := p["slots_without_presigned_reading"]) else "")
        + _split(p.get("where_time_goes", {}))
    )


def _split(split: dict) -> str:
    if not split.get("batch_readings_mean"):
        return ""
    return (
        f"\n      gateway relay {split['gateway_relay_ms_mean']} ms/reading; batches of {split['batch_readings_mean']}"
        f" readings: ledger endorse+submit {split['ledger_endorse_submit_ms_mean']} ms,"
        f" order+commit {split['ledger_order_commit_ms_mean']} ms (means)"
    )


def report(results: dict) -> str:
    sat = results["c_saturation"]
    lines = [
        f"e2e: Mosquitto (TLS, ACLs) + gateway + {results['nodes']} ledger nodes + "
        f"{results['config']['devices']} devices ({results['device_kind']}, MicroPython: "
        f"{results['micropython_devices']}), one machine",
        f"  latency: {results['latency_measured']}",
        "  (a) devices at 2 readings/s each:",
        *(_row(p, f"{p['devices']} devices") for p in results["a_devices_steps"]),
        f"  (b) {results['config']['b_devices']} devices, per-device rate stepped:",
        *(_row(p, f"{p['rate_per_device']:g}/s per device") for p in results["b_rate_steps"]),
        f"  (c) saturation, {sat['duration_s']:g} s:",
        _row(sat, f"{sat['rate_per_device']:g}/s per device"),
    ]
    if "c_below_saturation" in results:
        lines.append(_row(results["c_below_saturation"], "half of saturation"))
    cpu = sat["cpu_percent_of_one_core"]
    lines.append(
        "  CPU at saturation (% of one core, 2 cores = 200 %): " + ", ".join(f"{k} {v}" for k, v in cpu.items())
    )
    lines.append(
        f"  ledger at saturation: {sat['ledger_blocks_per_s']} blocks/s of {sat['ledger_txs_per_block']} transactions; "
        "counters/s: " + ", ".join(f"{k.removeprefix('edgeprov_')} {v}" for k, v in sat["counters_per_s"].items())
    )
    lines += [
        f"  committed at saturation   {results['e2e_committed_readings_per_s']:>9,.1f} readings/s  "
        f"(budget >= {results['budget_committed_readings_per_s']:,.0f})",
        f"  below saturation ({results['e2e_below_saturation_offered_readings_per_s']:g}/s offered): "
        f"p50 {results['e2e_below_saturation_latency_p50_ms']} ms (budget <= {results['budget_latency_p50_ms']:g}), "
        f"p99 {results['e2e_below_saturation_latency_p99_ms']} ms (budget <= {results['budget_latency_p99_ms']:g})",
    ]
    return "\n".join(lines)


def plot(results: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    a, b = results["a_devices_steps"], results["b_rate_steps"]
    _rate_and_latency(axes[0][0], [p["devices"] for p in a], a, "devices (2 readings/s each)", "(a) devices")
    _rate_and_latency(axes[0][1], [p["offered_readings_per_s"] for p in b], b, "offered readings/s", "(b) 30 devices")
    sat = results["c_saturation"]
    timeline = sat["committed_timeline"]
    seconds, counts = zip(*timeline, strict=True) if timeline else ((), ())
    axes[1][0].plot(seconds, counts, marker=".")
    axes[1][0].axhline(BUDGET_RATE, color="grey", linestyle="--", label=f"budget {BUDGET_RATE:,.0f}/s")
    axes[1][0].set_xlabel("time (s)")
    axes[1][0].set_ylabel("committed readings/s")
    axes[1][0].set_title(f"(c) saturation: {sat['committed_readings_per_s']:,.1f}/s")
    axes[1][0].legend()
    cpu = sat["cpu_percent_of_one_core"]
    axes[1][1].barh(list(cpu), list(cpu.values()))
    axes[1][1].set_xlabel("% of one core (2 cores = 200 %)")
    axes[1][1].set_title("CPU per process at saturation")
    fig.tight_layout()
    path = out_dir / "e2e.png"
    fig.savefig(path)
    plt.close(fig)
    return [path]


def _rate_and_latency(ax, xs: list[float], points: list[dict], xlabel: str, title: str) -> None:
    ax.plot(xs, [p["committed_readings_per_s"] for p in points], marker="o", label="committed/s")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("committed readings/s")
    ax.set_title(title)
    twin = ax.twinx()
    for key, style in (("latency_p50_ms", "s--"), ("latency_p99_ms", "^:")):
        twin.plot(xs, [p[key] or float("nan") for p in points], style, color="tab:red", label=key)
    twin.axhline(BUDGET_P50_MS, color="grey", linestyle="--")
    twin.set_yscale("log")
    twin.set_ylabel("publish -> commit latency (ms)")
    ax.legend(loc="upper left")
    twin.legend(loc="lower right")
