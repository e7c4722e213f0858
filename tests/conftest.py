"""Shared pytest options: `--port` enables hardware-in-the-loop tests."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--port", default=None, help="serial port of an attached board (enables hil tests)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--port"):
        return
    skip = pytest.mark.skip(reason="hil: no board attached (pass --port /dev/ttyUSB0)")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)
