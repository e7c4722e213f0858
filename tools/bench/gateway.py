"""`edgeprov bench gateway`: the gateway's relay cost per reading, in-process, without MQTT or the ledger.

A LocalFleet folder is created (keys, device bundles, gateway.toml; no process is started) and the
devices pre-sign their readings (tools/loadgen.py). Then the gateway's own code (gateway/service.py
`Gateway`: `sessions.admit`, `signer.sign`, `entry`, `store.add`) relays them, as `handle` does for
an MQTT frame (DESIGN.md §2 step 4, spec §3.5 Flow M):

- one at a time: per stage (session check, gateway share + combine, path hop + transaction, durable
  store) and the whole relay, `relay_ms_p50` = frame in -> reading durable in the outbox, which is
  when the gateway PUBACKs and sends ACK_RELAYED;
- all at once: admit and sign in arrival order while the store batches the writes, as under load;
  `relay_readings_per_s_one_core` is the gateway's intake ceiling on one core (MQTT not included).

The process-pool question for the gateway share (should G5 leave the event loop?): `gateway_share_ms`
is the share itself (abs_iot.gateway_share, CPU on the loop today) and `pool_round_trip_ms` what the
loop would pay instead to hand one job of the same size to a ProcessPoolExecutor and get it back.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from edgeprov import wire
from edgeprov.crypto.abs_iot import gateway_share
from gateway.config import load_config
from gateway.service import Gateway
from tools import loadgen
from tools.fleet import GATEWAY, LocalFleet

FULL = {"devices": 16, "readings_per_device": 64}
QUICK = {"devices": 8, "readings_per_device": 32}
TS0 = 1_790_000_000_000


def _frames(fleet: LocalFleet, per_device: int) -> list[tuple[str, bytes]]:
    """(topic, frame) of every device's pre-signed readings, interleaved as devices would publish."""
    per = []
    for device in loadgen.fleet_devices(fleet):
        stamps = [TS0 + 500 * k for k in range(per_device)]
        frames = loadgen.presign(device.signer(), stamps, list(range(per_device)))
        per.append([(wire.topic(GATEWAY, device.device_id, "reading"), frame) for _, frame in frames])
    return [item for round_ in zip(*per, strict=True) for item in round_]


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


async def _one_at_a_time(gw: Gateway, frames: list[tuple[str, bytes]]) -> dict:
    stages: dict[str, list[float]] = {"admit": [], "sign": [], "entry": [], "store": [], "relay": [], "share": []}
    for topic, frame in frames:
        t0 = time.perf_counter()
        admitted = await gw.sessions.admit(topic, frame)
        t1 = time.perf_counter()
        signed = gw.signer.sign(admitted.device, admitted.reading)
        t2 = time.perf_counter()
        entry = gw.entry(admitted, signed, int(time.time() * 1000))
        t3 = time.perf_counter()
        await gw.store.add(entry)
        t4 = time.perf_counter()
        device = admitted.device
        gateway_share(device.bundle.mpk, device.bundle.k_fog, signed.statement.c)
        t5 = time.perf_counter()
        for name, span in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, t5 - t4), strict=True):
            stages[name].append(span)
    return {
        "session_check_ms": _ms(stages["admit"]),
        "sign_ms": _ms(stages["sign"]),
        "gateway_share_ms": _ms(stages["share"]),
        "hop_and_transaction_ms": _ms(stages["entry"]),
        "store_durable_ms": _ms(stages["store"]),
        "relay_ms_p50": _ms(stages["relay"]),
        "relay_ms_p99": round(sorted(stages["relay"])[int(0.99 * (len(stages["relay"]) - 1))] * 1000, 3),
    }


async def _all_at_once(gw: Gateway, frames: list[tuple[str, bytes]]) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    writes = []
    for topic, frame in frames:
        admitted = await gw.sessions.admit(topic, frame)
        signed = gw.signer.sign(admitted.device, admitted.reading)
        writes.append(gw.store.add(gw.entry(admitted, signed, int(time.time() * 1000))))
    await asyncio.gather(*writes)
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    return {
        "relay_readings_per_s_one_core": round(len(frames) / wall, 1),
        "relay_cpu_ms_per_reading": round(1000 * used / len(frames), 3),
    }


def _pool_round_trip_ms(payload: bytes, rounds: int) -> float:
    """Median wall time to send `payload` to a warm worker process and get as much back."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1) as pool:
        pool.submit(bytes, payload).result()  # start the worker
        spans = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            pool.submit(bytes, payload).result()
            spans.append(time.perf_counter() - t0)
    return _ms(spans)


async def _measure(fleet: LocalFleet, cfg: dict) -> dict:
    frames = _frames(fleet, cfg["readings_per_device"])
    half = len(frames) // 2
    gw = Gateway(load_config(fleet.gateway_toml))
    await gw.open()
    try:
        sequential = await _one_at_a_time(gw, frames[:half])
        concurrent = await _all_at_once(gw, frames[half:])
    finally:
        await gw.store.close()
        await gw.link.close()
    # a job as large as the share's inputs and outputs: statement, device share, signature (~1 kB)
    return {**sequential, **concurrent, "pool_round_trip_ms": _pool_round_trip_ms(bytes(1024), 200)}


def run(quick: bool) -> dict:
    cfg = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="edgeprov-bench-gateway-") as tmp:
        fleet = LocalFleet(Path(tmp) / "fleet")
        fleet.create(devices=cfg["devices"], device_kind="cpython")
        results = asyncio.run(_measure(fleet, cfg))
    return {"devices": cfg["devices"], "readings": cfg["devices"] * cfg["readings_per_device"], **results}


def report(results: dict) -> str:
    return "\n".join(
        [
            f"gateway relay, in-process ({results['readings']} readings of {results['devices']} devices; "
            "no MQTT, no ledger), medians:",
            f"  session check {results['session_check_ms']} ms, sign {results['sign_ms']} ms "
            f"(gateway share alone {results['gateway_share_ms']} ms), hop + transaction "
            f"{results['hop_and_transaction_ms']} ms, durable store {results['store_durable_ms']} ms",
            f"  relay (frame -> durable) p50 {results['relay_ms_p50']} ms, p99 {results['relay_ms_p99']} ms "
            "(budget p50 <= 2 ms)",
            f"  under load (store batching): {results['relay_readings_per_s_one_core']:,} readings/s on one core, "
            f"{results['relay_cpu_ms_per_reading']} ms CPU per reading",
            f"  process pool round trip for a share-sized job: {results['pool_round_trip_ms']} ms "
            f"(vs {results['gateway_share_ms']} ms for the share on the loop)",
        ]
    )


def plot(results: dict, out_dir: Path) -> list[Path]:
    return []  # a handful of figures: the report and the JSON say it all
