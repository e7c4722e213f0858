"""RFC 9380 test vectors (spec §9.1): expand_message_xmd (K.1) and G2 hash_to_curve (J.10.1).

hash_to_curve is checked in arkworks (the fast path behind H2) and in py_ecc, because
test_crypto_independent uses py_ecc as its oracle and the oracle must be right too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from py_arkworks_bls12381 import G2Point
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.optimized_bls12_381 import normalize

from edgeprov.crypto.hashing import expand_message_xmd

pytestmark = pytest.mark.unit

XMD_DST = b"QUUX-V01-CS02-with-expander-SHA256-128"
G2_DST = b"QUUX-V01-CS02-with-BLS12381G2_XMD:SHA-256_SSWU_RO_"

XMD_VECTORS = [
    (b"", 0x20, "68a985b87eb6b46952128911f2a4412bbc302a9d759667f87f7a21d803f07235"),
    (b"abc", 0x20, "d8ccab23b5985ccea865c6c97b6e5b8350e794e603b4b97902f53a8a0d605615"),
    (b"abcdef0123456789", 0x20, "eff31487c770a893cfb36f912fbfcbff40d5661771ca4b2cb4eafe524333f5c1"),
    (
        b"",
        0x80,
        "af84c27ccfd45d41914fdff5df25293e221afc53d8ad2ac06d5e3e29485dadbe"
        "e0d121587713a3e0dd4d5e69e93eb7cd4f5df4cd103e188cf60cb02edc3edf18"
        "eda8576c412b18ffb658e3dd6ec849469b979d444cf7b26911a08e63cf31f9dc"
        "c541708d3491184472c2c29bb749d4286b004ceb5ee6b9a7fa5b646c993f0ced",
    ),
]

# (msg, (x.c0, x.c1, y.c0, y.c1)) of the output point P
G2_VECTORS = [
    (
        b"abcdef0123456789",
        (
            0x121982811D2491FDE9BA7ED31EF9CA474F0E1501297F68C298E9F4C0028ADD35AEA8BB83D53C08CFC007C1E005723CD0,
            0x190D119345B94FBD15497BCBA94ECF7DB2CBFD1E1FE7DA034D26CBBA169FB3968288B3FAFB265F9EBD380512A71C3F2C,
            0x05571A0F8D3C08D094576981F4A3B8EDA0A8E771FCDCC8ECCEAF1356A6ACF17574518ACB506E435B639353C2E14827C8,
            0x0BB5E7572275C567462D91807DE765611490205A941A5A6AF3B1691BFE596C31225D3AABDF15FAFF860CB4EF17C7C3BE,
        ),
    ),
    (
        b"",
        (
            0x0141EBFBDCA40EB85B87142E130AB689C673CF60F1A3E98D69335266F30D9B8D4AC44C1038E9DCDD5393FAF5C41FB78A,
            0x05CB8437535E20ECFFAEF7752BADDF98034139C38452458BAEEFAB379BA13DFF5BF5DD71B72418717047F5B0F37DA03D,
            0x0503921D7F6A12805E72940B963C0CF3471C7B2A524950CA195D11062EE75EC076DAF2D4BC358C4B190C0C98064FDD92,
            0x12424AC32561493F3FE3C260708A12B7C620E7BE00099A974E259DDC7D1F6395C3C811CDD19F1E8DBF3E9ECFDCBAB8D6,
        ),
    ),
]

Coords = tuple[int, int, int, int]


@pytest.mark.parametrize(
    ("msg", "length", "expected"), XMD_VECTORS, ids=["empty-32", "abc-32", "abcdef-32", "empty-128"]
)
def test_expand_message_xmd_k1(msg: bytes, length: int, expected: str) -> None:
    assert expand_message_xmd(msg, XMD_DST, length).hex() == expected


def arkworks_h2c(msg: bytes) -> Coords:
    raw = G2Point.hash_to_curve(msg, G2_DST).to_xy_bytes_be()  # x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1
    x0, x1, y0, y1 = (int.from_bytes(raw[i : i + 48], "big") for i in range(0, 192, 48))
    return x0, x1, y0, y1


def py_ecc_h2c(msg: bytes) -> Coords:
    x, y = normalize(hash_to_G2(msg, G2_DST, hashlib.sha256))
    return (*(int(c) for c in x.coeffs), *(int(c) for c in y.coeffs))


@pytest.mark.parametrize("impl", [arkworks_h2c, py_ecc_h2c], ids=["arkworks", "py_ecc"])
@pytest.mark.parametrize(("msg", "expected"), G2_VECTORS, ids=["abcdef0123456789", "empty"])
def test_hash_to_g2_j10_1(impl: Callable[[bytes], Coords], msg: bytes, expected: Coords) -> None:
    assert impl(msg) == expected
