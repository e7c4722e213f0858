"""Real fixtures for proof bundles: Ed25519 node keys, certified blocks in a SqliteBlockStore, and
an ABS-IOT-V1 system with one registered device (test RNG, so the slow setup runs once)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeprov.crypto.abs_iot import Record, combine, complete, credential, gateway_share, keygen, precompute, setup
from edgeprov.crypto.objects import Credential, KFog, KIot, MasterPublicKey
from edgeprov.crypto.policy import parse_policy
from edgeprov.crypto.rng import TestRng
from edgeprov.pathhop import sign_hop
from edgeprov.registration import Registration, attributes_digest
from ledger_node.app import VALID, AppliedBlock, TxResult
from ledger_node.bft.signing import Ed25519Signer, ledger_info_message
from ledger_node.block import ZERO_HASH, Block, CommitCert, tx_id
from ledger_node.blockstore import SqliteBlockStore
from ledger_node.endorsement.proposal import Transaction, make_proposal
from ledger_node.proof import AuthorityKeys, NodeSet, build_proof_bundle, merge_attestations

POLICY = "id and 2 of (org=acme, type=temp, site=ward-7)"
ATTRS = [b"org=acme", b"type=temp", b"site=ward-7"]


@dataclass
class Cluster:
    """Four real node keys; certifies blocks the way the replicas do (2f+1 commit attestations)."""

    keys: list[Ed25519PrivateKey]
    nodes: NodeSet

    @classmethod
    def create(cls, chain_id: str = "edgeprov-test-4") -> Cluster:
        keys = [Ed25519PrivateKey.generate() for _ in range(4)]
        return cls(keys, NodeSet(chain_id, tuple(k.public_key().public_bytes_raw() for k in keys)))

    def signer(self, node: int) -> Ed25519Signer:
        return Ed25519Signer(node, self.keys[node])

    def certify(self, block: Block, signers: tuple[int, ...] = (0, 1, 2)) -> CommitCert:
        message = ledger_info_message(self.nodes.chain_id.encode(), block.hash, ZERO_HASH)
        return CommitCert(block.hash, ZERO_HASH, tuple((i, self.keys[i].sign(message)) for i in signers))


@dataclass
class Device:
    """One registered device of a test-RNG ABS system, signing readings as device and gateway do."""

    mpk: MasterPublicKey
    aa_signing: Ed25519PrivateKey
    k_iot: KIot
    k_fog: KFog
    cred: Credential
    rng: TestRng
    policy_text: str
    gw_key: Ed25519PrivateKey

    @property
    def aa(self) -> AuthorityKeys:
        return AuthorityKeys(self.mpk, self.aa_signing.public_key())

    def registration(self, **over) -> dict:
        policy = parse_policy(self.policy_text, self.mpk.d)
        fields = dict(action="register", device=self.k_iot.device_id.decode(), epoch=self.k_iot.epoch,
                      aa_fp=self.mpk.aa_fp.hex(), gateway="gw-1", policy=str(policy), pd=policy.pd.hex(),
                      attributes_digest=attributes_digest(ATTRS), issued_at_ms=1)  # fmt: skip
        fields.update(over)
        return Registration(**fields).sign(self.aa_signing)

    def gateway_registration(self, **over) -> dict:
        fields = dict(action="gateway", device="", epoch=1, aa_fp=self.mpk.aa_fp.hex(), gateway="gw-1",
                      public_key=self.gw_key.public_key().public_bytes_raw().hex(), issued_at_ms=1)  # fmt: skip
        fields.update(over)
        return Registration(**fields).sign(self.aa_signing)

    def hops(self, record: Record, gateway: str = "gw-1") -> list[dict]:
        return [sign_hop(self.gw_key, gateway, record.ts_ms + 5, record.statement(self.mpk.aa_fp)).to_json()]

    def record(self, ctr: int, **over) -> Record:
        pd = parse_policy(self.policy_text, self.mpk.d).pd
        fields = dict(device_id=self.k_iot.device_id, epoch=self.k_iot.epoch, ctr=ctr,
                      ts_ms=1_700_000_000_000 + ctr, msg=b"\x01\x01\x04temp\x00\x00\x10\x9a\x00", pd=pd)  # fmt: skip
        fields.update(over)
        return Record(**fields)

    def sign(self, record: Record, compact: bool = False) -> bytes:
        c = record.statement(self.mpk.aa_fp).c
        entry = precompute(self.mpk.h1, self.k_iot.G_iot, b"\x07" * 32, record.ctr, self.rng)
        sig = combine(complete(self.mpk.u1, entry, c), gateway_share(self.mpk, self.k_fog, c, self.rng), self.cred)
        return (sig.compact() if compact else sig).encode()


@pytest.fixture(scope="session")
def device() -> Device:
    rng = TestRng(b"edgeprov proof tests")
    mpk, alpha = setup(6, rng)
    k_iot, k_fog = keygen(mpk, alpha, b"dev-042", 1, ATTRS, rng)
    cred = credential(k_fog, parse_policy(POLICY, mpk.d), rng)
    return Device(mpk, Ed25519PrivateKey.generate(), k_iot, k_fog, cred, rng, POLICY, Ed25519PrivateKey.generate())


def endorsed(contract: str, fn: str, args: dict) -> bytes:
    """An endorsed-transaction payload as blocks carry it (endorsements are the validator's
    business, not the auditor's: a committed, attested-valid transaction had enough of them)."""
    return Transaction(make_proposal(contract, fn, args), {"reads": [], "writes": [], "checks": {}}, {}, ()).encode()


def registration_tx(doc: dict) -> bytes:
    return endorsed("registry", "register", {"doc": doc})


def gateway_tx(doc: dict) -> bytes:
    return endorsed("registry", "gateway", {"doc": doc})


def reading_args(record: Record, sig: bytes, hops: list[dict]) -> dict:
    args = {"device": record.device_id.decode(), "epoch": record.epoch, "ctr": record.ctr, "ts_ms": record.ts_ms,
            "msg": record.msg.hex(), "pd": record.pd.hex(), "signature": sig.hex(), "hops": hops}  # fmt: skip
    if record.disclosed is not None:
        args["disclosed"] = [a.hex() for a in record.disclosed]
    return args


def reading_tx(record: Record, sig: bytes, hops: list[dict]) -> bytes:
    return endorsed("readings", "submit", reading_args(record, sig, hops))


def batch_tx(readings: list[dict]) -> bytes:
    """A reading batch transaction (readings.submit_batch) of these readings' args."""
    items = [{"args": args, "nonce": f"n{i}"} for i, args in enumerate(readings)]
    return endorsed("readings", "submit_batch", {"items": items})


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return Cluster.create()


def filler(i: int) -> bytes:
    return b'{"contract":"storage","op":"noop","n":%d}' % i


async def _store_blocks(
    path: Path, cluster: Cluster, blocks: list[tuple[list[bytes], list[TxResult]]]
) -> SqliteBlockStore:
    store = SqliteBlockStore(path)
    await store.open()
    prev = ZERO_HASH
    for height, (txs, results) in enumerate(blocks, start=1):
        block = Block.build(height, height, prev, height % 4, int(time.time() * 1000), tuple(txs))
        store.stage(block, cluster.certify(block), AppliedBlock(results))
        prev = block.hash
    await store.flush()
    return store


def certified_bundle(
    tmp_path: Path,
    cluster: Cluster,
    reg_tx: bytes,
    rec_tx: bytes,
    rec_result: TxResult = VALID,
    attesters: tuple[int, ...] = (0, 3),
    credential: bytes | None = None,
    reading_first: bool = False,
    gateway_txs: tuple[bytes, ...] = (),
    item: int | None = None,
) -> dict:
    """A bundle for `rec_tx` (reading `item` of it when it is a reading batch) built from a real store
    holding two certified blocks, with the result attestations of `attesters` merged as an auditor
    would collect them."""
    reg_block = ([filler(1), reg_tx, filler(2), *gateway_txs], [VALID] * (3 + len(gateway_txs)))
    rec_block = (
        [filler(3), filler(4), filler(5), rec_tx, filler(6)],
        [VALID] * 3 + [rec_result, VALID],
    )
    blocks = [rec_block, reg_block] if reading_first else [reg_block, rec_block]

    async def build() -> list[dict]:
        store = await _store_blocks(tmp_path / "node.db", cluster, blocks)
        try:
            return [
                await build_proof_bundle(
                    store,
                    cluster.nodes,
                    tx_id(rec_tx),
                    tx_id(reg_tx),
                    tuple(map(tx_id, gateway_txs)),
                    cluster.signer(i),
                    credential,
                    item,
                )
                for i in attesters
            ]
        finally:
            await store.close()

    return merge_attestations(asyncio.run(build()))


@pytest.fixture
def make_bundle(tmp_path: Path, cluster: Cluster):
    """`make_bundle(reg_tx, rec_tx, **options)`: see certified_bundle."""
    counter = iter(range(1000))
    return lambda reg_tx, rec_tx, **kw: certified_bundle(tmp_path / str(next(counter)), cluster, reg_tx, rec_tx, **kw)


@pytest.fixture(scope="session")
def honest_bundle(tmp_path_factory: pytest.TempPathFactory, cluster: Cluster, device: Device) -> dict:
    record = device.record(3)
    tx = reading_tx(record, device.sign(record), device.hops(record))
    reg, gw = registration_tx(device.registration()), gateway_tx(device.gateway_registration())
    return certified_bundle(tmp_path_factory.mktemp("honest"), cluster, reg, tx, gateway_txs=(gw,))
