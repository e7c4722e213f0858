"""Policies of ABS-IOT-V1 (spec §2 "Policy", §3.6 step 1 checks (a)–(f), §3.8 formulas, §9.1 vector).

Covers the readable syntax of `parse_policy` (and its error messages), `check_policy` rule by rule
on hand-built objects, the strict `Policy`/formula codecs, and disclosed-set (mode 1) selection.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprov.crypto.policy import (
    MAX_FORMULA_DEPTH,
    FormulaPolicy,
    Gate,
    Leaf,
    Policy,
    PolicyError,
    check_formula,
    check_policy,
    decode_formula,
    default_attribute,
    encode_formula,
    formula_holds,
    id_star,
    minimal_disclosure,
    parse_policy,
    policy_for_record,
)

pytestmark = pytest.mark.unit

D = 6
A, B, C = b"org=acme", b"site=ward-7", b"type=temp"


def error_of(text: str, d: int = D) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, d)
    return info.value


def caret_column(exc: PolicyError) -> int:
    """The 0-based column the caret line points at, checked against .pos."""
    lines = str(exc).splitlines()
    assert len(lines) == 3, str(exc)
    assert lines[1] == "  " + exc.text
    caret = lines[2]
    assert caret.strip() == "^"
    column = caret.index("^") - 2
    assert column == exc.pos
    assert f"at column {exc.pos + 1}:" in lines[0]
    return column


# ---- §9.1 vector -----------------------------------------------------------------------------


def test_spec_9_1_policy_digest_vector():
    policy = Policy(2, (b"fw>=2.1", b"role=temp", b"site=plant-7"), 6)
    check_policy(policy, 6)
    assert policy.pd.hex() == "d8401a4e9f5a461ff95f8f45057b3c06ed650e29a2a059b659202c4e589d7fd9"
    assert policy.encode() == bytes.fromhex(
        "010006000200030766773e3d322e3109726f6c653d74656d700c736974653d706c616e742d37"
    )
    # The same policy written in the readable syntax, in any order, has the same digest.
    parsed = parse_policy("id and 2 of (site=plant-7, role=temp, fw>=2.1)", 6)
    assert parsed == policy
    assert parsed.pd == policy.pd


def test_pd_binds_k_attributes_d_and_mode():
    base = Policy(2, (A, B, C), D)
    variants = [
        Policy(1, (A, B, C), D),
        Policy(2, (A, B), D),
        Policy(2, (A, B, C), D + 1),
        Policy(3, (A, B, C), D, Gate(2, (Leaf(A), Leaf(B), Leaf(C)))),
    ]
    digests = {base.pd, *(v.pd for v in variants)}
    assert len(digests) == 5
    assert all(len(x) == 32 for x in digests)


def test_J_and_m_follow_spec():
    policy = Policy(2, (A, B, C), D)
    assert policy.m == 3 + 6 - 2
    defaults = tuple(default_attribute(j) for j in range(1, 5))
    expected = (A, B, C, *defaults)
    assert list(policy.J) == list(expected)
    assert default_attribute(1) == b"\x00dflt=\x01"
    assert Policy(3, (A, B, C), 3).J == (A, B, C)


def test_id_star_vector_and_bounds():
    assert id_star(b"dev-A-0001", 1).hex() == "69643d0a6465762d412d3030303100000001"
    for bad_id, epoch in ((b"", 1), (b"x" * 65, 1), (b"dev", 0), (b"dev", 2**32)):
        with pytest.raises(ValueError):
            id_star(bad_id, epoch)


# ---- readable syntax: accepted forms ---------------------------------------------------------


def test_threshold_syntax():
    policy = parse_policy("id and 2 of (org=acme, type=temp, site=ward-7)", D)
    assert policy == Policy(2, (A, B, C), D)
    assert policy.mode == 0
    assert str(policy) == "id and 2 of (org=acme, site=ward-7, type=temp)"


def test_and_chain_is_all_of():
    policy = parse_policy("id and a=1 and b=2", D)
    assert policy == Policy(2, (b"a=1", b"b=2"), D)
    assert parse_policy("id and all of (b=2, a=1)", D) == policy
    assert str(policy) == "id and all of (a=1, b=2)"


def test_any_of_and_single_attribute():
    assert parse_policy("id and any of (b=2, a=1, c=3)", D) == Policy(1, (b"a=1", b"b=2", b"c=3"), D)
    single = parse_policy("id and a=1", D)
    assert single == Policy(1, (b"a=1",), D)
    assert str(single) == "id and a=1"
    # A one-input gate collapses to its input.
    assert parse_policy("id and 1 of (a=1)", D) == single
    assert parse_policy("id and all of (all of (a=1))", D) == single


def test_whitespace_is_free():
    assert parse_policy("  id   and\t2 of(a=1,b=2 ,c=3)  ", D) == Policy(2, (b"a=1", b"b=2", b"c=3"), D)


def test_nested_gives_formula_policy_in_canonical_order():
    policy = parse_policy("id and any of (site=ward-7, 2 of (type=temp, org=acme, fw=2))", D)
    assert isinstance(policy, FormulaPolicy)
    assert policy.d == D
    inner = Gate(2, (Leaf(b"fw=2"), Leaf(A), Leaf(C)))
    assert policy.formula == Gate(1, (Leaf(B), inner))  # leaves ('L') sort before gates ('T')
    check_formula(policy.formula)
    assert str(policy) == "id and any of (site=ward-7, 2 of (fw=2, org=acme, type=temp))"
    # Writing the inputs in another order gives the same formula.
    again = parse_policy("id and 1 of (2 of (fw=2, type=temp, org=acme), site=ward-7)", D)
    assert again == policy
    assert encode_formula(again.formula) == encode_formula(policy.formula)


def test_and_chain_with_a_gate_is_a_formula():
    policy = parse_policy("id and org=acme and any of (type=hum, type=temp)", D)
    assert isinstance(policy, FormulaPolicy)
    assert policy.formula == Gate(2, (Leaf(A), Gate(1, (Leaf(b"type=hum"), Leaf(C)))))


def test_quoted_attributes_with_escapes():
    policy = parse_policy(r'id and 2 of ("name=a b", "q=\"x\"", "bs=\\", "hex=\x41\xff", w=1)', D)
    assert policy.attrs == tuple(sorted([b"name=a b", b'q="x"', b"bs=\\", b"hex=A\xff", b"w=1"]))
    text = str(policy)
    assert '"name=a b"' in text
    assert r'"hex=A\xff"' in text
    assert parse_policy(text, D) == policy


def test_quoted_keyword_and_parentheses_are_attributes():
    policy = parse_policy('id and 2 of ("of=(1)", "and=x", "all=y")', D)
    assert policy.attrs == (b"all=y", b"and=x", b"of=(1)")
    assert parse_policy(str(policy), D) == policy


def test_unicode_word_attribute():
    policy = parse_policy("id and 2 of (site=café, org=acme)", D)
    assert "site=café".encode() in policy.attrs
    assert parse_policy(str(policy), D) == policy


_attr_bytes = st.binary(min_size=1, max_size=40).filter(lambda a: not a.startswith((b"id=", b"\x00")))


@settings(max_examples=150, deadline=None)
@given(attrs=st.sets(_attr_bytes, min_size=1, max_size=6), data=st.data())
def test_str_round_trips_through_parse(attrs, data):
    ordered = tuple(sorted(attrs))
    k = data.draw(st.integers(1, len(ordered)))
    policy = Policy(k, ordered, D)
    check_policy(policy, D)
    assert parse_policy(str(policy), D) == policy


def _formulas(depth: int):
    leaf = _attr_bytes.map(Leaf)
    if depth == 0:
        return leaf
    return st.one_of(
        leaf,
        st.lists(_formulas(depth - 1), min_size=2, max_size=4).flatmap(
            lambda kids: st.integers(1, len(kids)).map(lambda k: Gate(k, tuple(kids)))
        ),
    )


def _canonical_or_none(phi):
    """Sort children by encoding; None if a gate has duplicate inputs (not a valid formula)."""
    if isinstance(phi, Leaf):
        return phi
    kids = [_canonical_or_none(c) for c in phi.children]
    if any(k is None for k in kids):
        return None
    kids.sort(key=encode_formula)
    encs = [encode_formula(k) for k in kids]
    if len(set(encs)) != len(encs):
        return None
    return Gate(phi.k, tuple(kids))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(phi=_formulas(3).map(_canonical_or_none).filter(lambda p: isinstance(p, Gate)))
def test_formula_text_and_codec_round_trip(phi):
    check_formula(phi)
    assert decode_formula(encode_formula(phi)) == phi
    parsed = parse_policy(str(FormulaPolicy(phi, D)), D)
    if all(isinstance(c, Leaf) for c in phi.children):
        assert parsed == Policy(phi.k, tuple(sorted(c.attr for c in phi.children)), D)
    else:
        assert parsed == FormulaPolicy(phi, D)


# ---- readable syntax: every malformed input is a PolicyError pointing at the problem ----------


def test_missing_id_and():
    exc = error_of("2 of (org=acme, type=temp)")
    assert caret_column(exc) == 0
    assert "starts with 'id and'" in exc.base
    exc = error_of("id 2 of (org=acme, type=temp)")
    assert caret_column(exc) == 3
    assert "expected 'and'" in exc.base
    exc = error_of("org=acme and id")
    assert caret_column(exc) == 0


def test_empty_input():
    for text in ("", "   "):
        exc = error_of(text)
        assert "starts with 'id and'" in exc.base
        assert exc.pos == len(text)
    exc = error_of("id and")
    assert caret_column(exc) == len("id and")
    assert "expected an attribute" in exc.base


def test_missing_comma():
    text = "id and 2 of (org=acme type=temp, site=ward-7)"
    exc = error_of(text)
    assert caret_column(exc) == text.index("type=temp")
    assert "expected ')'" in exc.base


def test_unbalanced_parentheses():
    text = "id and 2 of (org=acme, type=temp"
    exc = error_of(text)
    assert caret_column(exc) == len(text)
    assert "expected ')'" in exc.base
    text = "id and 2 of (org=acme, type=temp))"
    exc = error_of(text)
    assert caret_column(exc) == len(text) - 1
    assert "unexpected text" in exc.base
    text = "id and 2 of org=acme, type=temp)"
    exc = error_of(text)
    assert caret_column(exc) == text.index("org=acme")
    assert "expected '('" in exc.base


def test_k_greater_than_n():
    text = "id and 3 of (org=acme, type=temp)"
    exc = error_of(text)
    assert caret_column(exc) == text.index("3")
    assert "threshold 3 not in 1..2" in exc.base


def test_k_zero():
    text = "id and any of (a=1, 0 of (b=2, c=3))"
    exc = error_of(text)
    assert caret_column(exc) == text.index("0 of")
    assert "threshold 0 not in 1..2" in exc.base


def test_bad_threshold_word():
    text = "id and some of (a=1, b=2)"
    exc = error_of(text)
    assert caret_column(exc) == text.index("some")
    assert "'all', 'any' or a number" in exc.base


def test_duplicate_attribute():
    for text in ("id and 2 of (org=acme, type=temp, org=acme)", "id and org=acme and org=acme"):
        exc = error_of(text)
        assert "duplicate" in str(exc)
        assert "org=acme" in str(exc)
    # Duplicate sub-gates are refused too.
    exc = error_of("id and any of (all of (a=1, b=2), all of (b=2, a=1))")
    assert "duplicate" in str(exc)


def test_id_attribute_is_rule_d():
    text = "id and 2 of (org=acme, id=dev-042)"
    exc = error_of(text)
    assert exc.rule == "d"
    assert caret_column(exc) == text.index("id=dev-042")
    assert "(check d)" in str(exc)
    assert "'id='" in exc.base


def test_zero_byte_attribute_is_rule_d():
    text = r'id and any of (org=acme, "\x00dflt=\x01")'
    exc = error_of(text)
    assert exc.rule == "d"
    assert caret_column(exc) == text.index('"')
    assert "0x00" in exc.base


def test_long_attribute_is_rule_c():
    long_attr = "a=" + "x" * 254  # 256 bytes
    text = f"id and any of (org=acme, {long_attr})"
    exc = error_of(text)
    assert exc.rule == "c"
    assert caret_column(exc) == text.index(long_attr)
    assert "1..255 bytes" in exc.base
    # 255 bytes is fine.
    assert len(parse_policy("id and a=" + "x" * 253, D).attrs[0]) == 255
    exc = error_of('id and ""')
    assert exc.rule == "c"


def test_k_greater_than_d_is_rule_e():
    attrs = ", ".join(f"a{i}=1" for i in range(7))
    exc = error_of(f"id and 7 of ({attrs})")
    assert exc.rule == "e"
    assert "d=6" in str(exc)
    assert attrs in str(exc)  # the message quotes the policy
    assert isinstance(parse_policy(f"id and 7 of ({attrs})", 7), Policy)


def test_attribute_needs_equals_and_keywords_are_not_attributes():
    text = "id and 2 of (org=acme, temp)"
    exc = error_of(text)
    assert caret_column(exc) == text.index("temp")
    assert "name=value" in exc.base
    text = "id and 2 of (org=acme, of)"
    exc = error_of(text)
    assert caret_column(exc) == text.index("of)")
    text = "id and 2 of (org=acme, , b=2)"
    exc = error_of(text)
    assert caret_column(exc) == text.index(", ,") + 2


def test_unterminated_quote():
    text = 'id and "org=acme'
    exc = error_of(text)
    assert caret_column(exc) == text.index('"')
    assert "unexpected character" in exc.base


def test_quoted_keywords_are_not_syntax():
    text = 'id "and" a=1'
    exc = error_of(text)
    assert caret_column(exc) == text.index('"and"')
    text = 'id and 2 "of" (a=1, b=2)'
    exc = error_of(text)  # without a bare `of`, `2` is read as an attribute
    assert caret_column(exc) == text.index("2")


def test_unicode_digit_threshold_is_a_policy_error():
    with pytest.raises(PolicyError):
        parse_policy("id and ² of (a=1, b=2)", D)


def test_huge_threshold_is_a_policy_error():
    with pytest.raises(PolicyError):
        parse_policy("id and " + "9" * 5000 + " of (a=1, b=2)", D)


def test_deeply_nested_text_is_a_policy_error():
    with pytest.raises(PolicyError):
        parse_policy("id and " + "1 of (b=2, " * 600 + "a=1" + ")" * 600, D)


def test_formula_deeper_than_limit_is_refused():
    depth = MAX_FORMULA_DEPTH + 2
    text = "id and " + "".join(f"1 of (x{i}=1, " for i in range(depth)) + "a=1" + ")" * depth
    exc = error_of(text)
    assert exc.rule == "f"
    assert "deeper" in str(exc)


# ---- check_policy, rule by rule on hand-built policies ----------------------------------------


def rule_of(policy: Policy, d: int = D) -> str | None:
    with pytest.raises(PolicyError) as info:
        check_policy(policy, d)
    return info.value.rule


def test_check_policy_accepts_good_policies():
    check_policy(Policy(2, (A, B, C), D), D)
    check_policy(Policy(1, (A,), D), D)
    check_policy(Policy(6, tuple(f"a{i}=1".encode() for i in range(6)), D), D)
    check_policy(Policy(2, (A, C), D, Gate(2, (Leaf(A), Leaf(C)))), D)


def test_rule_b_wrong_d():
    assert rule_of(Policy(2, (A, B, C), D + 1)) == "b"
    assert rule_of(Policy(2, (A, B, C), D - 1)) == "b"


def test_rule_c_order_duplicates_and_length():
    assert rule_of(Policy(2, (B, A, C), D)) == "c"
    assert rule_of(Policy(2, (A, A, C), D)) == "c"
    assert rule_of(Policy(1, (A, b""), D)) == "c"
    assert rule_of(Policy(1, (A, b"z=" + b"x" * 254), D)) == "c"


def test_rule_d_identity_and_default_prefixes():
    assert rule_of(Policy(1, (id_star(b"dev-X", 1), C), D)) == "d"  # F2a
    assert rule_of(Policy(1, (b"id=anything",), D)) == "d"
    assert rule_of(Policy(1, (default_attribute(1), C), D)) == "d"  # F2b
    assert rule_of(Policy(1, (b"\x00x=1",), D)) == "d"


def test_rule_e_threshold_range():
    assert rule_of(Policy(0, (A, B), D)) == "e"
    assert rule_of(Policy(3, (A, B), D)) == "e"
    attrs7 = tuple(f"a{i}=1".encode() for i in range(7))
    assert rule_of(Policy(7, attrs7, D)) == "e"  # k > d
    assert rule_of(Policy(1, (), D)) == "e"


def test_rule_f_mode_1():
    # Gate inputs sort by encoding, so a shorter leaf comes first: org=acme (8), type=temp (9), site=ward-7 (11).
    phi = Gate(1, (Leaf(A), Leaf(C), Leaf(B)))
    check_formula(phi)
    check_policy(Policy(1, (A,), D, phi), D)
    assert rule_of(Policy(1, (A, C), D, Gate(2, (Leaf(A), Leaf(C))))) == "f"  # F2d: k < n
    assert rule_of(Policy(1, (b"x=1",), D, phi)) == "f"  # Φ(S) = 0
    two = Gate(2, (Leaf(A), Leaf(C), Leaf(B)))
    assert rule_of(Policy(1, (A,), D, two)) == "f"
    check_policy(Policy(2, (A, C), D, two), D)
    assert rule_of(Policy(1, (A,), D, Gate(1, (Leaf(B), Leaf(A))))) == "f"  # Φ not canonical


def test_rule_a_mode_check():
    class Mode2(Policy):
        @property
        def mode(self) -> int:
            return 2

    assert rule_of(Mode2(1, (A,), D)) == "a"


# ---- Policy codec ----------------------------------------------------------------------------


POLICIES = [
    Policy(2, (A, B, C), D),
    Policy(1, (A,), D),
    Policy(2, (A, C), D, Gate(2, (Leaf(A), Gate(1, (Leaf(b"type=hum"), Leaf(C)))))),
]


@pytest.mark.parametrize("policy", POLICIES, ids=["threshold", "single", "formula"])
def test_policy_encode_decode_round_trip(policy):
    data = policy.encode()
    decoded = Policy.decode(data)
    assert decoded == policy
    assert decoded.encode() == data
    assert decoded.pd == policy.pd


@pytest.mark.parametrize("policy", POLICIES, ids=["threshold", "single", "formula"])
def test_policy_decode_refuses_every_truncation(policy):
    data = policy.encode()
    for cut in range(len(data)):
        with pytest.raises(PolicyError):
            Policy.decode(data[:cut])


@pytest.mark.parametrize("policy", POLICIES, ids=["threshold", "single", "formula"])
def test_policy_decode_refuses_trailing_bytes(policy):
    for extra in (b"\x00", b"\x01\x02", policy.encode()):
        with pytest.raises(PolicyError):
            Policy.decode(policy.encode() + extra)


def test_policy_decode_bad_version_and_mode_are_rule_a():
    data = bytearray(POLICIES[0].encode())
    for index, value in ((0, 0), (0, 2), (0, 0xFF), (1, 2), (1, 0xFF)):
        bad = bytearray(data)
        bad[index] = value
        with pytest.raises(PolicyError) as info:
            Policy.decode(bytes(bad))
        assert info.value.rule == "a"
    with pytest.raises(PolicyError) as info:
        Policy.decode(b"\x01\x00\x06\x00")
    assert info.value.rule == "a"


def test_policy_decode_keeps_d_for_rule_b():
    data = bytearray(POLICIES[0].encode())
    data[2] = D + 1  # F2c: the d byte is kept, and check_policy against mpk.d refuses it
    policy = Policy.decode(bytes(data))
    assert policy.d == D + 1
    assert rule_of(policy) == "b"


def test_policy_decode_mode_1_formula_length_must_match():
    policy = POLICIES[2]
    data = policy.encode()
    phi = encode_formula(policy.formula)
    head = data[: len(data) - len(phi) - 4]
    for size in (len(phi) - 1, len(phi) + 1, 0, 2**32 - 1):
        with pytest.raises(PolicyError) as info:
            Policy.decode(head + size.to_bytes(4, "big") + phi)
        assert info.value.rule == "f"
    mode0 = bytearray(data)
    mode0[1] = 0  # a mode-0 header followed by a formula is trailing garbage
    with pytest.raises(PolicyError):
        Policy.decode(bytes(mode0))


# ---- formula codec ---------------------------------------------------------------------------


def test_formula_encoding_layout():
    phi = Gate(1, (Leaf(b"a=1"), Leaf(b"b=2")))
    assert encode_formula(phi) == b"T\x01\x02" + b"L\x03a=1" + b"L\x03b=2"


def test_formula_decode_refuses_unsorted_children():
    with pytest.raises(PolicyError) as info:
        decode_formula(b"T\x01\x02" + b"L\x03b=2" + b"L\x03a=1")
    assert info.value.rule == "f"
    assert "strictly increasing" in str(info.value)


def test_formula_decode_refuses_duplicate_children():
    with pytest.raises(PolicyError) as info:
        decode_formula(b"T\x01\x02" + b"L\x03a=1" + b"L\x03a=1")
    assert info.value.rule == "f"


def test_formula_decode_refuses_one_input_gate():
    with pytest.raises(PolicyError) as info:
        decode_formula(b"T\x01\x01" + b"L\x03a=1")
    assert info.value.rule == "f"
    assert "at least 2" in str(info.value)


def test_formula_decode_refuses_k_out_of_range():
    for k in (0, 3, 255):
        with pytest.raises(PolicyError) as info:
            decode_formula(b"T" + bytes([k, 2]) + b"L\x03a=1" + b"L\x03b=2")
        assert info.value.rule == "f"


def test_formula_decode_refuses_trailing_and_truncated():
    good = b"T\x01\x02" + b"L\x03a=1" + b"L\x03b=2"
    assert decode_formula(good) == Gate(1, (Leaf(b"a=1"), Leaf(b"b=2")))
    with pytest.raises(PolicyError) as info:
        decode_formula(good + b"\x00")
    assert "trailing" in str(info.value)
    for cut in range(len(good)):
        with pytest.raises(PolicyError):
            decode_formula(good[:cut])


def test_formula_decode_refuses_bad_leaves_and_tags():
    with pytest.raises(PolicyError) as info:
        decode_formula(b"L\x05id=xx")
    assert info.value.rule == "d"
    with pytest.raises(PolicyError) as info:
        decode_formula(b"L\x00")
    assert info.value.rule == "c"
    with pytest.raises(PolicyError) as info:
        decode_formula(b"X\x03a=1")
    assert "tag" in str(info.value)


def test_formula_decode_refuses_too_deep():
    def chain(depth: int) -> bytes:
        data = b"L\x03z=9"
        for i in range(depth):
            data = b"T\x01\x02" + b"L\x03" + f"a={i % 10}".encode() + data
        return data

    # children sort: 'L' < 'T', so a leaf then a deeper gate is canonical
    decode_formula(chain(MAX_FORMULA_DEPTH))
    with pytest.raises(PolicyError) as info:
        decode_formula(chain(MAX_FORMULA_DEPTH + 1))
    assert "deeper" in str(info.value)
    with pytest.raises(PolicyError):
        decode_formula(b"T\x01\x02" * 5000)  # no recursion error, however deep the input claims


# ---- disclosed-set mode (§3.8) ---------------------------------------------------------------


def test_minimal_disclosure_picks_a_smallest_set():
    phi = parse_policy("id and any of (all of (a=1, b=2, c=3), all of (d=4, e=5))", D).formula
    assert minimal_disclosure(phi, {b"a=1", b"b=2", b"c=3", b"d=4", b"e=5"}) == {b"d=4", b"e=5"}
    assert minimal_disclosure(phi, {b"a=1", b"b=2", b"c=3", b"d=4"}) == {b"a=1", b"b=2", b"c=3"}
    assert minimal_disclosure(phi, {b"a=1", b"d=4"}) is None
    assert formula_holds(phi, {b"d=4", b"e=5"})
    assert not formula_holds(phi, {b"a=1", b"d=4"})


def test_formula_policy_disclose():
    registry = parse_policy("id and all of (org=acme, any of (type=hum, type=temp))", D)
    policy = registry.disclose({A, C, b"extra=1"})
    assert policy == Policy(2, (A, C), D, registry.formula)
    assert policy.mode == 1
    check_policy(policy, D)
    assert Policy.decode(policy.encode()) == policy
    assert str(policy).endswith("[disclosed: org=acme, type=temp]")
    with pytest.raises(PolicyError, match="do not satisfy"):
        registry.disclose({A, b"type=pressure"})


def test_formula_policy_disclose_refuses_more_than_d():
    attrs = [f"a{i}=1".encode() for i in range(4)]
    registry = parse_policy("id and all of (a0=1, a1=1, any of (a2=1, a3=1))", 2)
    assert isinstance(registry, FormulaPolicy)
    with pytest.raises(PolicyError, match="> d = 2"):
        registry.disclose(set(attrs))


def test_policy_for_record_enforces_mode_rules():
    flat = Policy(2, (A, B, C), D)
    assert policy_for_record(flat, None) is flat
    with pytest.raises(PolicyError, match="no disclosed set"):
        policy_for_record(flat, (A, B))
    registry = parse_policy("id and all of (org=acme, any of (type=hum, type=temp))", D)
    with pytest.raises(PolicyError, match="needs the disclosed set"):
        policy_for_record(registry, None)
    assert policy_for_record(registry, (A, C)) == Policy(2, (A, C), D, registry.formula)
    with pytest.raises(PolicyError) as info:
        policy_for_record(registry, (A,))  # Φ(S) = 0
    assert info.value.rule == "f"
    with pytest.raises(PolicyError) as info:
        policy_for_record(registry, (C, A))  # unsorted S
    assert info.value.rule == "c"
    with pytest.raises(PolicyError) as info:
        policy_for_record(registry, (A, C, id_star(b"dev-X", 1)))  # an id* smuggled into S
    assert info.value.rule == "d"
