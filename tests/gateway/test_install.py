"""`edgeprov gateway install`: the systemd unit and config it writes (gateway/cli.py, gateway/edgeprov-gateway.service).

Shows: the unit is Type=notify with watchdog, restart and hardening settings; the written config
loads with gateway.config.load_config; `systemd-analyze verify` accepts the unit (skipped, with
the reason, where systemd-analyze is missing); a second install keeps an existing config.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgeprov.cli import main
from gateway.config import load_config

pytestmark = pytest.mark.integration


def _install(root: Path) -> tuple[Path, Path]:
    assert (
        main(["gateway", "install", "--root", str(root), "--gateway", "gw-1", "--user", "root", "--exec", "/bin/true"])
        == 0
    )
    return root / "etc/systemd/system/edgeprov-gateway.service", root / "etc/edgeprov/gateway.toml"


def test_install_writes_a_hardened_notify_unit_and_a_loadable_config(tmp_path: Path, capsys):
    unit, config = _install(tmp_path)
    text = unit.read_text()
    for line in ("Type=notify", "WatchdogSec=30s", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ExecStart=/bin/true gateway run /etc/edgeprov/gateway.toml", "User=root"):  # fmt: skip
        assert line in text.splitlines(), line
    assert "@" not in text.replace("@system-service", "")  # every template field filled
    loaded = load_config(config)
    assert (
        loaded.gateway_id == "gw-1" and loaded.mqtt.port == 8883 and loaded.mqtt.ca_file == Path("/etc/edgeprov/ca.crt")
    )
    assert loaded.ledger.api_urls and loaded.ledger.token_file == Path("/etc/edgeprov/ledger.token")
    config.write_text(config.read_text() + "\n# operator edit\n")
    _install(tmp_path)
    assert "# operator edit" in config.read_text()
    assert "kept existing" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed on this machine")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path):
    unit, _ = _install(tmp_path)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "edgeprov-gateway.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
