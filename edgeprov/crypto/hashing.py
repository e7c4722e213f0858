"""Hashes of ABS-IOT-V1 (spec §2 "Hashes"): XMD, H_r, H2, ι, and the domain separation tags."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from py_arkworks_bls12381 import G2Point

from edgeprov.crypto.points import R

DST_ATTR = b"ABS-IOT-V1-ATTR_BLS12381G2_XMD:SHA-256_SSWU_RO_"
DST_STMT = b"ABS-IOT-V1-STMT_XMD:SHA-256_ZR_"
DST_GWCTR = b"ABS-IOT-V1-GWCTR_XMD:SHA-256_ZR_"
DST_IDX = b"ABS-IOT-V1-IDX_XMD:SHA-256_ZR_"
DST_POL = b"ABS-IOT-V1-POLICY_XMD:SHA-256_"
DST_MPK = b"ABS-IOT-V1-MPK_XMD:SHA-256_"
DST_CRED = b"ABS-IOT-V1-CRED_XMD:SHA-256_"
DST_NONCE = b"ABS-IOT-V1-NONCE_XMD:SHA-256_ZR_"
DST_GWNONCE = b"ABS-IOT-V1-GWNONCE_XMD:SHA-256_ZR_"
DST_TESTRNG = b"ABS-IOT-V1-TESTRNG"

_B_IN_BYTES = 32  # SHA-256 output
_S_IN_BYTES = 64  # SHA-256 block


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """XMD(msg, DST, n): expand_message_xmd with SHA-256, RFC 9380 §5.3.1 (spec §2)."""
    ell = -(-len_in_bytes // _B_IN_BYTES)
    if ell > 255 or len_in_bytes > 0xFFFF or len_in_bytes < 1 or len(dst) > 255:
        raise ValueError("expand_message_xmd: length or DST out of range")
    dst_prime = dst + bytes([len(dst)])
    msg_prime = bytes(_S_IN_BYTES) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    b_0 = hashlib.sha256(msg_prime).digest()
    b_i = hashlib.sha256(b_0 + b"\x01" + dst_prime).digest()
    out = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha256(mixed + bytes([i]) + dst_prime).digest()
        out.append(b_i)
    return b"".join(out)[:len_in_bytes]


def H_r(msg: bytes, dst: bytes) -> int:
    """H_r(msg, DST) = OS2IP(XMD(msg, DST, 48)) mod r: RFC 9380 hash_to_field for Z_r, L = 48 (spec §2)."""
    return int.from_bytes(expand_message_xmd(msg, dst, 48), "big") % R


@lru_cache(maxsize=8192)
def H2(attribute: bytes) -> G2Point:
    """H2(a): hash_to_curve, suite BLS12381G2_XMD:SHA-256_SSWU_RO_, DST_ATTR (spec §2). Cached: it is public."""
    return G2Point.hash_to_curve(attribute, DST_ATTR)


@lru_cache(maxsize=8192)
def iota(attribute: bytes) -> int:
    """ι(a) = H_r(a, DST_IDX): the polynomial evaluation point of attribute a (spec §2)."""
    return H_r(attribute, DST_IDX)
