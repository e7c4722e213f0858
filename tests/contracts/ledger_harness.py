"""An in-process ledger for contract tests: real endorsers and the real validator on MemoryState.

Also builds what the outside world sends: AA-signed registrations, signed readings with signed
path hops (ABS-IOT-V1 through tests/unit/abs_helpers.py), and client keys.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from abs_helpers import TS0, Device, System

from edgeprov.crypto.credstore import CredentialStore
from edgeprov.pathhop import sign_hop
from edgeprov.registration import Registration, attributes_digest
from edgeprov.wire import Payload
from ledger_node.app import TxResult
from ledger_node.bft.signing import Ed25519Signer, Ed25519Verifier
from ledger_node.block import Block
from ledger_node.contracts import Env
from ledger_node.endorsement.endorser import Endorsed, Endorser, Refused
from ledger_node.endorsement.proposal import Proposal, Transaction, make_proposal
from ledger_node.endorsement.validator import ContractApp
from ledger_node.state import MemoryState, get

CHAIN = b"edgeprov-test"
POLICY = "id and 2 of (org=acme, type=temp, site=ward-7)"
ATTRS = ["org=acme", "type=temp", "site=ward-7"]


class Fleet:
    """The authority side: ABS system, AA signing key, devices and gateway keys."""

    def __init__(self, seed: bytes = b"edgeprov contracts") -> None:
        self.system = System(seed)
        self.aa = Ed25519PrivateKey.generate()
        self.gateways: dict[str, Ed25519PrivateKey] = {}
        self.devices: dict[str, Device] = {}

    @property
    def aa_fp(self) -> str:
        return self.system.mpk.aa_fp.hex()

    def env(self) -> Env:
        return Env(self.system.mpk, self.aa.public_key(), credentials=CredentialStore())

    def device(self, name: str, gateway: str = "gw-1", epoch: int = 1, policy: str = POLICY) -> dict:
        dev = self.system.device(name, ATTRS, policy, epoch)
        self.devices[name] = dev
        reg = Registration("register", name, epoch, self.aa_fp, gateway, policy, dev.policy.pd.hex(),
                           attributes_digest([a.encode() for a in ATTRS]), TS0)  # fmt: skip
        return reg.sign(self.aa)

    def revoke(self, name: str) -> dict:
        dev = self.devices[name]
        return Registration("revoke", name, dev.k_iot.epoch, self.aa_fp, issued_at_ms=TS0).sign(self.aa)

    def gateway(self, name: str) -> dict:
        key = self.gateways.setdefault(name, Ed25519PrivateKey.generate())
        public = key.public_key().public_bytes_raw().hex()
        return Registration("gateway", "", 1, self.aa_fp, name, issued_at_ms=TS0, public_key=public).sign(self.aa)

    def reading(self, name: str, ctr: int, values: dict | None = None, inputs: tuple[bytes, ...] = (),
                gateway: str = "gw-1", ts: int | None = None, compact: bool = False) -> dict:  # fmt: skip
        dev = self.devices[name]
        msg = Payload.of(values or {"temp_mc": 4200 + ctr}, inputs).encode()
        signed = dev.sign(ctr, record=dev.record(ctr, msg, ts=ts))
        stmt = signed.record.statement(self.system.mpk.aa_fp)
        hop = sign_hop(self.gateways[gateway], gateway, (ts or TS0 + ctr) + 5, stmt)
        sig = signed.sig.compact() if compact else signed.sig
        r = signed.record
        return {"device": name, "epoch": r.epoch, "ctr": r.ctr, "ts_ms": r.ts_ms, "msg": r.msg.hex(),
                "pd": r.pd.hex(), "signature": sig.encode().hex(), "hops": [hop.to_json()]}  # fmt: skip

    def rehop(self, reading: dict, gateway: str = "gw-1") -> dict:
        """A gateway that altered a reading signs its own hop over the altered statement."""
        from edgeprov.crypto.abs_iot import Record

        record = Record(reading["device"].encode(), reading["epoch"], reading["ctr"], reading["ts_ms"],
                        bytes.fromhex(reading["msg"]), bytes.fromhex(reading["pd"]))  # fmt: skip
        hop = sign_hop(self.gateways[gateway], gateway, reading["ts_ms"] + 5, record.statement(self.system.mpk.aa_fp))
        return {**reading, "hops": [hop.to_json()]}


class Ledger:
    """n endorsers, quorum f+1, one shared state; blocks are built by hand in submission order."""

    def __init__(self, fleet: Fleet, n: int = 4) -> None:
        keys = [Ed25519PrivateKey.generate() for _ in range(n)]
        self.endorsers = [Endorser(fleet.env(), Ed25519Signer(i, k), CHAIN) for i, k in enumerate(keys)]
        verifier = Ed25519Verifier({i: k.public_key().public_bytes_raw() for i, k in enumerate(keys)})
        self.app = ContractApp(CHAIN, verifier, n, (n - 1) // 3 + 1, 5_000)
        self.state = MemoryState()
        self.height = 0
        self.now_ms = TS0 + 10_000

    def enrol(self, fleet: Fleet, *devices: str, gateway: str = "gw-1") -> Ledger:
        """Commit the AA-signed registrations of `gateway` and of `devices` behind it; returns self."""
        self.run("registry", "gateway", {"doc": fleet.gateway(gateway)})
        for name in devices:
            self.run("registry", "register", {"doc": fleet.device(name, gateway)})
        return self

    def endorse(self, proposal: Proposal, nodes: tuple[int, ...] = (0, 1)) -> Transaction | Refused:
        answers = [self.endorsers[i].endorse(self.state, [proposal.to_json()])[0] for i in nodes]
        for answer in answers:
            if isinstance(answer, Refused):
                return answer
        first: Endorsed = answers[0]
        return Transaction(proposal, first.rwset, first.response, tuple((a.node, a.sig) for a in answers))

    def commit(self, txs: list[Transaction | bytes]) -> list[TxResult]:
        raw = tuple(t if isinstance(t, bytes) else t.encode() for t in txs)
        self.height += 1
        block = Block.build(self.height, self.height, bytes(32), 0, self.now_ms, raw)
        applied = self.app.apply_block(block, self.state)
        self.state.apply(applied.writes)
        return applied.results

    def commit_dry(self, txs: list[bytes]) -> list[TxResult]:
        """Validate a block of raw transactions without applying its writes."""
        block = Block.build(self.height + 1, self.height + 1, bytes(32), 0, self.now_ms, tuple(txs))
        return self.app.apply_block(block, self.state).results

    def run(self, contract: str, fn: str, args: dict, key: Ed25519PrivateKey | None = None) -> dict:
        """Endorse and commit one proposal; raise AssertionError with the reason if refused or invalid."""
        tx = self.endorse(make_proposal(contract, fn, args, key))
        if isinstance(tx, Refused):
            raise Rejected(tx.code, tx.message)
        (result,) = self.commit([tx])
        if not result.valid:
            raise Rejected(result.reason, "invalid at validation")
        return tx.response

    def value(self, k: str) -> dict | None:
        found = get(self.state, k)
        return found.value if found else None


class Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def client() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    return key, key.public_key().public_bytes_raw().hex()
