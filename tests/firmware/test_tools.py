"""`edgeprov provision` and the board-free part of `edgeprov flash`: mpy-cross compiles every firmware
file and the .mpy files load on the MicroPython in .venv (same mpy version); the copy list and the
refusal to copy a record twice; the provisioned folder's files, modes and config."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import GATEWAY, run_micropython

from edgeprov.cli import main as edgeprov
from tools.flash import FIRMWARE_DIR, MARKER, MKDIR_LIB, FlashError, copy_chain, device_files

pytestmark = pytest.mark.integration


def test_every_firmware_file_compiles_and_loads(firmware_tree: Path, tmp_path: Path) -> None:
    sources = sorted(p.stem for p in (FIRMWARE_DIR / "lib").glob("*.py"))
    compiled = sorted(p.stem for p in (firmware_tree / "lib").glob("*.mpy"))
    assert compiled == sources and len(sources) >= 15
    assert (firmware_tree / "main.py").read_bytes() == (FIRMWARE_DIR / "main.py").read_bytes()
    # Importing the .mpy files proves mpy-cross's output version matches the VM (no source on the path).
    out = run_micropython(f"for m in {sources!r}:\n    __import__(m)\nprint('loaded', len({sources!r}))", tmp_path,
                          lib=firmware_tree / "lib")  # fmt: skip
    assert out.strip() == f"loaded {len(sources)}"


def test_provisioned_folder(provision, authority: Path) -> None:
    broker = type("B", (), {"host": "10.0.0.2", "port": 8883})()
    dev = provision(broker)
    names = sorted(p.name for p in dev.path.iterdir())
    assert names == ["board.json", "config.json", "device.bundle", "device.record"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in dev.path.iterdir())
    issued = authority / "issued" / dev.device_id / "e1"
    assert (dev.path / "device.record").read_bytes() == (issued / "device.record").read_bytes()
    assert (dev.path / "device.bundle").read_bytes() == (issued / "device.bundle").read_bytes()
    cfg = dev.config
    assert (cfg["device_id"], cfg["gateway_id"], cfg["epoch"], cfg["board"]) == (dev.device_id, GATEWAY, 1, "unix")
    assert cfg["broker"]["host"] == "10.0.0.2" and cfg["broker"]["port"] == 8883
    assert cfg["broker"]["username"] == dev.device_id and len(cfg["broker"]["password"]) >= 24
    assert json.loads((dev.path / "board.json").read_text())["name"] == "unix"


def test_provision_refusals(provision, authority: Path, tmp_path: Path, capsys) -> None:
    dev = provision(type("B", (), {"host": "h", "port": 1})())
    base = ["provision", "--aa-dir", str(authority), "--device", dev.device_id, "--broker", "h:1", "--sensor"]
    cases = {
        "registered to gateway gw-1": [*base, "sim_coldchain", "--board", "unix", "--gateway", "gw-2"],
        "unknown board 'uno'": [*base, "sim_coldchain", "--board", "uno", "--gateway", GATEWAY],
        "no wiring for sensor 'bme280'": [*base, "bme280", "--board", "unix", "--gateway", GATEWAY],
        "--wifi-ssid is required": [*base, "bme280", "--board", "pico_w", "--gateway", GATEWAY],
        "already holds a device record": [*base, "sim_coldchain", "--board", "unix", "--gateway", GATEWAY],
        "must be HOST:PORT": [*base[:-3], "--broker", "nohost", "--sensor", "sim_coldchain", "--board", "unix",
                              "--gateway", GATEWAY],
    }  # fmt: skip
    for message, args in cases.items():
        out_dir = dev.path if "already" in message else tmp_path / "other"
        capsys.readouterr()
        assert edgeprov([*args, "--out", str(out_dir)]) == 2
        err = capsys.readouterr().err
        assert message in err, (message, err)
    assert not (tmp_path / "other").exists()


def test_flash_file_list_and_record_rollback_guard(provision, firmware_tree: Path) -> None:
    dev = provision(type("B", (), {"host": "h", "port": 1})())
    files = device_files(dev.path, code_only=False)
    assert [remote for _, remote in files] == ["config.json", "board.json", "device.bundle", "device.record"]
    assert device_files(dev.path, code_only=True) == []
    chain = copy_chain([(firmware_tree / "main.py", "main.py"), (firmware_tree / "lib" / "app.mpy", "lib/app.mpy")])
    assert chain == ["exec", MKDIR_LIB, "+", "fs", "cp", str(firmware_tree / "main.py"), ":main.py", "+",
                     "fs", "cp", str(firmware_tree / "lib" / "app.mpy"), ":lib/app.mpy"]  # fmt: skip
    (dev.path / MARKER).write_text("2026-01-01T00:00:00Z to /dev/ttyUSB0\n")
    with pytest.raises(FlashError, match="would reuse counters and pool entries"):
        device_files(dev.path, code_only=False)
    (dev.path / MARKER).unlink()
    (dev.path / "device.record").unlink()
    with pytest.raises(FlashError, match=r"missing device\.record"):
        device_files(dev.path, code_only=False)
