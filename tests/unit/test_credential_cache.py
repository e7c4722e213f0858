"""The per-process credential decode cache (edgeprov/crypto/objects.py, spec §2 "Encodings", §5).

Equal bytes give one shared, immutable Credential; bytes that fail the strict checks are refused on
every call and never enter the cache; the cache holds at most CREDENTIAL_CACHE_SIZE entries, each of
at most CACHED_CREDENTIAL_MAX_M T_j, so hostile bytes cannot pin unbounded memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from edgeprov.crypto.objects import (
    CACHED_CREDENTIAL_MAX_M,
    CREDENTIAL_CACHE_SIZE,
    Credential,
    Signature,
    _cached_credential,
)
from edgeprov.crypto.points import O1, O1_BYTES, DecodeError, g1, g2, sc

pytestmark = pytest.mark.unit

CRED = Credential(g1 * sc(11), (g1 * sc(12), O1, g1 * sc(13)), g2 * sc(14))
WIRE = CRED.encode()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    _cached_credential.cache_clear()
    yield
    _cached_credential.cache_clear()


def test_equal_bytes_share_one_equal_immutable_object() -> None:
    first = Credential.decode(WIRE)
    assert first == CRED
    assert first.encode() == WIRE and first.cred_id == CRED.cred_id
    assert Credential.decode(bytearray(WIRE)) is first  # the key is the exact bytes, not the buffer type
    assert Credential.decode(memoryview(WIRE)) is first
    info = _cached_credential.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.T0 = g1  # type: ignore[misc]
    assert isinstance(first.T, tuple)


def test_full_signature_reuses_the_cached_credential() -> None:
    head = g1 * sc(21), g1 * sc(22)
    one = Signature(*head, CRED).encode()
    other = Signature(g1 * sc(23), g1 * sc(24), CRED).encode()
    assert Signature.decode(one).cred is Signature.decode(other).cred
    assert Signature.decode(one) == Signature(*head, CRED)


def _invalid_variants() -> list[bytes]:
    identity_slot = 48 * 2  # T[1] is the identity: its alias 0xc0‖0…01 decodes to O in arkworks
    alias = b"\xc0" + bytes(46) + b"\x01"
    assert WIRE[identity_slot : identity_slot + 48] == O1_BYTES
    return [
        WIRE[:identity_slot] + alias + WIRE[identity_slot + 48 :],  # non-canonical identity
        WIRE[:-1] + bytes([WIRE[-1] ^ 1]),  # S off the curve / out of the subgroup
        bytes([WIRE[0] & 0x7F]) + WIRE[1:],  # T0 without the compression flag
        WIRE[:-1],  # truncated
        WIRE + b"\x00",  # trailing byte
    ]


@pytest.mark.parametrize("bad", _invalid_variants(), ids=["alias", "bad-S", "uncompressed", "short", "long"])
def test_invalid_bytes_are_refused_every_time_and_never_cached(bad: bytes) -> None:
    Credential.decode(WIRE)
    for attempt in range(3):
        with pytest.raises(DecodeError):
            Credential.decode(bad)
        info = _cached_credential.cache_info()
        assert info.currsize == 1, "a refused decode must not be stored"
        assert info.misses == 2 + attempt, "each refusal must run the strict checks again"
    assert Credential.decode(WIRE) == CRED  # the valid entry is unaffected


def test_cache_is_bounded() -> None:
    side = 1
    while side * side <= CREDENTIAL_CACHE_SIZE:
        side += 1
    points = [(g1 * sc(100 + i)).to_compressed_bytes() for i in range(side)]
    tail = g2.to_compressed_bytes()
    for a in points:
        for b in points:
            Credential.decode(a + b + tail)
    info = _cached_credential.cache_info()
    assert info.misses == side * side > CREDENTIAL_CACHE_SIZE
    assert info.currsize == info.maxsize == CREDENTIAL_CACHE_SIZE
    oldest = points[0] + points[0] + tail
    Credential.decode(oldest)  # evicted, so decoded (and checked) again
    assert _cached_credential.cache_info().misses == side * side + 1


def test_oversized_credentials_are_decoded_strictly_but_not_cached() -> None:
    big = Credential(g1 * sc(31), (O1,) * (CACHED_CREDENTIAL_MAX_M + 1), g2 * sc(32))
    wire = big.encode()
    assert Credential.decode(wire) == big
    assert Credential.decode(wire) is not Credential.decode(wire)
    assert _cached_credential.cache_info().currsize == 0
    with pytest.raises(DecodeError):
        Credential.decode(wire[:-1] + bytes([wire[-1] ^ 1]))
