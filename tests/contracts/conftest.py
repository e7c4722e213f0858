"""Fixtures of the contract tests: an authority-side Fleet and a real 4-node cluster per module."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster import ContractCluster
from ledger_harness import Fleet


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(b"worked example")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet):
    with ContractCluster(
        Path(tmp_path_factory.mktemp("cluster")), fleet.system.mpk, fleet.aa.public_key()
    ).running() as c:
        yield c
