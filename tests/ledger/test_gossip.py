"""Transaction gossip: chunks are bounded in bytes as well as count, so none outgrows a transport frame;
an idle node gossips at once, a busy one at most every gossip_delay."""

from __future__ import annotations

import random

import pytest

from ledger_node.bft import messages as m
from ledger_node.bft.replica import FLUSH_TIMER, Replica, ReplicaConfig, Restored, Send
from ledger_node.bft.simulator import SimKeys

pytestmark = pytest.mark.unit


def test_big_transactions_are_gossiped_in_byte_bounded_chunks() -> None:
    keys = SimKeys(random.Random(1), 4)
    # 2,000 per batch of 40 KB transactions would be an 80 MB message; the cap is 1 MB here.
    config = ReplicaConfig(1, 4, chain_id=b"sim", batch_size=2000, max_block_bytes=1_000_000)
    replica = Replica(config, keys.signer(1), keys, Restored())
    txs = [i.to_bytes(4, "big") * 10_000 for i in range(60)]
    sent = [e.message for e in replica.submit(0.0, txs) if isinstance(e, Send)]  # an idle node: at once
    batches = [msg for msg in sent if isinstance(msg, m.TxBatch)]
    assert [tx for batch in batches for tx in batch.txs] == txs  # everything, in order, once
    assert all(sum(map(len, batch.txs)) <= config.max_block_bytes for batch in batches)
    assert len(batches) == 3  # 25 + 25 + 10 transactions of 40,000 bytes


def test_one_transaction_larger_than_the_cap_still_goes_alone() -> None:
    keys = SimKeys(random.Random(1), 4)
    config = ReplicaConfig(1, 4, chain_id=b"sim", max_block_bytes=10)
    replica = Replica(config, keys.signer(1), keys, Restored())
    sent = [e.message for e in replica.submit(0.0, [b"x" * 20, b"y" * 20]) if isinstance(e, Send)]
    assert [batch.txs for batch in sent if isinstance(batch, m.TxBatch)] == [(b"x" * 20,), (b"y" * 20,)]


def _gossiped(effects: list) -> list[bytes]:
    return [tx for e in effects if isinstance(e, Send) and isinstance(e.message, m.TxBatch) for tx in e.message.txs]


def test_gossip_is_immediate_when_idle_and_coalesced_under_load() -> None:
    keys = SimKeys(random.Random(1), 4)
    config = ReplicaConfig(1, 4, chain_id=b"sim", gossip_delay=0.005)
    replica = Replica(config, keys.signer(1), keys, Restored())
    assert _gossiped(replica.submit(0.0, [b"a"])) == [b"a"]
    # Within gossip_delay of the last flush: held for the flush timer, which sends both together.
    assert _gossiped(replica.submit(0.001, [b"b"])) == []
    assert _gossiped(replica.submit(0.002, [b"c"])) == []
    assert _gossiped(replica.on_timer(0.005, FLUSH_TIMER, 0)) == [b"b", b"c"]
    assert _gossiped(replica.submit(0.020, [b"d"])) == [b"d"]  # idle again
