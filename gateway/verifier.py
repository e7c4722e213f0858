"""Rule G7 (spec §3.5): verify the combined signature before relaying, off the event loop.

The check runs in a ProcessPoolExecutor (pairings hold the GIL for milliseconds). Arguments cross
the process boundary as bytes and text; each worker caches decoded mpk and policies.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

from edgeprov.crypto.abs_iot import Record, RegistryEntry, SignatureRejected, verify
from edgeprov.crypto.objects import MasterPublicKey, Signature
from edgeprov.crypto.policy import RegistryPolicy, parse_policy
from edgeprov.crypto.statement import Statement
from gateway.devices import DeviceKey


@lru_cache(maxsize=64)
def _system(mpk: bytes, policy: str, allow_test: bool) -> tuple[MasterPublicKey, RegistryPolicy]:
    decoded = MasterPublicKey.decode(mpk, allow_test=allow_test)
    return decoded, parse_policy(policy, decoded.d)


def check(mpk: bytes, policy: str, allow_test: bool, record: tuple, signature: bytes) -> str | None:
    """Worker side: None if the signature verifies, else the rejection reason."""
    system, registry = _system(mpk, policy, allow_test)
    rec = Record(*record)
    try:
        verify(system, RegistryEntry(rec.device_id, rec.epoch, registry), rec, Signature.decode(signature))
    except SignatureRejected as exc:
        return exc.reason
    return None


class Verifier:
    def __init__(self, workers: int, allow_test: bool) -> None:
        self.pool = ProcessPoolExecutor(max_workers=workers)
        self.allow_test = allow_test

    async def check(self, device: DeviceKey, stmt: Statement, signature: bytes) -> str | None:
        record = (stmt.device_id, stmt.epoch, stmt.ctr, stmt.ts_ms, stmt.msg, stmt.pd, device.disclosed)
        bundle = device.bundle
        args = (bundle.mpk.encode(), str(bundle.policy), self.allow_test, record, signature)
        return await asyncio.get_running_loop().run_in_executor(self.pool, check, *args)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
