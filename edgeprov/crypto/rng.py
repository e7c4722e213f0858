"""Randomness for ABS-IOT-V1: the OS CSPRNG, and the deterministic test RNG of spec §9.2.

The test RNG makes a, b and α public: production tools refuse it (spec §3.1 step 3, review F10).
"""

from __future__ import annotations

import secrets
from typing import Protocol

from edgeprov.crypto.hashing import DST_TESTRNG, H_r, expand_message_xmd
from edgeprov.crypto.points import R

# Seed of the published vectors (spec §9.2); the system it creates has aa_fp = objects.TEST_AA_FP.
TEST_VECTOR_SEED = b"edgeprov ABS-IOT-V1 test vectors"


class Rng(Protocol):
    is_test: bool

    def scalar(self) -> int:
        """A uniform element of Z_r* (never 0)."""

    def random_bytes(self, n: int) -> bytes: ...


class SystemRng:
    """The OS CSPRNG (`secrets`)."""

    is_test = False

    def scalar(self) -> int:
        return secrets.randbelow(R - 1) + 1

    def random_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)


class TestRng:
    """Spec §9.2: the i-th scalar is H_r(seed ‖ u32(i), "ABS-IOT-V1-TESTRNG"), zero skipped.

    Bytes use the same counter: XMD(seed ‖ u32(i), "ABS-IOT-V1-TESTRNG", n) (our definition, shared
    with the firmware's vectors). Deterministic, public, and for tests and vectors only.
    """

    is_test = True
    __test__ = False  # not a pytest class

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.i = 0

    def _next_input(self) -> bytes:
        data = self.seed + self.i.to_bytes(4, "big")
        self.i += 1
        return data

    def scalar(self) -> int:
        while True:
            value = H_r(self._next_input(), DST_TESTRNG)
            if value:
                return value

    def random_bytes(self, n: int) -> bytes:
        return expand_message_xmd(self._next_input(), DST_TESTRNG, n)


class DeadRng(SystemRng):
    """A broken RNG that returns constant bytes: used to show the derived gateway nonce survives it (F5)."""

    def random_bytes(self, n: int) -> bytes:
        return bytes(n)
