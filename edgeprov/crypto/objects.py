"""Objects of ABS-IOT-V1 and their strict encodings (spec §5).

Every decoder checks version, exact length and canonical points (spec §2), so two honest
implementations never disagree about what bytes mean, and a byte string has at most one meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from py_arkworks_bls12381 import GT, G1Point, G2Point

from edgeprov.crypto.hashing import DST_CRED, DST_MPK, expand_message_xmd
from edgeprov.crypto.points import (
    G1_SIZE,
    G2_SIZE,
    JACOBIAN_SIZE,
    DecodeError,
    decode_g1,
    decode_g1_jacobian,
    decode_g2,
    decode_scalar,
    encode_g1_jacobian,
    encode_scalar,
    g1,
    g1_from_affine,
    g1_to_affine,
    g2,
)
from edgeprov.crypto.policy import default_attribute

MPK_VERSION = 1
MPK_SIZE = 2 + G1_SIZE + G2_SIZE + G1_SIZE + G1_SIZE + G2_SIZE + G2_SIZE  # 434
SIG_FULL = 0x01
SIG_COMPACT = 0x81
CRED_ID_SIZE = 32
COMPACT_SIZE = 1 + 2 * G1_SIZE + CRED_ID_SIZE  # 129
MAX_M = 512  # bounds decoding work: a policy's n + d − k never comes near this
# Every reading of a device carries the same full-form credential; decoding it (subgroup checks on
# 1+m G1 points and a G2 point) dominated endorser profiles. A bounded LRU keyed by the exact bytes
# decodes each credential once per process; only successful decodes are cached, so invalid bytes are
# re-checked (and refused) every time. Only credentials with m ≤ CACHED_CREDENTIAL_MAX_M are kept, so
# bytes from a hostile sender (identity points are valid) can pin at most ~20 MB per process.
CREDENTIAL_CACHE_SIZE = 2048
CACHED_CREDENTIAL_MAX_M = 32

# aa_fp of the §9.2 test-RNG setup (tests/unit/test_vectors.py recomputes it): a, b and α of that
# system are public, so verifiers refuse it unless explicitly in test mode (spec §3.1 step 4, F10).
TEST_AA_FP = bytes.fromhex("12955af1bd20c82dd9ca7fb9978c33702f60a76f6f5e652632f049e1a7c3e244")


@dataclass(frozen=True)
class MasterPublicKey:
    """mpk = (1, d, A1, A2, u1, h1, u2, h2) (spec §3.1); mode C is not implemented."""

    d: int
    A1: G1Point
    A2: G2Point
    u1: G1Point
    h1: G1Point
    u2: G2Point
    h2: G2Point

    def encode(self) -> bytes:
        parts = (self.A1, self.A2, self.u1, self.h1, self.u2, self.h2)
        return bytes([MPK_VERSION, self.d]) + b"".join(p.to_compressed_bytes() for p in parts)

    @cached_property
    def aa_fp(self) -> bytes:
        """AA fingerprint: XMD over the whole mpk encoding, 32 bytes (spec §2)."""
        return expand_message_xmd(self.encode(), DST_MPK, 32)

    @cached_property
    def Y(self) -> GT:
        """Y = e(A1, A2) = e(g1, g2)^α, computed once per verifier (spec §3.1 step 4)."""
        return GT.pairing(self.A1, self.A2)

    @classmethod
    def decode(cls, data: bytes, allow_test: bool = False) -> MasterPublicKey:
        """Strict decode plus the load-time checks of spec §3.1 step 4."""
        if len(data) != MPK_SIZE:
            raise DecodeError(f"mpk: expected {MPK_SIZE} bytes, got {len(data)} (mode C is not supported)")
        if data[0] != MPK_VERSION:
            raise DecodeError(f"mpk: unsupported version {data[0]}")
        if not 1 <= data[1] <= 255:
            raise DecodeError("mpk: d must be at least 1")
        pos, points = 2, []
        for name, size in (("A1", 48), ("A2", 96), ("u1", 48), ("h1", 48), ("u2", 96), ("h2", 96)):
            decode = decode_g1 if size == G1_SIZE else decode_g2
            points.append(decode(data[pos : pos + size], f"mpk.{name}"))
            pos += size
        mpk = cls(data[1], *points)
        mpk.check(allow_test)
        return mpk

    def check(self, allow_test: bool = False) -> None:
        """`e(u1,g2) = e(g1,u2)`, `e(h1,g2) = e(g1,h2)`, and not the test vectors' system."""
        if not GT.pairing_check([self.u1, -g1], [g2, self.u2]):
            raise DecodeError("mpk: u1 and u2 have different discrete logarithms")
        if not GT.pairing_check([self.h1, -g1], [g2, self.h2]):
            raise DecodeError("mpk: h1 and h2 have different discrete logarithms")
        if self.aa_fp == TEST_AA_FP and not allow_test:
            raise DecodeError("mpk: this is the public test-vector system (its secrets are known)")


@dataclass(frozen=True)
class Credential:
    """cred = (T0, (T_j)_{j∈J}, S) (spec §3.3); public and reusable for its (id, epoch, Π)."""

    T0: G1Point
    T: tuple[G1Point, ...]
    S: G2Point

    def encode(self) -> bytes:
        return self._encoding

    @cached_property
    def _encoding(self) -> bytes:
        # The object is frozen and its points immutable, so the encoding is computed once (it is
        # re-encoded for every reading's cred_id and stored credential otherwise).
        return b"".join(p.to_compressed_bytes() for p in (self.T0, *self.T)) + self.S.to_compressed_bytes()

    @cached_property
    def cred_id(self) -> bytes:
        """XMD over the canonical credential encoding (spec §2): equal bytes ⇔ equal cred_id."""
        return expand_message_xmd(self.encode(), DST_CRED, CRED_ID_SIZE)

    @classmethod
    def decode(cls, data: bytes) -> Credential:
        """`T0 ‖ T_j… ‖ S`; the number of T_j follows from the length and is checked against m by Verify.

        Served from a bounded per-process cache keyed by the exact bytes: a hit means these bytes
        already passed every strict check, and the shared object is immutable.
        """
        data = bytes(data)
        if len(data) <= (1 + CACHED_CREDENTIAL_MAX_M) * G1_SIZE + G2_SIZE:
            return _cached_credential(data)
        return _decode_credential(data)


def _decode_credential(data: bytes) -> Credential:
    """The strict decode behind Credential.decode."""
    body = len(data) - G2_SIZE
    if body < 2 * G1_SIZE or body % G1_SIZE:
        raise DecodeError(f"credential: length {len(data)} is not 48·(1+m) + 96 with m ≥ 1")
    count = body // G1_SIZE
    if count - 1 > MAX_M:
        raise DecodeError(f"credential: m = {count - 1} exceeds {MAX_M}")
    points = tuple(
        decode_g1(data[i * G1_SIZE : (i + 1) * G1_SIZE], f"credential.T[{i}]", allow_identity=True)
        for i in range(count)
    )
    S = decode_g2(data[body:], "credential.S", allow_identity=True)
    return Credential(points[0], points[1:], S)


# lru_cache never stores a call that raised, so a refused byte string is checked again every time.
_cached_credential = lru_cache(maxsize=CREDENTIAL_CACHE_SIZE)(_decode_credential)


@dataclass(frozen=True)
class Signature:
    """σ = (W, R, cred): full form `0x01 ‖ W ‖ R ‖ cred` or compact `0x81 ‖ W ‖ R ‖ cred_id` (spec §5)."""

    W: G1Point
    R: G1Point
    cred: Credential | None
    compact_cred_id: bytes | None = None

    @property
    def is_compact(self) -> bool:
        return self.cred is None

    @property
    def cred_id(self) -> bytes:
        return self.cred.cred_id if self.cred is not None else self.compact_cred_id

    def compact(self) -> Signature:
        return Signature(self.W, self.R, None, self.cred_id)

    def encode(self) -> bytes:
        head = self.W.to_compressed_bytes() + self.R.to_compressed_bytes()
        if self.cred is None:
            return bytes([SIG_COMPACT]) + head + self.compact_cred_id
        return bytes([SIG_FULL]) + head + self.cred.encode()

    @classmethod
    def decode(cls, data: bytes) -> Signature:
        if not data:
            raise DecodeError("signature: empty")
        form = data[0]
        if form not in (SIG_FULL, SIG_COMPACT):
            raise DecodeError(f"signature: unknown form/version byte 0x{form:02x}")
        if len(data) < COMPACT_SIZE:
            raise DecodeError(f"signature: {len(data)} bytes is too short")
        W = decode_g1(data[1:49], "signature.W", allow_identity=True)
        R = decode_g1(data[49:97], "signature.R")  # R ≠ O (spec §3.6 step 2)
        if form == SIG_COMPACT:
            if len(data) != COMPACT_SIZE:
                raise DecodeError(f"compact signature: expected {COMPACT_SIZE} bytes, got {len(data)}")
            return cls(W, R, None, bytes(data[97:]))
        return cls(W, R, Credential.decode(data[97:]))


@dataclass(frozen=True)
class DeviceShare:
    """The device's share (W_dev, R_dev), sent to its gateway (spec §3.5, §5)."""

    W_dev: G1Point
    R_dev: G1Point

    def encode(self, jacobian_z: int | None = None) -> bytes:
        """Compressed (96 bytes), or with a Jacobian W_dev (144 + 48) as a device that skips its inversion."""
        R = self.R_dev.to_compressed_bytes()
        if jacobian_z is None:
            return self.W_dev.to_compressed_bytes() + R
        return encode_g1_jacobian(self.W_dev, jacobian_z) + R

    @classmethod
    def decode(cls, data: bytes) -> DeviceShare:
        """Gateway rule G3: canonical compressed, or a fully validated Jacobian W_dev."""
        if len(data) == 2 * G1_SIZE:
            W = decode_g1(data[:G1_SIZE], "share.W_dev")
        elif len(data) == JACOBIAN_SIZE + G1_SIZE:
            W = decode_g1_jacobian(data[:JACOBIAN_SIZE], "share.W_dev")
        else:
            raise DecodeError(f"device share: expected 96 or 192 bytes, got {len(data)}")
        return cls(W, decode_g1(data[-G1_SIZE:], "share.R_dev"))


@dataclass(frozen=True)
class GatewayShare:
    """The gateway's share (W_gw, R_gw) (spec §3.4); computed and consumed inside the gateway."""

    W_gw: G1Point
    R_gw: G1Point


@dataclass(frozen=True)
class PoolEntry:
    """A device pool entry (s, R_dev, B_dev) (spec §3.4); secret and single-use (spec §4)."""

    s: int
    R_dev: G1Point
    B_dev: G1Point

    SIZE = 32 + 96 + 96

    def encode(self) -> bytes:
        """`s 32 ‖ R 96 ‖ B 96`, points raw affine as the device stores them (spec §5)."""
        return encode_scalar(self.s) + _affine_bytes(self.R_dev) + _affine_bytes(self.B_dev)

    @classmethod
    def decode(cls, data: bytes) -> PoolEntry:
        if len(data) != cls.SIZE:
            raise DecodeError(f"pool entry: expected {cls.SIZE} bytes, got {len(data)}")
        return cls(decode_scalar(data[:32], "pool entry s"), _affine_point(data[32:128]), _affine_point(data[128:]))


def _affine_bytes(point: G1Point) -> bytes:
    x, y = g1_to_affine(point)
    return x.to_bytes(48, "big") + y.to_bytes(48, "big")


def _affine_point(data: bytes) -> G1Point:
    return g1_from_affine(int.from_bytes(data[:48], "big"), int.from_bytes(data[48:], "big"))


@dataclass(frozen=True)
class KIot:
    """K_iot = (id, epoch, G_iot = [x_iot]g1) (spec §3.2 step 5)."""

    device_id: bytes
    epoch: int
    G_iot: G1Point


@dataclass(frozen=True)
class KFog:
    """K_fog = (id, epoch, G_gw, k_nonce, (D0, D0'), {a: (D_a, D_a')}) (spec §3.2 step 5).

    `leaves` covers L = sort(A_dev) ‖ (ω_1..ω_{d−1}); `attrs` is A_dev.
    """

    device_id: bytes
    epoch: int
    G_gw: G1Point
    k_nonce: bytes
    D0: G2Point
    D0p: G1Point
    leaves: dict[bytes, tuple[G2Point, G1Point]]

    @property
    def attrs(self) -> tuple[bytes, ...]:
        return tuple(a for a in self.leaves if not a.startswith(b"\x00"))

    def encode(self) -> bytes:
        """`u8 1 ‖ u8 len id ‖ id ‖ u32 epoch ‖ G_gw ‖ k_nonce ‖ D0 ‖ D0' ‖ u16 count ‖ (u8 len a ‖ a ‖ D ‖ D')…`."""
        out = bytearray([1, len(self.device_id)]) + self.device_id + self.epoch.to_bytes(4, "big")
        out += self.G_gw.to_compressed_bytes() + self.k_nonce
        out += self.D0.to_compressed_bytes() + self.D0p.to_compressed_bytes()
        out += len(self.leaves).to_bytes(2, "big")
        for attr, (D, Dp) in self.leaves.items():
            out += bytes([len(attr)]) + attr + D.to_compressed_bytes() + Dp.to_compressed_bytes()
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> KFog:
        reader = Reader(data, "K_fog")
        if reader.u8() != 1:
            raise DecodeError("K_fog: unsupported version")
        device_id = reader.take(reader.u8())
        epoch = reader.int(4)
        G_gw = decode_g1(reader.take(48), "K_fog.G_gw")
        k_nonce = reader.take(32)
        D0 = decode_g2(reader.take(96), "K_fog.D0")
        D0p = decode_g1(reader.take(48), "K_fog.D0'")
        leaves = {}
        for _ in range(reader.int(2)):
            attr = reader.take(reader.u8())
            if attr in leaves:
                raise DecodeError(f"K_fog: leaf {attr!r} appears twice")
            leaves[attr] = (decode_g2(reader.take(96), "K_fog.D"), decode_g1(reader.take(48), "K_fog.D'"))
        reader.end()
        names = list(leaves)
        regular = [a for a in names if not a.startswith(b"\x00")]
        omegas = [default_attribute(j) for j in range(1, len(names) - len(regular) + 1)]
        if names != sorted(set(regular)) + omegas:
            raise DecodeError("K_fog: leaves must be sort(A_dev) ‖ ω_1..ω_{d−1}, each once")
        return cls(device_id, epoch, G_gw, k_nonce, D0, D0p, leaves)


class Reader:
    """Bounds-checked reading of a byte string; every overrun is a DecodeError naming the object."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = bytes(data), 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError(f"{self.what}: truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def int(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise DecodeError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")
