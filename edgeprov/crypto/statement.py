"""The signed statement of ABS-IOT-V1 (spec §2 "Statement", mode M) and its hash c."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from edgeprov.crypto.hashing import DST_STMT, H_r

STATEMENT_VERSION = 1


@dataclass(frozen=True)
class Statement:
    """`stmt = u8(1) ‖ aa_fp ‖ pd ‖ u8(len id) ‖ id ‖ u32(epoch) ‖ u64(ctr) ‖ u64(ts_ms) ‖ u32(len msg) ‖ msg`.

    Verifiers and gateways always rebuild it from checked fields (rule G2, §3.6 step 2): no
    decoder for statement bytes exists on purpose.
    """

    aa_fp: bytes
    pd: bytes
    device_id: bytes
    epoch: int
    ctr: int
    ts_ms: int
    msg: bytes

    def __post_init__(self) -> None:
        if len(self.aa_fp) != 32 or len(self.pd) != 32:
            raise ValueError("aa_fp and pd are 32 bytes")
        if not 1 <= len(self.device_id) <= 64:
            raise ValueError("device id must be 1..64 bytes")
        if not 1 <= self.epoch < 2**32:
            raise ValueError("epoch must be a u32 >= 1")
        if not 0 <= self.ctr < 2**64 or not 0 <= self.ts_ms < 2**64:
            raise ValueError("ctr and ts_ms are u64")
        if len(self.msg) >= 2**32:
            raise ValueError("msg too long")

    def encode(self) -> bytes:
        return b"".join(
            (
                bytes([STATEMENT_VERSION]),
                self.aa_fp,
                self.pd,
                bytes([len(self.device_id)]),
                self.device_id,
                self.epoch.to_bytes(4, "big"),
                self.ctr.to_bytes(8, "big"),
                self.ts_ms.to_bytes(8, "big"),
                len(self.msg).to_bytes(4, "big"),
                self.msg,
            )
        )

    @cached_property
    def c(self) -> int:
        """c = H_r(stmt, DST_STMT)."""
        return H_r(self.encode(), DST_STMT)
