"""Fixtures of the contract tests: an authority-side Fleet and a real 4-node cluster per module."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cluster import ContractCluster
from ledger_harness import Fleet


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(b"worked example")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet):
    c = ContractCluster(Path(tmp_path_factory.mktemp("cluster")), fleet.system.mpk, fleet.aa.public_key())
    c.start()
    try:
        asyncio.run(c.ready())
        yield c
    finally:
        c.stop()
