"""Full or compact signature, decided per reading when it is submitted (spec §3.6 L4, §5).

A compact signature (`0x81 ‖ W ‖ R ‖ cred_id`, 129 bytes instead of several hundred) verifies only
against a credential the ledger stored from a verified full-form signature for the same key
(cred_id, id, epoch, pd); the endorsers then skip decoding and subgroup-checking the credential, and
the contract does not write it again. The outbox keeps the full form, so a replay after a crash
needs nothing but the outbox; `CompactLink` picks the form at each submission:

- full until the gateway has seen a full-form reading with that credential key COMMITTED VALID (the
  ledger then holds the credential); compact from then on. Readings submitted before that commit
  stay full. The marks are in memory: the gateway draws a fresh credential (fresh cred_id) at every
  start (devices.py), and an empty set only costs one full-form reading per device.
- a compact reading refused with BAD_SIGNATURE (the ledger lost the credential: a reset, or an
  endorser that has not applied the credential's block yet) drops the mark and is submitted again
  at once in full form: the same W, R with its credential, no new signing. Its args differ, so its
  id differs and the refusal recorded under the compact id does not shadow it.

A reading thus has two ids, one per form, both fixed by the outbox bytes (ApiLink's nonce is the id of
the bytes submitted). When one form is answered DUPLICATE_READING (its record exists) or
MVCC_READ_CONFLICT (both forms were ordered), the other form's id is looked up: if that one is
committed (a compact commit whose outcome a crash lost, replayed in full form), that is the answer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from edgeprov.crypto.credstore import CredKey
from edgeprov.crypto.objects import G1_SIZE, SIG_COMPACT, Credential
from gateway.ledger_link import DUPLICATE, Commit, LedgerLink, LedgerUnavailable, transaction_id
from gateway.transaction import encode

log = logging.getLogger("edgeprov.gateway.compact")

HEAD = 1 + 2 * G1_SIZE  # form byte, W, R: the same in both forms
REFUSED_COMPACT = "BAD_SIGNATURE"  # what endorsers answer for a compact signature whose credential they lack
OTHER_FORM_MAY_HOLD = frozenset({DUPLICATE, "MVCC_READ_CONFLICT"})


@dataclass(frozen=True)
class Forms:
    """One reading's Data Transfer transaction in both forms, and its credential key."""

    full: bytes
    compact: bytes
    key: CredKey

    @classmethod
    def of(cls, tx: bytes) -> Forms:
        """From the outbox bytes (full form). The credential decode is cached per process
        (Credential.decode), so after a credential's first reading this is JSON work only."""
        doc = json.loads(tx)
        sig = bytes.fromhex(doc["signature"])
        cred_id = Credential.decode(sig[HEAD:]).cred_id
        compact = encode({**doc, "signature": (bytes([SIG_COMPACT]) + sig[1:HEAD] + cred_id).hex()})
        return cls(tx, compact, CredKey(cred_id, doc["device"].encode(), doc["epoch"], bytes.fromhex(doc["pd"])))


@dataclass(frozen=True)
class Sent:
    """The form of a reading handed to the ledger."""

    forms: Forms
    compact: bool

    @property
    def tx(self) -> bytes:
        return self.forms.compact if self.compact else self.forms.full

    @property
    def other(self) -> bytes:
        return self.forms.full if self.compact else self.forms.compact

    @property
    def outbox_id(self) -> bytes:
        return transaction_id(self.forms.full)


class CredentialMarks:
    """The credential keys this gateway saw committed on the ledger with a full-form reading (L4)."""

    def __init__(self) -> None:
        self._on_ledger: set[CredKey] = set()

    def choose(self, forms: Forms) -> Sent:
        return Sent(forms, forms.key in self._on_ledger)

    def learn(self, sent: Sent, commit: Commit) -> bool:
        """Take the ledger's answer to `sent` into account; True: submit the reading again in full form."""
        if not sent.compact:
            if commit.valid:
                self._on_ledger.add(sent.forms.key)
            return False
        if commit.reason != REFUSED_COMPACT:
            return False
        self._on_ledger.discard(sent.forms.key)
        return True


class CompactLink(LedgerLink):
    """A LedgerLink that submits each outbox transaction in the form `CredentialMarks` chooses; the
    relay keeps naming readings by their outbox transaction id."""

    def __init__(self, inner: LedgerLink) -> None:
        self.inner, self.marks = inner, CredentialMarks()
        self._sent: dict[bytes, Sent] = {}  # outbox tx id -> the form submitted, until decided

    async def submit(self, txs: list[bytes], wait_s: float = 0.0) -> list[Commit | None]:
        sent = [self.marks.choose(Forms.of(tx)) for tx in txs]
        found = await self.inner.submit([s.tx for s in sent], wait_s)
        return await self._settle(sent, found)

    async def outcomes(self, txids: list[bytes], wait_s: float) -> list[Commit | None]:
        missing = [t for t in txids if t not in self._sent]
        if missing:
            raise LedgerUnavailable(f"{len(missing)} transactions were not submitted through this link")
        sent = [self._sent[t] for t in txids]
        found = await self.inner.outcomes([transaction_id(s.tx) for s in sent], wait_s)
        return await self._settle(sent, found)

    async def recorded(self, txs: list[bytes]) -> list[Commit | None]:
        return await self.inner.recorded(txs)

    async def close(self) -> None:
        await self.inner.close()

    async def _settle(self, sent: list[Sent], found: list[Commit | None]) -> list[Commit | None]:
        found = list(found)
        await self._resend_full(sent, found)
        await self._other_forms(sent, found)
        for s, commit in zip(sent, found, strict=True):
            if commit is None:
                self._sent[s.outbox_id] = s
            else:
                self._sent.pop(s.outbox_id, None)
        return found

    async def _resend_full(self, sent: list[Sent], found: list[Commit | None]) -> None:
        again = [k for k, c in enumerate(found) if c is not None and self.marks.learn(sent[k], c)]
        if not again:
            return
        for k in again:
            sent[k] = Sent(sent[k].forms, compact=False)
        log.warning(
            "%d compact signatures refused (first: %s epoch %d): the ledger does not hold their credential;"
            " submitting them in full form",
            len(again),
            sent[again[0]].forms.key.device_id.decode(),
            sent[again[0]].forms.key.epoch,
        )
        resent = await self.inner.submit([sent[k].tx for k in again])
        for k, commit in zip(again, resent, strict=True):
            found[k] = commit
            if commit is not None:
                self.marks.learn(sent[k], commit)

    async def _other_forms(self, sent: list[Sent], found: list[Commit | None]) -> None:
        """A reading refused as already recorded may be recorded under its other form's id."""
        suspects = [k for k, c in enumerate(found) if c is not None and not c.valid and c.reason in OTHER_FORM_MAY_HOLD]
        if not suspects:
            return
        held = await self.inner.recorded([sent[k].other for k in suspects])
        for k, commit in zip(suspects, held, strict=True):
            if commit is not None:
                found[k] = commit
