"""Group constants and the strict point and scalar codecs of spec §2 ("Encodings") and §5.

Decoders reject non-canonical, off-curve, out-of-subgroup and (where asked) identity points.
py-arkworks-bls12381 0.5.0 decodes `0xc0‖0…01` and `0xe0‖0…0` to O (review F6), so every decode
re-encodes and compares the bytes: only the canonical encoding of a point is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

# BLS12-381 base field modulus p and prime group order r.
P = 0x1A0111EA397FE69A4B1BA7B6434BACD764774B84F38512BF6730D2A0F6B0F6241EABFFFEB153FFFFB9FEFFFFFFFFAAAB
R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

G1_SIZE = 48
G2_SIZE = 96
SCALAR_SIZE = 32
JACOBIAN_SIZE = 3 * 48

g1 = G1Point()
g2 = G2Point()
O1 = G1Point.identity()
O2 = G2Point.identity()
O1_BYTES = b"\xc0" + bytes(G1_SIZE - 1)
O2_BYTES = b"\xc0" + bytes(G2_SIZE - 1)


class DecodeError(ValueError):
    """Bytes that are not the canonical encoding of what was expected."""


def sc(x: int) -> Scalar:
    """An integer mod r as an arkworks Scalar (all scalar arithmetic is done on Python ints)."""
    return Scalar(x % R)


def gt_power_product(bases: Sequence[GT], exponents: Sequence[int]) -> GT:
    """Π_k b_k^{e_k} for integers e_k ≥ 0 (Straus: one shared squaring chain, 4-bit windows).

    py-arkworks' GT offers only the group operation (written `*`), so powers are built from it:
    about 136 squarings for 128-bit exponents plus ~46 products per base.
    """
    w, mask = 4, 15
    tables = []
    for b in bases:
        row = [b]
        for _ in range(mask - 1):
            row.append(row[-1] * b)
        tables.append(row)  # row[j] = b^(j+1)
    top = max((e.bit_length() for e in exponents), default=0)
    acc = GT.one()
    for shift in range(-(-top // w) * w - w, -1, -w):
        for _ in range(w):
            acc = acc * acc
        for row, e in zip(tables, exponents, strict=True):
            digit = (e >> shift) & mask
            if digit:
                acc = acc * row[digit - 1]
    return acc


def decode_g1(data: bytes, what: str = "G1 point", allow_identity: bool = False) -> G1Point:
    """Canonical 48-byte compressed G1 point, on the curve and in the r-order subgroup."""
    return _decode(G1Point, data, G1_SIZE, O1_BYTES, what, allow_identity)


def decode_g2(data: bytes, what: str = "G2 point", allow_identity: bool = False) -> G2Point:
    """Canonical 96-byte compressed G2 point, on the curve and in the r-order subgroup."""
    return _decode(G2Point, data, G2_SIZE, O2_BYTES, what, allow_identity)


def _decode(cls, data: bytes, size: int, o_bytes: bytes, what: str, allow_identity: bool):
    if len(data) != size:
        raise DecodeError(f"{what}: expected {size} bytes, got {len(data)}")
    data = bytes(data)
    if data == o_bytes:
        if not allow_identity:
            raise DecodeError(f"{what}: the identity is not allowed here")
        return cls.identity()
    try:
        point = cls.from_compressed_bytes(data)
    except ValueError as exc:
        raise DecodeError(f"{what}: not a valid compressed point in the subgroup ({exc})") from None
    if point.to_compressed_bytes() != data:
        raise DecodeError(f"{what}: non-canonical encoding")
    return point


def decode_scalar(data: bytes, what: str = "scalar", nonzero: bool = True) -> int:
    """32-byte big-endian scalar, < r (and non-zero unless allowed)."""
    if len(data) != SCALAR_SIZE:
        raise DecodeError(f"{what}: expected {SCALAR_SIZE} bytes, got {len(data)}")
    value = int.from_bytes(data, "big")
    if value >= R:
        raise DecodeError(f"{what}: not reduced mod r")
    if nonzero and value == 0:
        raise DecodeError(f"{what}: zero")
    return value


def encode_scalar(x: int) -> bytes:
    return (x % R).to_bytes(SCALAR_SIZE, "big")


def g1_to_affine(point: G1Point) -> tuple[int, int]:
    """Affine (x, y) of a non-identity G1 point, as the device stores it (spec §5: raw 96 bytes)."""
    raw = point.to_xy_bytes_be()
    return int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big")


def g1_from_affine(x: int, y: int) -> G1Point:
    """A G1 point from affine coordinates, with on-curve and subgroup checks; never the identity."""
    if x == 0 and y == 0:
        raise DecodeError("affine G1 point: (0, 0) is not a point (raw affine has no identity)")
    try:
        return G1Point.from_xy_bytes_be(x.to_bytes(48, "big") + y.to_bytes(48, "big"))
    except ValueError as exc:
        raise DecodeError(f"affine G1 point: not on the curve or not in the subgroup ({exc})") from None


def decode_g1_jacobian(data: bytes, what: str = "Jacobian G1 point") -> G1Point:
    """A Jacobian X‖Y‖Z W_dev, validated as gateway rule G3 (spec §3.5) requires.

    Z ≠ 0, X, Y, Z < p, Y² = X³ + 4Z⁶, then normalised and subgroup-checked.
    """
    if len(data) != JACOBIAN_SIZE:
        raise DecodeError(f"{what}: expected {JACOBIAN_SIZE} bytes, got {len(data)}")
    X, Y, Z = (int.from_bytes(data[i : i + 48], "big") for i in (0, 48, 96))
    if Z == 0:
        raise DecodeError(f"{what}: Z = 0")
    if X >= P or Y >= P or Z >= P:
        raise DecodeError(f"{what}: coordinate not reduced mod p")
    z2 = Z * Z % P
    if (Y * Y - X * X * X - 4 * z2 * z2 * z2) % P:
        raise DecodeError(f"{what}: not on the curve")
    z_inv = pow(Z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return g1_from_affine(X * z_inv2 % P, Y * z_inv2 * z_inv % P)


def encode_g1_jacobian(point: G1Point, Z: int) -> bytes:
    """X‖Y‖Z with the given Z ≠ 0: the form a device emits to skip its field inversion (spec §3.4)."""
    x, y = g1_to_affine(point)
    z2 = Z * Z % P
    return b"".join(v.to_bytes(48, "big") for v in (x * z2 % P, y * z2 * Z % P, Z % P))
