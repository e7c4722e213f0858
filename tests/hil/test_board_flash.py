"""Hardware in the loop (marker `hil`, `--port`): provision, `edgeprov flash` a real ESP32 or Pico W,
wait for its `online` status, then verify a published reading. Skipped without a board.

    EDGEPROV_HIL_WIFI_SSID / EDGEPROV_HIL_WIFI_PASSWORD   the network the board joins
    EDGEPROV_HIL_BROKER_HOST   this machine's address on that network (the test starts Mosquitto)
    EDGEPROV_HIL_SENSOR        ds18b20 (default) or bme280, wired as in hardware/README.md

    .venv/bin/python -m pytest tests/hil -m hil --port /dev/ttyUSB0
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.hil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
from firmware_checks import Verifier  # noqa: E402

from edgeprov.cli import main as edgeprov  # noqa: E402
from edgeprov.wire import Reading, topic  # noqa: E402

ATTRS = ("org=acme", "type=temp", "site=hil")
PROFILES = {"esp32": ("esp32", "esp32_devkitc"), "rp2": ("pico_w", "pico_w")}


def board_platform(port: str) -> str:
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "exec", "import sys; print(sys.platform)"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def test_flash_boot_publish_verify(request, tmp_path, mosquitto_broker) -> None:
    import paho.mqtt.client as mqtt

    port = request.config.getoption("--port")
    env = {k: os.environ.get(f"EDGEPROV_HIL_{k}") for k in ("WIFI_SSID", "WIFI_PASSWORD", "BROKER_HOST")}
    if not all(env.values()):
        pytest.skip("set EDGEPROV_HIL_WIFI_SSID, EDGEPROV_HIL_WIFI_PASSWORD and EDGEPROV_HIL_BROKER_HOST")
    flash_board, profile = PROFILES[board_platform(port)]
    lan_port = 18883
    broker = mosquitto_broker(f"allow_anonymous true\nlistener {lan_port} 0.0.0.0")
    aa, device = tmp_path / "aa", "hil-1"
    assert edgeprov(["authority", "setup", "--aa-dir", str(aa)]) == 0
    keygen = ["authority", "keygen", "--aa-dir", str(aa), "--device", device, "--gateway", "gw-hil"]
    assert (
        edgeprov([*keygen, *[f"--attr={a}" for a in ATTRS], "--policy", "id and 2 of (org=acme, type=temp, site=hil)"])
        == 0
    )
    folder = tmp_path / device
    assert edgeprov([
        "provision", "--aa-dir", str(aa), "--device", device, "--gateway", "gw-hil",
        "--broker", f"{env['BROKER_HOST']}:{lan_port}", "--sensor", os.environ.get("EDGEPROV_HIL_SENSOR", "ds18b20"),
        "--board", profile, "--wifi-ssid", env["WIFI_SSID"], "--wifi-password", env["WIFI_PASSWORD"],
        "--interval-ms", "5000", "--out", str(folder),
    ]) == 0  # fmt: skip
    frames: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hil-subscriber")
    sub.on_connect = lambda c, *_: c.subscribe(topic("gw-hil", device, "reading"), qos=1)
    sub.on_message = lambda _c, _u, m: frames.append(m.payload)
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    try:
        assert edgeprov(["flash", "--port", port, "--board", flash_board, "--config", str(folder)]) == 0
        deadline = time.monotonic() + 120
        while not frames and time.monotonic() < deadline:
            time.sleep(0.5)
        assert frames, "the board came online but published no reading within 120 s"
        reading: Reading = Verifier(aa, device, ATTRS).verify(frames[0])
        assert reading.device_id == device and reading.ctr >= 1
    finally:
        sub.loop_stop()
        sub.disconnect()
