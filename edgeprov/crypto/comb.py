"""Regular signed-digit comb tables for the device's fixed-base G1 multiplications (spec §3.4, §6, [HPB05]).

A w-comb over l = ⌈255/w⌉ columns writes an odd scalar k < 2^(w·l) with digits b_i ∈ {±1}
(b_{m−1} = 1, b_i = 2·bit_{i+1}(k) − 1), so every column adds exactly one table point: a fixed
operation sequence whatever k is. Even k are handled as r − k with the result negated.

Table layout (the contract with the firmware): for u in [0, 2^(w−1)), entry u is the affine point
[Σ_{j=0}^{w−1} s_j·2^{j·l}]P with s_0 = +1 and s_j = +1 iff bit j−1 of u is set, else −1;
each entry is x ‖ y, 48 bytes big-endian each.
"""

from __future__ import annotations

from py_arkworks_bls12381 import G1Point

from edgeprov.crypto.points import R, g1_to_affine, sc

SCALAR_BITS = 255
DEFAULT_W = 6
ENTRY_SIZE = 96


def columns(w: int) -> int:
    """l = ⌈255/w⌉: the number of comb columns, hence l − 1 doublings and l additions."""
    return -(-SCALAR_BITS // w)


def comb_table(P: G1Point, w: int = DEFAULT_W) -> bytes:
    """The 2^(w−1) affine points × 96 bytes for base P."""
    n_cols = columns(w)
    out = bytearray()
    for u in range(1 << (w - 1)):
        factor = 1
        for j in range(1, w):
            sign = 1 if (u >> (j - 1)) & 1 else -1
            factor += sign * (1 << (j * n_cols))
        x, y = g1_to_affine(P * sc(factor))
        out += x.to_bytes(48, "big") + y.to_bytes(48, "big")
    return bytes(out)


def comb_digits(k: int, w: int = DEFAULT_W) -> tuple[bool, list[tuple[int, int]]]:
    """Recode k ∈ [1, r) for the comb: (negate_result, [(sign, u) per column, top column first]).

    Each column contributes sign·T[u]; the caller doubles between columns. The firmware mirrors this.
    """
    if not 0 < k < R:
        raise ValueError("comb scalar must be in [1, r)")
    negate = k % 2 == 0
    if negate:
        k = R - k
    n_cols = columns(w)
    m = w * n_cols
    digits = [2 * ((k >> (i + 1)) & 1) - 1 for i in range(m - 1)] + [1]
    out = []
    for col in range(n_cols - 1, -1, -1):
        lead = digits[col]
        u = 0
        for j in range(1, w):
            if digits[j * n_cols + col] == lead:
                u |= 1 << (j - 1)
        out.append((lead, u))
    return negate, out
