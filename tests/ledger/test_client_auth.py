"""The client port requires authentication (client.py): a real node in-process, real sockets."""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path

import pytest

from ledger_node import client as proto
from ledger_node.client import AuthError, ClientCredential, LedgerClient, load_credential
from ledger_node.config import CREDENTIALS_FILE, LOCAL_CLIENT, free_base_port, init_cluster, load_config
from ledger_node.node import LedgerNode
from ledger_node.transport import frame, read_frame

pytestmark = pytest.mark.integration


async def _with_node(tmp_path: Path, scenario) -> LedgerNode:
    configs = init_cluster(tmp_path, 4, base_port=free_base_port(4))
    node = LedgerNode(load_config(configs[0]))
    await node.start()
    try:
        await scenario(node, int(node.config.client_listen.rpartition(":")[2]))
    finally:
        await node.stop()
    return node


def test_init_cluster_writes_a_private_credential_file(tmp_path: Path) -> None:
    configs = init_cluster(tmp_path, 4)
    path = tmp_path / CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(configs[2]).client_credentials == path
    credential = load_credential(path, LOCAL_CLIENT)
    assert len(credential.secret) == 32 and credential.secret.hex() not in repr(credential)
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        load_credential(path, LOCAL_CLIENT)


@pytest.mark.timeout(60)
def test_known_client_is_served_and_wrong_secret_is_refused(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    seen: dict = {}

    async def scenario(node: LedgerNode, port: int) -> None:
        credential = load_credential(tmp_path / CREDENTIALS_FILE, LOCAL_CLIENT)
        client = LedgerClient("127.0.0.1", port, credential)
        await client.connect()
        seen["status"] = await client.status()
        await client.close()
        for wrong in (ClientCredential(LOCAL_CLIENT, bytes(32)), ClientCredential("mallory", credential.secret)):
            with pytest.raises(AuthError):
                await LedgerClient("127.0.0.1", port, wrong).connect()
        seen["secret"] = credential.secret.hex()

    node = asyncio.run(_with_node(tmp_path, scenario))
    assert seen["status"][1] >= 1  # (height, round) from an authenticated STATUS
    assert node.client_drops["client_bad_auth"] == 2
    assert seen["secret"] not in caplog.text


@pytest.mark.timeout(60)
def test_unauthenticated_submit_is_rejected_counted_and_dropped(tmp_path: Path) -> None:
    answers: list[bytes] = []

    async def scenario(node: LedgerNode, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        challenge = await read_frame(reader)
        assert challenge[:1] == bytes([proto.CHALLENGE])
        for _ in range(3):
            writer.write(frame(proto.encode_submit([b"x" * 200])))
            answers.append(await read_frame(reader))
        writer.close()
        await asyncio.sleep(0)  # let the inbox loop run: nothing may have reached the replica
        assert len(node.replica.mempool) == 0

    node = asyncio.run(_with_node(tmp_path, scenario))
    assert all(a[:1] == bytes([proto.REJECTED]) for a in answers)
    assert node.client_drops["client_unauthenticated"] == 3


def test_auth_answer_is_bound_to_the_challenge() -> None:
    credential = ClientCredential("gw-1", b"s" * 32)
    auth = proto.ClientAuthenticator({"gw-1": credential.secret})
    challenge = auth.challenge()
    body = proto.encode_auth(credential, challenge)[1:]
    assert auth.verify(challenge, body) == "gw-1"
    assert auth.verify(auth.challenge(), body) is None  # a replay on a new connection fails
    assert auth.verify(challenge, body[:-1]) is None
    assert auth.verify(challenge, b"\xff" * 40) is None
