"""Policies of ABS-IOT-V1: spec §2 ("Policy"), the checks of §3.6 step 1, formulas of §3.8.

A policy is always `id* ∧ Threshold_k(A)`. Two kinds are stored in the registry:

- `Policy` (mode 0): `Π = (k, A)` with the system's `d`;
- `FormulaPolicy` (mode 1, disclosed-set): a monotone threshold formula Φ. The signer discloses
  a set S with Φ(S) = 1 and signs `Π_S = (|S|, S, mode 1, Φ)`, a `Policy` with `formula` set.

Readable syntax (`parse_policy`): `id and 2 of (org=acme, type=temp, site=ward-7)`,
`id and org=acme and type=temp`, `id and any of (site=ward-7, 2 of (org=acme, type=temp, fw=2))`.
Attributes are `name=value` words or double-quoted strings. The same `check_policy` runs in the
parser, the authority, and Verify (review F2: dropping any check gives a forgery).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import cached_property

from edgeprov.crypto.hashing import DST_POL, expand_message_xmd

POLICY_VERSION = 1
MAX_FORMULA_DEPTH = 16
MAX_FORMULA_BYTES = 65536


class PolicyError(ValueError):
    """A malformed or ill-formed policy; `rule` names the spec §3.6 step-1 check when one applies."""

    def __init__(self, message: str, rule: str | None = None, text: str | None = None, pos: int | None = None):
        self.rule, self.text, self.pos, self.base = rule, text, pos, message
        where = f" (check {rule})" if rule else ""
        if text is not None and pos is not None:
            message = f"{message}{where} at column {pos + 1}:\n  {text}\n  {' ' * pos}^"
        else:
            message = f"{message}{where}"
        super().__init__(message)


def id_star(device_id: bytes, epoch: int) -> bytes:
    """Identity attribute `id* = "id=" ‖ u8(len id) ‖ id ‖ u32(epoch)` (spec §2)."""
    if not 1 <= len(device_id) <= 64:
        raise ValueError("device id must be 1..64 bytes")
    if not 1 <= epoch < 2**32:
        raise ValueError("epoch must be a u32 >= 1")
    return b"id=" + bytes([len(device_id)]) + device_id + epoch.to_bytes(4, "big")


def default_attribute(j: int) -> bytes:
    """Default attribute `ω_j = 0x00 ‖ "dflt=" ‖ u8(j)` (spec §2)."""
    return b"\x00dflt=" + bytes([j])


def check_attribute(attr: bytes) -> None:
    """Checks (c) length and (d) prefix of spec §3.6 step 1 for one regular attribute."""
    if not 1 <= len(attr) <= 255:
        raise PolicyError(f"attribute {attr!r} must be 1..255 bytes", rule="c")
    if attr.startswith(b"id="):
        raise PolicyError(f"attribute {attr!r} starts with 'id=': identity is only the id leaf", rule="d")
    if attr.startswith(b"\x00"):
        raise PolicyError(f"attribute {attr!r} starts with 0x00: reserved for default attributes", rule="d")


# ---- formulas (§3.8) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    attr: bytes


@dataclass(frozen=True)
class Gate:
    k: int
    children: tuple[Leaf | Gate, ...]


Formula = Leaf | Gate


def encode_formula(phi: Formula) -> bytes:
    """Leaf `'L' ‖ u8(len a) ‖ a`; gate `'T' ‖ u8(k) ‖ u8(n) ‖` n formulas (spec §2)."""
    if isinstance(phi, Leaf):
        return b"L" + bytes([len(phi.attr)]) + phi.attr
    return b"T" + bytes([phi.k, len(phi.children)]) + b"".join(encode_formula(c) for c in phi.children)


def decode_formula(data: bytes) -> Formula:
    """Parse Φ exactly: the whole input, nothing left over, and canonical (see `check_formula`)."""
    phi, end = _decode_formula_at(data, 0, 0)
    if end != len(data):
        raise PolicyError("trailing bytes after formula", rule="f")
    check_formula(phi)
    return phi


def _decode_formula_at(data: bytes, pos: int, depth: int) -> tuple[Formula, int]:
    if depth > MAX_FORMULA_DEPTH:
        raise PolicyError(f"formula deeper than {MAX_FORMULA_DEPTH}", rule="f")
    if pos + 2 > len(data):
        raise PolicyError("truncated formula", rule="f")
    tag = data[pos : pos + 1]
    if tag == b"L":
        size = data[pos + 1]
        end = pos + 2 + size
        if end > len(data):
            raise PolicyError("truncated formula leaf", rule="f")
        return Leaf(bytes(data[pos + 2 : end])), end
    if tag == b"T":
        if pos + 3 > len(data):
            raise PolicyError("truncated formula gate", rule="f")
        k, n = data[pos + 1], data[pos + 2]
        pos += 3
        children = []
        for _ in range(n):
            child, pos = _decode_formula_at(data, pos, depth + 1)
            children.append(child)
        return Gate(k, tuple(children)), pos
    raise PolicyError(f"unknown formula tag {tag!r}", rule="f")


def check_formula(phi: Formula, depth: int = 0) -> None:
    """Φ is canonical: regular-attribute leaves, gates with 2 ≤ n and 1 ≤ k ≤ n, children strictly
    increasing by encoding (so each formula has one encoding), bounded depth."""
    if depth > MAX_FORMULA_DEPTH:
        raise PolicyError(f"formula deeper than {MAX_FORMULA_DEPTH}", rule="f")
    if isinstance(phi, Leaf):
        check_attribute(phi.attr)
        return
    n = len(phi.children)
    if n < 2:
        raise PolicyError("a formula gate needs at least 2 inputs", rule="f")
    if not 1 <= phi.k <= n:
        raise PolicyError(f"formula gate threshold {phi.k} not in 1..{n}", rule="f")
    encodings = [encode_formula(c) for c in phi.children]
    if any(a >= b for a, b in itertools.pairwise(encodings)):
        raise PolicyError("formula gate inputs not strictly increasing (duplicate or unsorted)", rule="f")
    for child in phi.children:
        check_formula(child, depth + 1)


def formula_holds(phi: Formula, attrs: frozenset[bytes] | set[bytes]) -> bool:
    """Φ(S): evaluate the monotone formula on a set of attributes."""
    if isinstance(phi, Leaf):
        return phi.attr in attrs
    return sum(formula_holds(c, attrs) for c in phi.children) >= phi.k


def minimal_disclosure(phi: Formula, attrs: frozenset[bytes] | set[bytes]) -> frozenset[bytes] | None:
    """A small S ⊆ attrs with Φ(S) = 1 (each gate keeps its k cheapest satisfied inputs), or None."""
    if isinstance(phi, Leaf):
        return frozenset([phi.attr]) if phi.attr in attrs else None
    options = [s for s in (minimal_disclosure(c, attrs) for c in phi.children) if s is not None]
    if len(options) < phi.k:
        return None
    options.sort(key=lambda s: (len(s), sorted(s)))
    return frozenset().union(*options[: phi.k])


def formula_text(phi: Formula) -> str:
    if isinstance(phi, Leaf):
        return _attr_text(phi.attr)
    inner = ", ".join(formula_text(c) for c in phi.children)
    n = len(phi.children)
    count = "all" if phi.k == n else "any" if phi.k == 1 else str(phi.k)
    return f"{count} of ({inner})"


# ---- threshold policies ----------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Π = (k, A) over system parameter d; mode 1 (`formula` set) is a disclosed set Π_S."""

    k: int
    attrs: tuple[bytes, ...]
    d: int
    formula: Formula | None = None

    @property
    def mode(self) -> int:
        return 0 if self.formula is None else 1

    @property
    def n(self) -> int:
        return len(self.attrs)

    @property
    def m(self) -> int:
        """|J(Π)| = n + d − k: the number of T_j in a credential."""
        return self.n + self.d - self.k

    @cached_property
    def J(self) -> tuple[bytes, ...]:
        """Verifier attribute list `J(Π) = A ‖ (ω_1 … ω_{d−k})` (spec §2)."""
        return self.attrs + tuple(default_attribute(j) for j in range(1, self.d - self.k + 1))

    def encode(self) -> bytes:
        """enc(Π) = u8(1) ‖ u8(mode) ‖ u8(d) ‖ u16(k) ‖ u16(n) ‖ (u8(len a) ‖ a)… [‖ u32(len Φ) ‖ Φ]."""
        out = bytearray([POLICY_VERSION, self.mode, self.d])
        out += self.k.to_bytes(2, "big") + self.n.to_bytes(2, "big")
        for a in self.attrs:
            out += bytes([len(a)]) + a
        if self.formula is not None:
            phi = encode_formula(self.formula)
            out += len(phi).to_bytes(4, "big") + phi
        return bytes(out)

    @cached_property
    def pd(self) -> bytes:
        """Policy digest `pd = XMD(enc(Π), DST_POL, 32)` (spec §2)."""
        return expand_message_xmd(self.encode(), DST_POL, 32)

    @classmethod
    def decode(cls, data: bytes) -> Policy:
        """Strict parse of enc(Π); checks (a) and the shape, not d (the caller knows mpk.d)."""
        if len(data) < 7:
            raise PolicyError("policy encoding too short", rule="a")
        version, mode, d = data[0], data[1], data[2]
        if version != POLICY_VERSION or mode not in (0, 1):
            raise PolicyError(f"unsupported policy version {version} / mode {mode}", rule="a")
        k, n = int.from_bytes(data[3:5], "big"), int.from_bytes(data[5:7], "big")
        pos, attrs = 7, []
        for _ in range(n):
            if pos >= len(data) or pos + 1 + data[pos] > len(data):
                raise PolicyError("truncated policy attribute list")
            attrs.append(bytes(data[pos + 1 : pos + 1 + data[pos]]))
            pos += 1 + data[pos]
        formula = None
        if mode == 1:
            if pos + 4 > len(data):
                raise PolicyError("truncated formula length")
            size = int.from_bytes(data[pos : pos + 4], "big")
            if size > MAX_FORMULA_BYTES or pos + 4 + size != len(data):
                raise PolicyError("formula length does not match the encoding", rule="f")
            formula = decode_formula(bytes(data[pos + 4 :]))
            pos = len(data)
        if pos != len(data):
            raise PolicyError("trailing bytes after policy")
        return cls(k, tuple(attrs), d, formula)

    def __str__(self) -> str:
        if self.formula is not None:
            disclosed = ", ".join(map(_attr_text, self.attrs))
            return f"id and {formula_text(self.formula)} [disclosed: {disclosed}]"
        gate = Gate(self.k, tuple(Leaf(a) for a in self.attrs))
        return "id and " + formula_text(gate if self.n > 1 else gate.children[0])


def check_policy(policy: Policy, d: int) -> None:
    """Spec §3.6 step 1, checks (a)–(f), run alike by the parser, the authority and Verify.

    Dropping (d)'s `id=` half, its 0x00 half, (b), or k = n in (f) gives forgeries F2a–F2d.
    """
    if policy.mode not in (0, 1):
        raise PolicyError(f"mode {policy.mode} not in {{0, 1}}", rule="a")
    if policy.d != d:
        raise PolicyError(f"policy's d = {policy.d} differs from the system's d = {d}", rule="b")
    if not policy.n >= 1:
        raise PolicyError("policy lists no attribute", rule="e")
    for a in policy.attrs:
        check_attribute(a)
    if any(a >= b for a, b in zip(policy.attrs, policy.attrs[1:], strict=False)):
        raise PolicyError("attributes not strictly increasing bytewise (unsorted or duplicate)", rule="c")
    if not 1 <= policy.k <= min(policy.n, d):
        raise PolicyError(f"threshold k = {policy.k} not in 1..min(n={policy.n}, d={d})", rule="e")
    if policy.formula is not None:
        if policy.k != policy.n:
            raise PolicyError("disclosed-set policy (mode 1) needs k = n", rule="f")
        check_formula(policy.formula)
        if not formula_holds(policy.formula, frozenset(policy.attrs)):
            raise PolicyError("the disclosed set does not satisfy the formula", rule="f")


@dataclass(frozen=True)
class FormulaPolicy:
    """A registry entry in disclosed-set mode (§3.8): the registry holds Φ, the signer discloses S."""

    formula: Formula
    d: int

    def disclose(self, attrs: frozenset[bytes] | set[bytes]) -> Policy:
        """The Π_S a device holding `attrs` signs: a minimal S with Φ(S) = 1 and |S| ≤ d."""
        chosen = minimal_disclosure(self.formula, attrs)
        if chosen is None:
            raise PolicyError("the device's attributes do not satisfy the formula")
        if len(chosen) > self.d:
            raise PolicyError(f"the smallest satisfying set has {len(chosen)} > d = {self.d} attributes")
        return self.with_disclosed(tuple(sorted(chosen)))

    def with_disclosed(self, disclosed: tuple[bytes, ...]) -> Policy:
        """Π_S = (|S|, S, 1, Φ) as a verifier builds it from the disclosed set (spec §3.6 step 0)."""
        policy = Policy(len(disclosed), disclosed, self.d, self.formula)
        check_policy(policy, self.d)
        return policy

    def __str__(self) -> str:
        return "id and " + formula_text(self.formula)


RegistryPolicy = Policy | FormulaPolicy


def policy_for_record(registry: RegistryPolicy, disclosed: tuple[bytes, ...] | None) -> Policy:
    """The Π a record is verified under: the registry's, never one the record names (spec §3.6 step 0)."""
    if isinstance(registry, Policy):
        if disclosed is not None:
            raise PolicyError("a threshold (mode 0) policy takes no disclosed set")
        return registry
    if disclosed is None:
        raise PolicyError("a formula (mode 1) policy needs the disclosed set S")
    return registry.with_disclosed(disclosed)


# ---- readable syntax -------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(?P<punct>[(),])|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s(),"]+))')
_KEYWORDS = {"id", "and", "of", "all", "any"}


def _attr_text(attr: bytes) -> str:
    try:
        text = attr.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and re.fullmatch(r"[^\s(),\"\\]+", text) and "=" in text and text.isprintable():
        return text
    return '"' + "".join(_escape(b) for b in attr) + '"'


def _escape(byte: int) -> str:
    ch = chr(byte)
    if ch in '"\\':
        return "\\" + ch
    return ch if 0x20 <= byte < 0x7F else f"\\x{byte:02x}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self.error("unexpected character", pos + len(text[pos:]) - len(text[pos:].lstrip()))
            start = match.start(match.lastgroup)
            value = match.group(match.lastgroup)
            self.tokens.append((match.lastgroup, value, start - (1 if match.lastgroup == "quoted" else 0)))
            pos = match.end()
        self.i = 0

    def error(self, message: str, pos: int | None = None, rule: str | None = None) -> PolicyError:
        if pos is None:
            pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return PolicyError(message, rule=rule, text=self.text, pos=pos)

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expect(self, value: str) -> None:
        token = self.peek()
        if token is None or token[0] == "quoted" or token[1] != value:
            raise self.error(f"expected '{value}'")
        self.i += 1

    def policy(self) -> Formula:
        token = self.peek()
        if token is None or token[0] != "word" or token[1] != "id":
            raise self.error("a policy starts with 'id and': every policy binds the device's identity (P6)")
        self.i += 1
        self.expect("and")
        items = [self.item(1)]
        while (token := self.peek()) is not None and token[1] == "and" and token[0] == "word":
            self.i += 1
            items.append(self.item(1))
        if self.peek() is not None:
            raise self.error("unexpected text after the policy")
        return items[0] if len(items) == 1 else Gate(len(items), tuple(items))

    def item(self, depth: int) -> Formula:
        if depth > MAX_FORMULA_DEPTH:
            raise self.error(f"gates nested deeper than {MAX_FORMULA_DEPTH}", rule="f")
        token = self.peek()
        if token is None:
            raise self.error("expected an attribute or 'N of (...)'")
        kind, value, pos = token
        following = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
        if kind == "word" and following is not None and following[1] == "of" and following[0] == "word":
            return self.threshold(depth)
        self.i += 1
        if kind == "punct" or (kind == "word" and value in _KEYWORDS):
            raise self.error("expected an attribute", pos)
        attr = _unescape(value) if kind == "quoted" else _utf8(value)
        if kind == "word" and "=" not in value:  # quoted strings carry arbitrary bytes
            raise self.error("an attribute is written name=value", pos)
        try:
            check_attribute(attr)
        except PolicyError as exc:
            raise PolicyError(exc.base, rule=exc.rule, text=self.text, pos=pos) from None
        return Leaf(attr)

    def threshold(self, depth: int) -> Formula:
        _, count, pos = self.tokens[self.i]
        self.i += 1
        self.expect("of")
        self.expect("(")
        children = [self.item(depth + 1)]
        while (token := self.peek()) is not None and token[1] == ",":
            self.i += 1
            children.append(self.item(depth + 1))
        self.expect(")")
        n = len(children)
        if count == "all":
            k = n
        elif count == "any":
            k = 1
        elif count.isascii() and count.isdigit() and len(count) <= 3:
            k = int(count)
        else:
            raise self.error("a threshold is 'all', 'any' or a number", pos)
        if not 1 <= k <= n:
            raise self.error(f"threshold {k} not in 1..{n} (the number of inputs)", pos)
        return Gate(k, tuple(children))


def _unescape(text: str) -> bytes:
    return re.sub(rb"\\x([0-9a-fA-F]{2})|\\(.)", _unescape_one, _utf8(text))


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise PolicyError("attributes must be valid UTF-8 text") from None


def _unescape_one(match: re.Match[bytes]) -> bytes:
    return bytes([int(match.group(1), 16)]) if match.group(1) else match.group(2)


def _canonical(phi: Formula) -> Formula:
    """Sort gate inputs, collapse single-input gates and refuse duplicates."""
    if isinstance(phi, Leaf):
        return phi
    children = sorted((_canonical(c) for c in phi.children), key=encode_formula)
    if len(children) == 1:
        return children[0]
    encodings = [encode_formula(c) for c in children]
    for a, b in itertools.pairwise(encodings):
        if a == b:
            raise PolicyError(f"duplicate input in a gate: {formula_text(children[encodings.index(a)])}")
    return Gate(phi.k, tuple(children))


def parse_policy(text: str, d: int) -> RegistryPolicy:
    """Parse the readable syntax into a checked registry policy (mode 0 when flat, else mode 1)."""
    phi = _canonical(_Parser(text).policy())
    if isinstance(phi, Leaf):
        policy: RegistryPolicy = Policy(1, (phi.attr,), d)
    elif all(isinstance(c, Leaf) for c in phi.children):
        policy = Policy(phi.k, tuple(sorted(c.attr for c in phi.children)), d)
    else:
        check_formula(phi)
        return FormulaPolicy(phi, d)
    try:
        check_policy(policy, d)
    except PolicyError as exc:
        raise PolicyError(f"{exc.base} in policy {text!r}", rule=exc.rule) from None
    return policy
