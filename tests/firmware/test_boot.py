"""Boot on the MicroPython VM (compiled tree): a missing or malformed config, a lost record or a bundle
of another device stop with one clear console line and exit status 2 instead of a restart loop; a
SAFEBOOT file makes main.py return at once."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest
from conftest import HEAP, MICROPYTHON

pytestmark = pytest.mark.integration

NO_BROKER = SimpleNamespace(host="127.0.0.1", port=9)


def boot(tree, folder) -> tuple[int, str]:
    done = subprocess.run(
        [str(MICROPYTHON), "-X", f"heapsize={HEAP}", str(tree / "main.py")],
        cwd=folder, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def edit_config(dev, edit) -> None:
    doc = dev.config
    edit(doc)
    (dev.path / "config.json").write_text(json.dumps(doc))


CASES = {
    "missing": (lambda d: (d.path / "config.json").unlink(), "device config is missing: config.json"),
    "not json": (lambda d: (d.path / "config.json").write_text("{oops"), "device config is not valid JSON"),
    "no host": (lambda d: edit_config(d, lambda c: c["broker"].pop("host")), "broker: key 'host' is missing"),
    "bad type": (lambda d: edit_config(d, lambda c: c.update(interval_ms="fast")), "'interval_ms' must be int"),
    "bad sensor": (lambda d: edit_config(d, lambda c: c.update(sensor="lm35")), "sensor 'lm35' is not one of"),
    "tls no ca": (lambda d: edit_config(d, lambda c: c["broker"].update(tls=True)), "broker.tls needs broker.ca"),
    "other device": (lambda d: edit_config(d, lambda c: c.update(device_id="dev-x")), "bundle is for dev-"),
    "no board": (lambda d: (d.path / "board.json").unlink(), "board profile is missing: board.json"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_stops_with_a_clear_error(case, firmware_tree, provision) -> None:
    dev = provision(NO_BROKER)
    breaker, message = CASES[case]
    breaker(dev)
    code, out = boot(firmware_tree, dev.path)
    assert code == 2, out
    assert "FATAL: config error:" in out and message in out, out
    assert "Traceback" not in out


def test_lost_record_refuses_to_sign(firmware_tree, provision) -> None:
    dev = provision(NO_BROKER)
    (dev.path / "device.record").unlink()
    code, out = boot(firmware_tree, dev.path)
    assert code == 2 and "FATAL: device record lost, refusing to sign until re-keyed" in out, out


def test_safeboot_file_returns_before_the_app(firmware_tree, provision) -> None:
    dev = provision(NO_BROKER)
    (dev.path / "SAFEBOOT").write_text("")
    record = (dev.path / "device.record").read_bytes()
    code, out = boot(firmware_tree, dev.path)
    assert code == 0 and out.strip() == "safe boot: SAFEBOOT file present, app not started"
    assert (dev.path / "device.record").read_bytes() == record


def test_supervisor_restarts_the_app_after_a_crash(firmware_tree, provision, mosquitto_broker, device_process) -> None:
    broker = mosquitto_broker()
    dev = provision(broker, max_readings=2)
    (dev.path / "ring.dat").mkdir()  # a flash fault: the ring file cannot be opened
    run = device_process(dev)
    run.wait_for("restarting the app in 2000 ms", timeout=30)  # second failure, backoff doubled
    assert "app crashed: OSError" in run.output()
    (dev.path / "ring.dat").rmdir()
    assert run.wait(60) == 0, run.output()
    assert "stats readings 2" in run.output()
