"""Fuzzing the ABS-IOT-V1 decoders (spec §2 "Encodings", §5): one meaning per byte string.

For every decoder, random bytes, every truncation of a valid encoding, trailing bytes and single-bit
flips are either refused with the module's own error type (DecodeError, PolicyError, RecordLost,
ValueError for registrations) or decode to an object that re-encodes to exactly the input. Any other
exception fails the test. Valid objects round-trip encode → decode → equal.

The fixture system is built once at module scope from a seeded TestRng (pairings cost milliseconds).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprov.crypto import abs_iot
from edgeprov.crypto.abs_iot import Record, RegistryEntry
from edgeprov.crypto.bundle import DeviceBundle, GatewayBundle
from edgeprov.crypto.device import DeviceRecord, RecordLost, record_mac_key
from edgeprov.crypto.objects import (
    Credential,
    DeviceShare,
    KFog,
    MasterPublicKey,
    PoolEntry,
    Signature,
)
from edgeprov.crypto.points import JACOBIAN_SIZE, DecodeError, R, g1, g2, sc
from edgeprov.crypto.policy import (
    FormulaPolicy,
    Policy,
    PolicyError,
    check_policy,
    decode_formula,
    encode_formula,
    parse_policy,
)
from edgeprov.crypto.rng import TestRng
from edgeprov.registration import Registration, attributes_digest

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- the fixture system (built once) ---------------------------------------------------------

_rng = TestRng(b"edgeprov crypto fuzz fixtures")
MPK, ALPHA = abs_iot.setup(6, _rng)
DEVICE_ID = b"dev-F-0001"
ATTRS = [b"org=acme", b"type=temp", b"unit=dev-F-0001"]
K_IOT, K_FOG = abs_iot.keygen(MPK, ALPHA, DEVICE_ID, 1, ATTRS, _rng)
REGISTRY = parse_policy("id and 2 of (org=acme, site=ward-7, type=temp)", 6)
assert isinstance(REGISTRY, Policy)
CRED = abs_iot.credential(K_FOG, REGISTRY, _rng)
BUNDLE = DeviceBundle.create(MPK, K_IOT, _rng.random_bytes(32), (REGISTRY.pd, bytes(range(32))), w=2)
POOL = [abs_iot.precompute(MPK.h1, K_IOT.G_iot, BUNDLE.nonce_seed, i, _rng) for i in range(2)]
RECORD = Record(DEVICE_ID, 1, 7, 1_700_000_000_000, b"temp=21.5C", REGISTRY.pd)
_c = RECORD.statement(MPK.aa_fp).c
SHARE = abs_iot.complete(MPK.u1, POOL[0], _c)
SIG = abs_iot.combine(SHARE, abs_iot.gateway_share(MPK, K_FOG, _c, _rng), CRED)
abs_iot.verify(MPK, RegistryEntry(DEVICE_ID, 1, REGISTRY), RECORD, SIG)  # the fixtures are real

FORMULA_REGISTRY = parse_policy("id and all of (org=acme, any of (type=hum, type=temp, 2 of (a=1, b=2, c=3)))", 6)
assert isinstance(FORMULA_REGISTRY, FormulaPolicy)
FORMULA_POLICY = FORMULA_REGISTRY.disclose(set(ATTRS))

MAC_KEY = record_mac_key(BUNDLE.nonce_seed)
DEVICE_RECORD = DeviceRecord(1, 2, 5, list(POOL))

GATEWAY = GatewayBundle("gw-7", MPK, K_FOG, REGISTRY)
GATEWAY_JSON = GATEWAY.to_json()

AA_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
REGISTRATION = Registration(
    "register", DEVICE_ID.decode(), 1, MPK.aa_fp.hex(), "gw-7", str(REGISTRY),
    REGISTRY.pd.hex(), attributes_digest(ATTRS), 1_700_000_000_000,
)  # fmt: skip
REGISTRATION_DOC = REGISTRATION.sign(AA_KEY)

JACOBIAN_Z = 0x1234567890ABCDEF


class Codec:
    """A decoder under test: how to decode, how to re-encode, the errors it may raise."""

    def __init__(self, name: str, data: bytes, decode: Callable, encode: Callable, errors: type | tuple):
        self.name, self.data, self.decode, self.encode, self.errors = name, data, decode, encode, errors

    def check(self, data: bytes) -> None:
        """Refused with the module's error, or decodes to an object that re-encodes to exactly `data`."""
        try:
            obj = self.decode(data)
        except self.errors:
            return
        assert self.encode(obj) == data, f"{self.name}: {data.hex()} decodes but re-encodes differently"

    def __repr__(self) -> str:
        return self.name


def _jacobian_encode(share: DeviceShare, data: bytes) -> bytes:
    # A Jacobian W_dev is not canonical by design (spec §3.5 G3): it is canonical given its Z.
    return share.encode(jacobian_z=int.from_bytes(data[96:144], "big"))


class _JacobianCodec(Codec):
    def check(self, data: bytes) -> None:
        try:
            share = DeviceShare.decode(data)
        except DecodeError:
            return
        if len(data) == JACOBIAN_SIZE + 48:
            assert _jacobian_encode(share, data) == data
        else:
            assert share.encode() == data


CODECS = [
    Codec("signature-full", SIG.encode(), Signature.decode, Signature.encode, DecodeError),
    Codec("signature-compact", SIG.compact().encode(), Signature.decode, Signature.encode, DecodeError),
    Codec("credential", CRED.encode(), Credential.decode, Credential.encode, DecodeError),
    Codec("share", SHARE.encode(), DeviceShare.decode, DeviceShare.encode, DecodeError),
    _JacobianCodec("share-jacobian", SHARE.encode(jacobian_z=JACOBIAN_Z), DeviceShare.decode, None, DecodeError),
    Codec("mpk", MPK.encode(), MasterPublicKey.decode, MasterPublicKey.encode, DecodeError),
    Codec("k_fog", K_FOG.encode(), KFog.decode, KFog.encode, DecodeError),
    Codec("pool-entry", POOL[0].encode(), PoolEntry.decode, PoolEntry.encode, DecodeError),
    Codec("device-bundle", BUNDLE.encode(), DeviceBundle.decode, DeviceBundle.encode, DecodeError),
    Codec("policy", REGISTRY.encode(), Policy.decode, Policy.encode, PolicyError),
    Codec("policy-formula", FORMULA_POLICY.encode(), Policy.decode, Policy.encode, PolicyError),
    Codec("formula", encode_formula(FORMULA_REGISTRY.formula), decode_formula, encode_formula, PolicyError),
    Codec(
        "device-record",
        DEVICE_RECORD.encode(MAC_KEY),
        lambda data: DeviceRecord.decode(data, MAC_KEY, 1),
        lambda record: record.encode(MAC_KEY),
        RecordLost,
    ),
]
BY_NAME = {c.name: c for c in CODECS}


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---- the valid encodings decode and re-encode ---------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=repr)
def test_valid_encoding_is_a_fixed_point(codec):
    obj = codec.decode(codec.data)
    if codec.encode is None:
        assert _jacobian_encode(obj, codec.data) == codec.data
        assert obj == SHARE
    else:
        assert codec.encode(obj) == codec.data


def test_decoded_fixtures_equal_the_originals():
    assert Signature.decode(SIG.encode()) == SIG
    assert Signature.decode(SIG.compact().encode()) == SIG.compact()
    assert Credential.decode(CRED.encode()) == CRED
    assert Credential.decode(CRED.encode()).cred_id == CRED.cred_id
    assert DeviceShare.decode(SHARE.encode()) == SHARE
    assert MasterPublicKey.decode(MPK.encode()) == MPK
    assert KFog.decode(K_FOG.encode()) == K_FOG
    assert PoolEntry.decode(POOL[0].encode()) == POOL[0]
    assert DeviceBundle.decode(BUNDLE.encode()) == BUNDLE
    assert Policy.decode(REGISTRY.encode()) == REGISTRY
    assert Policy.decode(FORMULA_POLICY.encode()) == FORMULA_POLICY
    assert DeviceRecord.decode(DEVICE_RECORD.encode(MAC_KEY), MAC_KEY, 1) == DEVICE_RECORD
    assert GatewayBundle.from_json(GATEWAY_JSON) == GATEWAY
    assert Registration.verify(REGISTRATION_DOC, AA_KEY.public_key()) == REGISTRATION


# ---- truncation, extension, bit flips, random bytes -------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=repr)
def test_every_truncation_is_refused_or_canonical(codec):
    for cut in range(len(codec.data)):
        codec.check(codec.data[:cut])


# A credential (and so a full signature) with fewer T_j is a valid prefix; a 96-byte prefix of a Jacobian
# share could in principle be a compressed one. Every other format is refused on any strict prefix.
PREFIX_FREE = [c for c in CODECS if c.name not in ("credential", "signature-full", "share-jacobian")]


@pytest.mark.parametrize("codec", PREFIX_FREE, ids=repr)
def test_every_strict_prefix_of_a_fixed_length_object_is_refused(codec):
    for cut in range(len(codec.data)):
        with pytest.raises(codec.errors):
            codec.decode(codec.data[:cut])


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@pytest.mark.parametrize("extra", [b"\x00", b"\xff", bytes(48), bytes(96)], ids=["1", "ff", "48", "96"])
def test_trailing_bytes_are_refused_or_canonical(codec, extra):
    codec.check(codec.data + extra)


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@SLOW
@given(data=st.data())
def test_single_bit_flips(codec, data):
    bit = data.draw(st.integers(0, 8 * len(codec.data) - 1))
    codec.check(_flip(codec.data, bit))


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@FAST
@given(blob=st.binary(max_size=600))
def test_random_bytes(codec, blob):
    codec.check(blob)


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@SLOW
@given(data=st.data())
def test_random_splices_of_the_valid_encoding(codec, data):
    """Keep a prefix of the valid encoding and replace the rest with random bytes (reaches deep fields)."""
    cut = data.draw(st.integers(0, len(codec.data)))
    tail = data.draw(st.binary(max_size=len(codec.data) - cut + 8))
    codec.check(codec.data[:cut] + tail)


# ---- object-specific edge cases -------------------------------------------------------------


def _k_fog_name_bits() -> set[int]:
    """Bit positions of the attribute-name bytes of K_fog's leaves."""
    pos = 2 + len(DEVICE_ID) + 4 + 48 + 32 + 96 + 48 + 2
    bits = set()
    for attr in K_FOG.leaves:
        start = pos + 1
        bits.update(range(8 * start, 8 * (start + len(attr))))
        pos = start + len(attr) + 96 + 48
    assert pos == len(K_FOG.encode())
    return bits


K_FOG_NAME_BITS = sorted(_k_fog_name_bits())


def test_k_fog_leaf_name_flips():
    codec = BY_NAME["k_fog"]
    for bit in K_FOG_NAME_BITS:
        codec.check(_flip(codec.data, bit))


def test_signature_refuses_identity_R_and_noncanonical_identity():
    data = bytearray(SIG.encode())
    o1 = b"\xc0" + bytes(47)
    with pytest.raises(DecodeError, match="identity"):
        Signature.decode(bytes(data[:49]) + o1 + bytes(data[97:]))
    for bad in (b"\xc0" + bytes(46) + b"\x01", b"\xe0" + bytes(47)):  # review F6
        with pytest.raises(DecodeError):
            Signature.decode(bytes(data[:1]) + bad + bytes(data[49:]))
        t_j = bytearray(data)
        t_j[97 + 48 : 97 + 96] = bad
        with pytest.raises(DecodeError):
            Signature.decode(bytes(t_j))


def test_signature_form_byte():
    body = SIG.encode()[1:]
    for form in range(256):
        if form in (0x01, 0x81):
            continue
        with pytest.raises(DecodeError):
            Signature.decode(bytes([form]) + body)
    with pytest.raises(DecodeError):
        Signature.decode(b"\x81" + body)  # compact form with a full-length body
    with pytest.raises(DecodeError):
        Signature.decode(b"")


def test_jacobian_share_edge_cases():
    data = SHARE.encode(jacobian_z=JACOBIAN_Z)
    from edgeprov.crypto.points import P

    def with_coord(index: int, value: int) -> bytes:
        out = bytearray(data)
        out[48 * index : 48 * (index + 1)] = value.to_bytes(48, "big")
        return bytes(out)

    with pytest.raises(DecodeError, match="Z = 0"):
        DeviceShare.decode(with_coord(2, 0))
    x = int.from_bytes(data[:48], "big")
    with pytest.raises(DecodeError, match="not reduced"):
        DeviceShare.decode(with_coord(0, x + P))
    with pytest.raises(DecodeError, match="not on the curve"):
        DeviceShare.decode(with_coord(0, x ^ 1))
    for z in (1, 2, P - 1):
        other = SHARE.encode(jacobian_z=z)
        assert DeviceShare.decode(other) == SHARE


def test_pool_entry_scalar_must_be_reduced_and_nonzero():
    data = POOL[0].encode()
    for s in (0, R, 2**256 - 1):
        with pytest.raises(DecodeError):
            PoolEntry.decode(s.to_bytes(32, "big") + data[32:])


def test_mpk_refuses_mismatched_bases():
    swapped = MasterPublicKey(MPK.d, MPK.A1, MPK.A2, MPK.u1, MPK.h1, MPK.h2, MPK.u2)
    with pytest.raises(DecodeError, match="discrete logarithms"):
        MasterPublicKey.decode(swapped.encode())
    other_u = MasterPublicKey(MPK.d, MPK.A1, MPK.A2, g1 * sc(5), MPK.h1, MPK.u2, MPK.h2)
    with pytest.raises(DecodeError):
        MasterPublicKey.decode(other_u.encode())
    for d in (0,):
        data = bytearray(MPK.encode())
        data[1] = d
        with pytest.raises(DecodeError):
            MasterPublicKey.decode(bytes(data))


def test_mpk_of_the_test_vectors_is_refused_outside_test_mode():
    from edgeprov.crypto.rng import TEST_VECTOR_SEED

    mpk, _ = abs_iot.setup(6, TestRng(TEST_VECTOR_SEED))
    with pytest.raises(DecodeError, match="test-vector"):
        MasterPublicKey.decode(mpk.encode())
    assert MasterPublicKey.decode(mpk.encode(), allow_test=True) == mpk


def test_device_bundle_field_checks():
    data = bytearray(BUNDLE.encode())
    bad_magic = bytes(b"EPDX" + data[4:])
    with pytest.raises(DecodeError, match="magic"):
        DeviceBundle.decode(bad_magic)
    bad_version = bytearray(data)
    bad_version[4] = 2
    with pytest.raises(DecodeError, match="version"):
        DeviceBundle.decode(bytes(bad_version))
    pds_at = 4 + 1 + 1 + len(DEVICE_ID) + 4 + 32 + 96 + 32 + 96 + 96
    assert data[pds_at] == 2
    no_pd = bytes(data[:pds_at]) + b"\x00" + bytes(data[pds_at + 1 + 64 :])
    with pytest.raises(DecodeError, match="no policy digest"):
        DeviceBundle.decode(no_pd)
    w_at = pds_at + 1 + 64
    for w in (0, 1, 9, 255):
        bad_w = bytearray(data)
        bad_w[w_at] = w
        with pytest.raises(DecodeError):
            DeviceBundle.decode(bytes(bad_w))


def test_device_record_refuses_tampering_and_other_epochs():
    data = DEVICE_RECORD.encode(MAC_KEY)
    with pytest.raises(RecordLost, match="epoch"):
        DeviceRecord.decode(data, MAC_KEY, 2)
    with pytest.raises(RecordLost, match="MAC"):
        DeviceRecord.decode(data, record_mac_key(bytes(32)), 1)
    with pytest.raises(RecordLost, match="length"):
        DeviceRecord.decode(data[:-1], MAC_KEY, 1)
    with pytest.raises(RecordLost):
        DeviceRecord.decode(b"", MAC_KEY, 1)


@FAST
@given(blob=st.binary(max_size=3 * PoolEntry.SIZE))
def test_device_record_with_a_valid_mac_over_random_entries(blob):
    """Past the MAC, a malformed entry is still RecordLost (D4), never another exception."""
    import hashlib
    import hmac

    body = (1).to_bytes(4, "big") + (3).to_bytes(8, "big") + (9).to_bytes(8, "big") + blob
    data = body + hmac.new(MAC_KEY, body, hashlib.sha256).digest()
    BY_NAME["device-record"].check(data)


@SLOW
@given(data=st.data())
def test_device_record_with_a_valid_mac_over_flipped_entries(data):
    import hashlib
    import hmac

    body = DEVICE_RECORD.encode(MAC_KEY)[:-32]
    bit = data.draw(st.integers(0, 8 * len(body) - 1))
    body = _flip(body, bit)
    BY_NAME["device-record"].check(body + hmac.new(MAC_KEY, body, hashlib.sha256).digest())


# ---- policies and formulas ----------------------------------------------------------------------

_formula_bytes = st.lists(
    st.one_of(
        st.sampled_from([b"L", b"T", b"L\x03a=1", b"L\x03b=2", b"T\x01\x02", b"T\x02\x02", b"T\x00\x02"]),
        st.binary(max_size=4),
    ),
    max_size=12,
).map(b"".join)


@FAST
@given(blob=_formula_bytes)
def test_formula_decoder_on_structured_noise(blob):
    BY_NAME["formula"].check(blob)


@FAST
@given(
    blob=_formula_bytes, head=st.sampled_from([b"\x01\x01\x06\x00\x01\x00\x01\x03a=1", b"\x01\x00\x06\x00\x00\x00\x00"])
)
def test_policy_decoder_on_structured_noise(blob, head):
    size = len(blob).to_bytes(4, "big")
    BY_NAME["policy"].check(head + size + blob)
    BY_NAME["policy"].check(head + blob)


_attr = st.binary(min_size=1, max_size=24).filter(lambda a: not a.startswith((b"id=", b"\x00")))


@FAST
@given(attrs=st.sets(_attr, min_size=1, max_size=8), data=st.data())
def test_policy_round_trip(attrs, data):
    ordered = tuple(sorted(attrs))
    d = data.draw(st.integers(len(ordered), 12))
    policy = Policy(data.draw(st.integers(1, len(ordered))), ordered, d)
    check_policy(policy, d)
    decoded = Policy.decode(policy.encode())
    assert decoded == policy
    assert decoded.pd == policy.pd


# ---- parse_policy on random text --------------------------------------------------------------


@FAST
@given(text=st.text(max_size=80))
def test_parse_policy_random_text(text):
    try:
        policy = parse_policy(text, 6)
    except PolicyError:
        return
    assert parse_policy(str(policy), 6) == policy


_tokens = st.sampled_from(
    ["id", "and", "of", "all", "any", "1", "2", "3", "0", "7", "(", ")", ",", " ", "a=1", "b=2", "c=3", "d=4",
     '"q=\\"x\\""', '"\\x00z=1"', "id=x", '"', "\\", "x", "=", "e=5", "f=6", "g=7", "\t"]
)  # fmt: skip


@FAST
@given(parts=st.lists(_tokens, max_size=24))
def test_parse_policy_token_soup(parts):
    text = "id and " + " ".join(parts)
    try:
        policy = parse_policy(text, 6)
    except PolicyError as exc:
        assert str(exc)  # a message, and a caret when the parser knows the position
        if exc.pos is not None:
            assert 0 <= exc.pos <= len(text)
            assert str(exc).splitlines()[-1].index("^") == exc.pos + 2
        return
    assert parse_policy(str(policy), 6) == policy
    if isinstance(policy, Policy):
        check_policy(policy, 6)


# ---- gateway bundle JSON ---------------------------------------------------------------------


def _load_gateway(text: str) -> None:
    try:
        bundle = GatewayBundle.from_json(text)
    except DecodeError:
        return
    assert GatewayBundle.from_json(bundle.to_json()) == bundle


@FAST
@given(text=st.text(max_size=200))
def test_gateway_bundle_random_text(text):
    _load_gateway(text)


_GATEWAY_RAW = GATEWAY_JSON.encode()
_GATEWAY_BITS = list(range(8 * len(_GATEWAY_RAW)))


@SLOW
@given(data=st.data())
def test_gateway_bundle_bit_flips(data):
    raw = _GATEWAY_RAW
    bit = data.draw(st.sampled_from(_GATEWAY_BITS))
    try:
        text = _flip(raw, bit).decode()
    except UnicodeDecodeError:
        return
    _load_gateway(text)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)

_gateway_keys = ["format", "version", "gateway", "device", "epoch", "policy", "mpk", "k_fog"]


@SLOW
@given(data=st.data())
def test_gateway_bundle_field_mutations(data):
    doc = json.loads(GATEWAY_JSON)
    key = data.draw(st.sampled_from(_gateway_keys))
    action = data.draw(st.sampled_from(["replace", "delete", "truncate"]))
    if action == "delete":
        del doc[key]
    elif action == "truncate" and isinstance(doc[key], str):
        doc[key] = doc[key][: data.draw(st.integers(0, len(doc[key])))]
    else:
        doc[key] = data.draw(_json)
    _load_gateway(json.dumps(doc))


def test_gateway_bundle_header_must_match_k_fog():
    doc = json.loads(GATEWAY_JSON)
    for key, value in (("device", "dev-other"), ("epoch", 2), ("epoch", "1"), ("format", "x"), ("version", 2)):
        mutated = {**doc, key: value}
        with pytest.raises(DecodeError):
            GatewayBundle.from_json(json.dumps(mutated))
    with pytest.raises(DecodeError):
        GatewayBundle.from_json(json.dumps({**doc, "policy": "id and 2 of (a=1"}))
    with pytest.raises(DecodeError):
        GatewayBundle.from_json("[]")
    with pytest.raises(DecodeError):
        GatewayBundle.from_json("null")


@pytest.mark.parametrize("key", ["device", "epoch"])
def test_gateway_bundle_without_header_key(key):
    doc = json.loads(GATEWAY_JSON)
    del doc[key]
    with pytest.raises(DecodeError):
        GatewayBundle.from_json(json.dumps(doc))


def test_gateway_bundle_with_non_utf8_device_id():
    doc = json.loads(GATEWAY_JSON)
    k_fog = KFog(b"\xff", 1, K_FOG.G_gw, K_FOG.k_nonce, K_FOG.D0, K_FOG.D0p, K_FOG.leaves)
    doc["k_fog"] = k_fog.encode().hex()
    with pytest.raises(DecodeError):
        GatewayBundle.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5_000,
        json.dumps({**json.loads(GATEWAY_JSON), "policy": "id and " + "1 of (b=2, " * 600 + "a=1" + ")" * 600}),
    ],
    ids=["deep-json", "deep-policy"],
)
def test_gateway_bundle_deep_nesting(text):
    with pytest.raises(DecodeError):
        GatewayBundle.from_json(text)


# ---- registrations -------------------------------------------------------------------------


@FAST
@given(doc=st.dictionaries(st.sampled_from([*REGISTRATION_DOC, "extra"]) | st.text(max_size=6), _json, max_size=12))
def test_registration_random_dicts(doc):
    with pytest.raises(ValueError):
        Registration.verify(doc, AA_KEY.public_key())


@SLOW
@given(data=st.data())
def test_registration_field_mutations(data):
    key = data.draw(st.sampled_from(sorted(REGISTRATION_DOC)))
    value = data.draw(_json)
    doc = {**REGISTRATION_DOC, key: value}
    if value == REGISTRATION_DOC[key] and type(value) is type(REGISTRATION_DOC[key]):
        assert Registration.verify(doc, AA_KEY.public_key()) == REGISTRATION
        return
    with pytest.raises(ValueError):
        Registration.verify(doc, AA_KEY.public_key())


def test_registration_other_key_and_missing_fields():
    with pytest.raises(ValueError, match="rejected"):
        Registration.verify(REGISTRATION_DOC, Ed25519PrivateKey.generate().public_key())
    for key in REGISTRATION_DOC:
        doc = dict(REGISTRATION_DOC)
        del doc[key]
        with pytest.raises(ValueError):
            Registration.verify(doc, AA_KEY.public_key())
    bogus = Registration("promote", "dev", 1, MPK.aa_fp.hex()).sign(AA_KEY)
    with pytest.raises(ValueError, match="unknown action"):
        Registration.verify(bogus, AA_KEY.public_key())


# ---- round trips of freshly made objects --------------------------------------------------------

_scalar = st.integers(1, R - 1)


@SLOW
@given(w=_scalar, r=_scalar, t=st.lists(st.integers(0, R - 1), min_size=2, max_size=9), s=st.integers(0, R - 1))
def test_signature_and_credential_round_trip(w, r, t, s):
    cred = Credential(g1 * sc(t[0]), tuple(g1 * sc(x) for x in t[1:]), g2 * sc(s))  # identity allowed in T, S
    sig = Signature(g1 * sc(w), g1 * sc(r), cred)
    assert Credential.decode(cred.encode()) == cred
    assert Signature.decode(sig.encode()) == sig
    assert Signature.decode(sig.compact().encode()) == sig.compact()
    assert Signature.decode(sig.compact().encode()).cred_id == cred.cred_id


@SLOW
@given(w=_scalar, r=_scalar, z=st.integers(1, 2**381))
def test_share_and_pool_entry_round_trip(w, r, z):
    from edgeprov.crypto.points import P

    share = DeviceShare(g1 * sc(w), g1 * sc(r))
    assert DeviceShare.decode(share.encode()) == share
    if z % P:
        assert DeviceShare.decode(share.encode(jacobian_z=z)) == share
    entry = PoolEntry(r, g1 * sc(r), g1 * sc(w))
    assert PoolEntry.decode(entry.encode()) == entry


@SLOW
@given(
    device_id=st.binary(min_size=1, max_size=64),
    epoch=st.integers(1, 2**32 - 1),
    nonce=st.binary(min_size=32, max_size=32),
    pds=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3),
)
def test_device_bundle_round_trip(device_id, epoch, nonce, pds):
    bundle = DeviceBundle(
        device_id, epoch, MPK.aa_fp, K_IOT.G_iot, nonce, MPK.h1, MPK.u1, tuple(pds), BUNDLE.w, BUNDLE.tables
    )
    assert DeviceBundle.decode(bundle.encode()) == bundle


@SLOW
@given(ctr=st.integers(0, 2**64 - 1), pool_index=st.integers(0, 2**64 - 1), count=st.integers(0, 2))
def test_device_record_round_trip(ctr, pool_index, count):
    record = DeviceRecord(1, pool_index, ctr, POOL[:count])
    assert DeviceRecord.decode(record.encode(MAC_KEY), MAC_KEY, 1) == record
