"""Fuzzing of frame decoding and message handling: no crash, no hang, a counted drop reason."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_node import client as proto
from ledger_node.bft import messages as m
from ledger_node.bft.codec import DecodeError
from ledger_node.bft.replica import Replica, ReplicaConfig, Restored
from ledger_node.bft.simulator import SimKeys, Simulation
from ledger_node.transport import FrameError, FrameMac, PeerAddress, Transport, frame

pytestmark = pytest.mark.unit


def _corpus() -> list[bytes]:
    """Real frames captured from a short simulation, as seeds for mutation."""
    sim = Simulation(3, 4, txs=10, chaos=2.0)
    frames: list[bytes] = []
    original = sim.transmit

    def capture(src: int, dst: int, data: bytes) -> None:
        if len(frames) < 400:
            frames.append(data)
        original(src, dst, data)

    sim.transmit = capture
    sim.run()
    return frames


CORPUS = _corpus()


def _replica() -> Replica:
    keys = SimKeys(random.Random(1), 4)
    return Replica(ReplicaConfig(0, 4, chain_id=b"sim"), keys.signer(0), keys, Restored())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_decode_random_bytes_fails_cleanly(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        m.decode(data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(CORPUS),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    st.integers(0, 10**6),
)
def test_mutated_real_frames_never_crash_the_replica(base: bytes, flips: list, cut: int) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(1, cut % (len(data) + 1))])
    replica = _replica()
    before = sum(replica.drops.values())
    replica.on_frame(1.0, 1, data)
    try:
        m.decode(data)
    except DecodeError:
        assert sum(replica.drops.values()) == before + 1 and replica.drops["decode_error"] >= 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=32), st.binary(max_size=200))
def test_client_auth_and_submit_decoders_fail_cleanly(challenge: bytes, body: bytes) -> None:
    auth = proto.ClientAuthenticator({"local": b"k" * 32})
    assert auth.verify(challenge, body) is None  # random bytes never authenticate, never raise
    with contextlib.suppress(DecodeError):
        proto.decode_submit(body)


def test_roundtrip_of_every_captured_frame() -> None:
    kinds = set()
    for data in CORPUS:
        message = m.decode(data)
        kinds.add(type(message).__name__)
        assert m.encode(message) == data
    assert {"Proposal", "Vote", "TxBatch"} <= kinds


def test_unknown_sender_is_counted() -> None:
    replica = _replica()
    replica.on_frame(1.0, 9, CORPUS[0])
    assert replica.drops["unknown_sender"] == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_frame_mac_rejects_anything_but_the_sealed_frame(junk: bytes) -> None:
    sender, receiver = FrameMac(b"k" * 32), FrameMac(b"k" * 32)
    sealed = sender.seal(b"payload")
    if junk != sealed:
        with pytest.raises(FrameError):
            FrameMac(b"k" * 32).open(junk)
    assert receiver.open(sealed) == b"payload"
    with pytest.raises(FrameError):
        receiver.open(sealed)  # a replay fails: the counter moved on


@pytest.mark.timeout(30)
def test_transport_drops_unknown_peers_and_garbage() -> None:
    async def scenario() -> dict:
        keys = [Ed25519PrivateKey.generate() for _ in range(2)]
        peers = [PeerAddress(i, "127.0.0.1", 0, k.public_key().public_bytes_raw()) for i, k in enumerate(keys)]
        got: list[tuple[int, bytes]] = []
        node = Transport(
            node_id=0,
            chain_id=b"c",
            identity=keys[0],
            peers=peers[:1] + peers[1:],
            on_frame=lambda p, d: got.append((p, d)),
        )
        node._peers = {}
        await node.start("127.0.0.1", 0)
        port = node._server.sockets[0].getsockname()[1]
        # Garbage instead of a hello, then an oversize length prefix.
        for payload in (frame(b"not a hello"), b"\xff\xff\xff\xff"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            await reader.read()
            writer.close()
        # A stranger with a valid-looking handshake but an unknown key.
        stranger = Transport(
            node_id=1,
            chain_id=b"c",
            identity=Ed25519PrivateKey.generate(),
            peers=[PeerAddress(0, "127.0.0.1", port, peers[0].public_key), peers[1]],
            on_frame=lambda p, d: None,
        )
        await stranger.start("127.0.0.1", 0)
        stranger.send(0, b"hello")
        for _ in range(100):
            if node.drops["bad_signature"] or node.drops["unknown_peer"]:
                break
            await asyncio.sleep(0.05)
        await stranger.close()
        await node.close()
        assert got == []
        return dict(node.drops)

    drops = asyncio.run(scenario())
    assert drops.get("bad_handshake", 0) + drops.get("oversize_frame", 0) >= 1
    assert drops.get("bad_signature", 0) >= 1
