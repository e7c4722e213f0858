"""`edgeprov bench ledger` part (c): sustained ingest of pre-signed readings on a 4-node cluster.

Setup, untimed: a deterministic test system (TestRng, so the readings signed once are valid in every
later run and are cached in the temp directory), `DEVICES` devices behind one gateway, each reading
signed with ABS-IOT-V1 (device share + gateway share, spec §3.5) and one signed path hop. A 4-node
cluster is written by `init_cluster` with contracts on and started as processes; the gateway and
devices are registered and each device's first, full-form reading is committed (later readings
carry compact signatures, verified against the ledger's copy of the credential, L4), then its first
compact one, endorsed by every node so that every endorser's credential cache is warm.

Timed: `LANES` client loops share one pool of readings; each takes `BATCH` at a time and calls
`LedgerApi.submit_readings`, as a gateway does: the readings are packed into reading-batch
transactions (readings.submit_batch, one endorsement per batch), endorsed by f + 1 nodes (rotating;
one POST each; the nodes batch-verify), submitted to one of them, and waited for (POST /v1/tx/wait).
Latency is per reading, from the submit_readings call to its answer; throughput counts readings
committed inside the window. Then, below saturation, one lane submits `LIGHT_BATCH` readings at a
time, each call after the previous one's answer, for `LIGHT_S` seconds: the end-to-end latency of
a lightly loaded ledger (`ingest_light_*`), and the same one reading at a time (`ingest_single_*`).
`EDGEPROV_BENCH_PROFILE=DIR` runs every node under cProfile (dumps kept in DIR) and reports the
top functions; node logs are copied there too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pstats
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SEED = b"edgeprov bench ledger ingest v1"
DEVICES = 64
POLICY = "id and 2 of (org=acme, type=temp, site=ward-7)"
ATTRS = [b"org=acme", b"type=temp", b"site=ward-7"]
TS0 = 1_700_000_000_000
LANES = 6
PER_DEVICE = 1600  # 64 x 1598 timed readings: enough at up to ~1,600/s for 60 s; exhaustion is reported
BATCH = 250
# Transactions per block and per gossip message: reading batch transactions are ~43 KB, and the
# replica chunks tx gossip by count, so 200 keeps a gossip frame under the transport's 16 MiB limit.
BLOCK_TXS = 200
LIGHT_BATCH = 16
LIGHT_S = (5, 15)  # quick, full


# ---- the deterministic system, devices and signed readings ------------------------------------


def _system():
    from edgeprov.crypto.abs_iot import setup
    from edgeprov.crypto.rng import TestRng

    return setup(6, TestRng(SEED))


def _aa_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(SEED + b"/aa").digest())


def _gateway_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(SEED + b"/gw-1").digest())


def _device(mpk, alpha, index: int):
    from edgeprov.crypto.abs_iot import credential, keygen
    from edgeprov.crypto.policy import parse_policy
    from edgeprov.crypto.rng import TestRng

    rng = TestRng(SEED + f"/device/{index}".encode())
    policy = parse_policy(POLICY, mpk.d)
    k_iot, k_fog = keygen(mpk, alpha, f"dev{index:03d}".encode(), 1, ATTRS, rng)
    return k_iot, k_fog, policy, credential(k_fog, policy, rng), rng


def sign_readings(index: int, first: int, count: int) -> list[dict]:
    """Readings first..first+count-1 of device `index` as readings.submit args (a worker process)."""
    from edgeprov.crypto.abs_iot import Record, combine, complete, gateway_share, precompute
    from edgeprov.pathhop import sign_hop
    from edgeprov.wire import Payload

    mpk, alpha = _system()
    k_iot, k_fog, policy, cred, rng = _device(mpk, alpha, index)
    gw = _gateway_key()
    out = []
    for ctr in range(first, first + count):
        msg = Payload.of({"temp_mc": 4000 + ctr % 500}).encode()
        record = Record(k_iot.device_id, 1, ctr, TS0 + ctr, msg, policy.pd)
        stmt = record.statement(mpk.aa_fp)
        entry = precompute(mpk.h1, k_iot.G_iot, hashlib.sha256(SEED + bytes([index])).digest(), ctr, rng)
        sig = combine(complete(mpk.u1, entry, stmt.c), gateway_share(mpk, k_fog, stmt.c, rng), cred)
        hop = sign_hop(gw, "gw-1", record.ts_ms + 5, stmt)
        form = sig if ctr == 1 else sig.compact()
        out.append({"device": k_iot.device_id.decode(), "epoch": 1, "ctr": ctr, "ts_ms": record.ts_ms,
                    "msg": msg.hex(), "pd": policy.pd.hex(), "signature": form.encode().hex(),
                    "hops": [hop.to_json()]})  # fmt: skip
    return out


def registrations() -> list[dict]:
    """The gateway's and every device's AA-signed registration documents."""
    from edgeprov.registration import Registration, attributes_digest

    mpk, alpha = _system()
    aa, fp = _aa_key(), mpk.aa_fp.hex()
    gw_public = _gateway_key().public_key().public_bytes_raw().hex()
    docs = [Registration("gateway", "", 1, fp, "gw-1", issued_at_ms=TS0, public_key=gw_public).sign(aa)]
    for i in range(DEVICES):
        _, _, policy, _, _ = _device(mpk, alpha, i)
        docs.append(Registration("register", f"dev{i:03d}", 1, fp, "gw-1", POLICY, policy.pd.hex(),
                                 attributes_digest(ATTRS), TS0).sign(aa))  # fmt: skip
    return docs


def reading_pool(per_device: int, cache: Path) -> list[list[dict]]:
    """per_device readings of every device (ctr 1..per_device), signed in 2 processes, cached."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"readings-{hashlib.sha256(SEED).hexdigest()[:12]}-{DEVICES}x{per_device}.json"
    if path.exists():
        return json.loads(path.read_text())
    chunk = 50
    with ProcessPoolExecutor(2) as pool:
        jobs = [[pool.submit(sign_readings, i, first, min(chunk, per_device + 1 - first))
                 for first in range(1, per_device + 1, chunk)] for i in range(DEVICES)]  # fmt: skip
        pool_readings = [[r for job in device for r in job.result()] for device in jobs]
    path.write_text(json.dumps(pool_readings))
    return pool_readings


def write_authority(directory: Path) -> Path:
    from tools.authority import FILE_VERSION, PUBLIC_FORMAT

    mpk, _ = _system()
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"format": PUBLIC_FORMAT, "version": FILE_VERSION, "d": mpk.d, "mpk": mpk.encode().hex(),
           "aa_fp": mpk.aa_fp.hex(), "signing_public_key": _aa_key().public_key().public_bytes_raw().hex()}  # fmt: skip
    (directory / "authority.json").write_text(json.dumps(doc))
    return directory


# ---- the cluster -------------------------------------------------------------------------------


class ClusterDown(RuntimeError):
    """A node did not start (typically: another program holds one of the random ports)."""


class Cluster:
    def __init__(self, directory: Path, base_port: int, profile_dir: Path | None) -> None:
        from ledger_node.config import ContractOptions, api_urls, client_token, init_cluster

        self.configs = init_cluster(directory, 4, base_port=base_port, batch_size=BLOCK_TXS,
                                    contracts=ContractOptions(write_authority(directory / "aa")))  # fmt: skip
        self.urls, self.token = api_urls(directory), client_token(directory, "tools")
        self.profile_dir = profile_dir
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        from ledger_node.cli import node_command

        env = os.environ.copy()
        if self.profile_dir is not None:
            env["EDGEPROV_PROFILE"] = str(self.profile_dir)
        for path in self.configs:
            log = open(path.with_suffix(".log"), "w")  # noqa: SIM115
            self.procs.append(subprocess.Popen(node_command(path), stdout=log, stderr=log, env=env))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def profile(self, top: int = 25) -> tuple[list[dict], dict[str, float]]:
        """The functions with the most own time, summed over the cProfile dumps of the nodes' main
        processes and their endorsement workers; and the split: seconds busy in node loops, idle in
        them (epoll), busy in workers."""
        dumps = sorted(self.profile_dir.glob("*.prof")) if self.profile_dir else []
        if not dumps:
            return [], {}
        stats = pstats.Stats(*map(str, dumps))
        rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
        total = sum(v[2] for v in stats.stats.values())
        split = {"node_idle_s": 0.0, "node_busy_s": 0.0, "worker_busy_s": 0.0}
        for dump in dumps:
            own = pstats.Stats(str(dump)).stats
            busy = sum(v[2] for v in own.values())
            if dump.name.startswith("worker-"):
                split["worker_busy_s"] += busy - _idle(own)  # idle: waiting for the next job
            else:
                split["node_idle_s"] += _idle(own)
                split["node_busy_s"] += busy - _idle(own)
        top_rows = [{"function": f"{Path(f).name}:{line}({name})", "own_s": round(v[2], 2),
                     "cum_s": round(v[3], 2), "share": round(v[2] / total, 3)}
                    for (f, line, name), v in rows]  # fmt: skip
        return top_rows, {k: round(v, 1) for k, v in split.items()}


def _idle(stats: dict) -> float:
    """Seconds spent waiting: the event loop's epoll, or a worker's wait for its next job."""
    waits = ("<method 'poll' of 'select.epoll' objects>", "<method 'acquire' of '_thread.lock' objects>",
             "<built-in method posix.read>")  # fmt: skip
    return sum(v[2] for (_, _, name), v in stats.items() if name in waits)


async def _ready(api, cluster: Cluster) -> None:
    """Every node's API answers; ClusterDown when a node exits or stays silent for 60 s."""
    for i, (proc, config) in enumerate(zip(cluster.procs, cluster.configs, strict=True)):
        if not await _answers(api, i, proc):
            log = config.with_suffix(".log")
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            raise ClusterDown(f"node {i} API never came up; its log ends:\n{tail}")


async def _answers(api, node: int, proc: subprocess.Popen) -> bool:
    import httpx

    for _ in range(600):
        try:
            await api.status(node)
            return True
        except httpx.TransportError:
            if proc.poll() is not None:
                return False
            await asyncio.sleep(0.1)
    return False


# ---- load ----------------------------------------------------------------------------------------


async def _warm_up(api, pool: list[list[dict]]) -> None:
    from ledger_node.endorsement.proposal import make_proposal

    docs = registrations()
    for doc in docs[:1]:
        await _expect_ok(api, [make_proposal("registry", "gateway", {"doc": doc})])
    await _expect_ok(api, [make_proposal("registry", "register", {"doc": d}) for d in docs[1:]])
    await _expect_ok(api, [make_proposal("readings", "submit", device[0]) for device in pool])
    # The first compact reading per device, endorsed by every node: fills every endorser's credential
    # cache from the ledger (one pairing product per device and node, L4) before the timed part.
    await _expect_ok(api, [make_proposal("readings", "submit", device[1]) for device in pool])


async def _expect_ok(api, proposals) -> None:
    outcomes = await api.endorse_and_submit_many(proposals, wait_ms=30_000)
    bad = [o for o in outcomes if not o.ok]
    if bad:
        raise RuntimeError(f"warm-up: {len(bad)} of {len(outcomes)} not committed, e.g. {bad[0]}")


async def _drive(api, readings: list[dict], seconds: float) -> dict[str, Any]:
    queue = iter(range(0, len(readings), BATCH))
    latencies: list[float] = []
    commits: list[float] = []
    failures: dict[str, int] = {}
    start = time.perf_counter()
    end = start + seconds

    async def lane() -> None:
        for first in queue:
            if time.perf_counter() >= end:
                return
            sent = time.perf_counter()
            outcomes = await api.submit_readings(readings[first : first + BATCH], wait_ms=30_000)
            done = time.perf_counter()
            for o in outcomes:
                if o.ok:
                    latencies.append(done - sent)
                    commits.append(done - start)
                else:
                    failures[o.reason or o.status] = failures.get(o.reason or o.status, 0) + 1

    await asyncio.gather(*(lane() for _ in range(LANES)))
    in_window = [t for t in commits if t <= seconds]
    latencies.sort()
    per_second = [0] * int(seconds)
    for t in in_window:
        per_second[min(int(t), len(per_second) - 1)] += 1
    return {
        "ingest_readings_per_s": round(len(in_window) / seconds, 1),
        "ingest_latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "ingest_latency_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
        "ingest_committed": len(commits),
        "ingest_failures": failures,
        "ingest_pool_exhausted": (left := next(queue, None)) is None,
        "ingest_per_second": per_second,
        "_used": len(readings) if left is None else left,
    }


async def _light(api, readings: list[dict], seconds: float, batch: int, name: str) -> dict[str, Any]:
    """One call of `batch` readings at a time, each after the previous answer: latency below saturation."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    for first in range(0, len(readings) - batch, batch):
        if time.perf_counter() >= end:
            break
        sent = time.perf_counter()
        outcomes = await api.submit_readings(readings[first : first + batch], wait_ms=30_000)
        latencies += [time.perf_counter() - sent] * sum(o.ok for o in outcomes)
    latencies.sort()
    return {
        f"{name}_batch": batch,
        f"{name}_readings_per_s": round(len(latencies) / seconds, 1),
        f"{name}_latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        f"{name}_latency_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
    }


START_ATTEMPTS = 3


def run(quick: bool) -> dict[str, Any]:
    seconds = 15 if quick else 60
    cache = Path(tempfile.gettempdir()) / "edgeprov-bench-ledger"
    started = time.perf_counter()
    pool = reading_pool(PER_DEVICE, cache)
    signing_s = time.perf_counter() - started
    profile = Path(os.environ["EDGEPROV_BENCH_PROFILE"]) if os.environ.get("EDGEPROV_BENCH_PROFILE") else None
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            figures = _on_cluster(pool, quick, seconds, profile)
            break
        except ClusterDown:
            if attempt == START_ATTEMPTS:
                raise
    figures |= {"ingest_seconds": seconds, "ingest_devices": DEVICES, "ingest_lanes": LANES, "ingest_batch": BATCH,
                "ingest_pool": DEVICES * (PER_DEVICE - 2), "ingest_signing_s": round(signing_s, 1),
                "ingest_endorse_workers": os.environ.get("EDGEPROV_ENDORSE_WORKERS", "1")}  # fmt: skip
    return figures


def _on_cluster(pool: list[list[dict]], quick: bool, seconds: float, profile: Path | None) -> dict[str, Any]:
    """One cluster (fresh ports), warmed up, driven at saturation and then below it."""
    from ledger_node.api.client import LedgerApi
    from ledger_node.config import free_base_port

    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), free_base_port(4), profile)
        cluster.start()
        try:

            async def scenario() -> dict[str, Any]:
                async with LedgerApi(cluster.urls, cluster.token, timeout_s=120) as api:
                    await _ready(api, cluster)
                    await _warm_up(api, pool)
                    rest = [r for i in range(2, PER_DEVICE) for device in pool for r in device[i : i + 1]]
                    figures = await _drive(api, rest, seconds)
                    used, light_s = figures.pop("_used"), LIGHT_S[0] if quick else LIGHT_S[1]
                    figures |= await _light(api, rest[used:], light_s, LIGHT_BATCH, "ingest_light")
                    return figures | await _light(api, rest[used + 5000 :], light_s, 1, "ingest_single")

            figures = asyncio.run(scenario())
        finally:
            cluster.stop()
            if profile is not None:
                for path in cluster.configs:
                    shutil.copyfile(path.with_suffix(".log"), profile / path.with_suffix(".log").name)
        figures["ingest_profile_top"], figures["ingest_profile_split"] = cluster.profile()
    return figures
