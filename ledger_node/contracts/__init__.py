"""Deterministic contracts run by endorsers (DESIGN.md §2 step 5, §4; issue 4).

A contract is a module with a `NAME` and a `FUNCTIONS` table mapping a function name to
`fn(ctx: TxContext, args: dict) -> dict`. Functions read and write state only through the
context, raise `ContractError(code, message)` to refuse, and return a small JSON response. They
never read the clock or randomness: anything time-dependent is left in `ctx.checks` for the
validator, which decides it against the block timestamp.

Layers (second seed paper §4): `storage` (records), `generic` (ownership, traces, lineage rules),
the specific use cases `vaccine`, `health`, `vehicle` (context schema, minting policy), plus the
first seed paper's `registry` (Device Registration), `readings` (Data Transfer) and
`verification` (Provenance Verification).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov.crypto.credstore import CredentialStore
from edgeprov.crypto.objects import MasterPublicKey

_DP = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_RECORD = re.compile(r"[A-Za-z0-9_.@#/-]{1,160}")
_PRINCIPAL = re.compile(r"[0-9a-f]{64}")


class ContractError(Exception):
    """A refusal: `code` is a stable upper-case reason code, `message` says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass
class Env:
    """What every endorser is configured with: the authority's public keys and the ledger rules' knobs."""

    mpk: MasterPublicKey
    aa_key: Ed25519PublicKey
    skew_ms: int = 5_000
    late_ms: int = 60_000
    credentials: CredentialStore | None = None


Function = Callable[..., dict]


def check_dp(value: object, what: str = "data point") -> str:
    if not isinstance(value, str) or not _DP.fullmatch(value):
        raise ContractError("BAD_ARGUMENT", f"{what} id must be 1..64 of [A-Za-z0-9_.-]")
    return value


def check_record_id(value: object) -> str:
    if not isinstance(value, str) or not _RECORD.fullmatch(value):
        raise ContractError("BAD_ARGUMENT", "record id must be 1..160 of [A-Za-z0-9_.@#/-]")
    return value


def check_principal(value: object, what: str = "client") -> str:
    """Clients are named by their Ed25519 public key, lower-case hex."""
    if not isinstance(value, str) or not _PRINCIPAL.fullmatch(value):
        raise ContractError("BAD_ARGUMENT", f"{what} must be a 32-byte Ed25519 public key in lower-case hex")
    return value


def arg(args: dict, name: str, kind: type | tuple[type, ...], default: object = ...) -> object:
    """A typed argument; bools are not ints here (JSON true is not 1)."""
    if name not in args:
        if default is ...:
            raise ContractError("BAD_ARGUMENT", f"missing argument {name!r}")
        return default
    value = args[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ContractError("BAD_ARGUMENT", f"argument {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise ContractError("BAD_ARGUMENT", f"argument {name!r} has the wrong type")
    return value


def need_creator(ctx) -> str:
    if not ctx.creator:
        raise ContractError("UNAUTHENTICATED", "this function needs a signed proposal (creator key)")
    return ctx.creator


def contracts() -> dict[str, dict[str, Function]]:
    """name -> function table; imported lazily so the package imports cheaply."""
    from ledger_node.contracts import generic, health, readings, registry, vaccine, vehicle, verification

    return {m.NAME: m.FUNCTIONS for m in (generic, health, readings, registry, vaccine, vehicle, verification)}
