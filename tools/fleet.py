"""`LocalFleet`: a whole local fleet in one folder, made by the project's own commands (issue 6 item 3).

    <root>/fleet.json      what this folder holds: ports, devices, device kind, what the ledger registered
    <root>/aa/             the attribute authority (`edgeprov authority setup|gateway|keygen`)
    <root>/broker/         Mosquitto: TLS listener, per-device passwords, ACLs (`edgeprov broker config`)
    <root>/ledger/         4 nodes (`edgeprov ledger init-cluster --aa-dir`): contracts, HTTP API, API
                           tokens for the gateway and the tools (0600), nodes.json for `edgeprov verify`
    <root>/gateway/        gateway.toml (ApiLink) and its data (outbox, provenance DB)
    <root>/devices/<id>/   each device's folder (`edgeprov provision`), the firmware's working directory
    <root>/firmware/       boot.py, main.py and lib/*.mpy exactly as `edgeprov flash` lays them out, rebuilt
                           on every start (from source, the firmware does not fit the 96 kB heap)
    <root>/logs/           one log per process (edgeprov.procs.ProcessGroup)

`create` is idempotent: a second run reuses keys, broker accounts and the ledger's blocks (`wipe`
removes the folder). `start` runs broker, nodes, the registrations of the gateway and every device
(Device Registration contract), the gateway and the devices, in that order; `stop` stops them in
reverse. Devices are the real firmware on the MicroPython unix port; where that VM is missing
(it exists for x86-64 only, DESIGN.md §1) they are `tools.simdevice`, the CPython reference
signer (edgeprov.crypto.device.DeviceSigner) speaking the same frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import shutil
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import tomli_w

from edgeprov.procs import ProcessGroup, free_port, wait_for_port
from ledger_node.api.client import LedgerApi
from ledger_node.cli import node_command

GATEWAY = "gw-1"
POLICY = "id and 2 of (org=acme, type=temp, site=ward-7)"
ATTRS = ("org=acme", "type=temp", "site=ward-7")
NODES = 4
HOST = "127.0.0.1"
MICROPYTHON = Path(sys.executable).parent / "micropython"
HEAP = "96k"


class FleetError(Exception):
    """The fleet cannot be created or started; the message says what to do."""


@dataclass
class FleetState:
    """fleet.json: fixed when the folder is created, so a second run finds the same ports and keys."""

    devices: list[str]
    device_kind: str  # "micropython" or "cpython"
    interval_ms: int
    mqtt_port: int
    ledger_base: int
    gateway_http: int
    dashboard_port: int
    registered: list[str] = field(default_factory=list)  # ledger registrations known committed

    @property
    def api_urls(self) -> list[str]:
        return [f"http://{HOST}:{self.ledger_base + 300 + i}" for i in range(NODES)]

    @property
    def metrics_urls(self) -> list[str]:
        return [f"http://{HOST}:{self.ledger_base + 200 + i}/metrics" for i in range(NODES)]


def edgeprov(log: Path, *argv: str) -> None:
    """Run one `edgeprov` command in this process, its output appended to `log` (setup is quiet)."""
    from edgeprov.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # an argparse error: report it with its output, don't exit the demo
            code = exc.code if isinstance(exc.code, int) else 2
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"$ edgeprov {' '.join(argv)}\n{out.getvalue()}")
    if code != 0:
        raise FleetError(f"edgeprov {argv[0]} {argv[1]} failed ({code}): {out.getvalue().strip()[-500:]}")


def _free(port: int) -> bool:
    """Nobody listens on the port (connections of a fleet that just stopped may linger in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers themselves bind
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ledger_base() -> int:
    """A base port whose node, client, metrics and API ports (base + 0/100/200/300 + i) are all free."""
    for _ in range(200):
        base = random.randrange(10000, 32000)  # below the kernel's ephemeral range (32768-), where clients bind
        if all(_free(base + off + i) for off in (0, 100, 200, 300) for i in range(NODES)):
            return base
    raise FleetError("no free range of ledger ports found")


def default_device_kind() -> str:
    return "micropython" if MICROPYTHON.exists() else "cpython"


class LocalFleet:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.logs = self.root / "logs"
        self.group = ProcessGroup(self.logs)
        self.state: FleetState | None = self._load_state()

    # ---- paths -----------------------------------------------------------------------------

    @property
    def aa(self) -> Path:
        return self.root / "aa"

    @property
    def broker(self) -> Path:
        return self.root / "broker"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def gateway_toml(self) -> Path:
        return self.root / "gateway" / "gateway.toml"

    @property
    def gateway_db(self) -> Path:
        return self.root / "gateway" / "data" / "gateway.sqlite3"

    def device_dir(self, device: str) -> Path:
        return self.root / "devices" / device

    def node_configs(self) -> list[Path]:
        return [self.ledger / f"node{i}.toml" for i in range(NODES)]

    def token_file(self, client: str) -> Path:
        from ledger_node.config import TOKENS_DIR

        return self.ledger / TOKENS_DIR / f"{client}.token"

    @property
    def nodes_file(self) -> Path:
        from ledger_node.config import NODES_FILE

        return self.ledger / NODES_FILE

    def password(self, user: str) -> str:
        return (self.broker / "credentials" / user).read_text().strip()

    # ---- creation --------------------------------------------------------------------------

    def _load_state(self) -> FleetState | None:
        path = self.root / "fleet.json"
        return FleetState(**json.loads(path.read_text())) if path.exists() else None

    def _save_state(self) -> None:
        (self.root / "fleet.json").write_text(json.dumps(asdict(self.state), indent=2) + "\n")

    def wipe(self) -> None:
        if (self.root / "fleet.json").exists() or not self.root.exists() or not any(self.root.iterdir()):
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            raise FleetError(f"{self.root} is not a fleet folder (no fleet.json); not wiping it")
        self.state = None

    def create(self, devices: int = 5, interval_ms: int = 1000, device_kind: str | None = None) -> bool:
        """Write everything the fleet needs unless the folder already holds a fleet; True when created."""
        if self.state is not None:
            if len(self.state.devices) != devices:
                raise FleetError(
                    f"{self.root} holds a fleet of {len(self.state.devices)} devices; "
                    f"use --devices {len(self.state.devices)} or --wipe"
                )
            return False
        if self.root.exists() and any(self.root.iterdir()):
            raise FleetError(f"{self.root} exists and is not a fleet folder; choose another --dir")
        names = [f"dev-{i}" for i in range(1, devices + 1)]
        self.state = FleetState(
            names, device_kind or default_device_kind(), interval_ms, free_port(), free_ledger_base(), free_port(),
            free_port(),
        )  # fmt: skip
        setup_log = self.logs / "setup.log"
        try:
            self._authority(setup_log, names)
            self._broker(setup_log, names)
            self._ledger()
            self._gateway()
            for name in names:
                self._device(setup_log, name)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)  # it was empty: leave nothing half-made behind
            self.state = None
            raise
        self._save_state()
        return True

    def _authority(self, log: Path, names: list[str]) -> None:
        aa = str(self.aa)
        edgeprov(log, "authority", "setup", "--aa-dir", aa)
        edgeprov(log, "authority", "gateway", "--aa-dir", aa, "--gateway", GATEWAY)
        attrs = [f"--attr={a}" for a in ATTRS]
        for name in names:
            edgeprov(log, "authority", "keygen", "--aa-dir", aa, "--device", name, "--policy", POLICY,
                     "--gateway", GATEWAY, *attrs)  # fmt: skip

    def _broker(self, log: Path, names: list[str]) -> None:
        # As root, Mosquitto switches to the user named here before it reads passwd and its key; the
        # fleet folder may sit under a home directory closed to the `mosquitto` account, so it stays root.
        run_as = [] if os.geteuid() != 0 else ["--run-as", "root"]
        edgeprov(log, "broker", "config", "--out", str(self.broker), "--gateway", GATEWAY, "--devices", *names,
                 "--port", str(self.state.mqtt_port), "--bind", HOST, *run_as)  # fmt: skip

    def _ledger(self) -> None:
        from ledger_node.config import ContractOptions, init_cluster

        contracts = ContractOptions(self.aa, ("gateway", "tools"))
        init_cluster(self.ledger, NODES, HOST, self.state.ledger_base, batch_size=500, contracts=contracts)

    def _gateway(self) -> None:
        doc = {
            "gateway": {
                "id": GATEWAY,
                "key_file": str(self.aa / "gateways" / GATEWAY / "e1" / "gateway.key"),
                "devices_dir": str(self.aa / "issued"),
                "data_dir": "data",
                "http_listen": f"{HOST}:{self.state.gateway_http}",
            },
            "mqtt": {
                "host": HOST,
                "port": self.state.mqtt_port,
                "username": GATEWAY,
                "password_file": str(self.broker / "credentials" / GATEWAY),
                "ca_file": str(self.broker / "ca.crt"),
                "keepalive_s": 10,
                "watchdog_s": 3.0,
                "reconnect_max_s": 2.0,
            },
            "ledger": {
                "api_urls": self.state.api_urls,
                "token_file": str(self.token_file("gateway")),
                "commit_timeout_s": 5.0,  # a loopback ledger commits in well under a second
                "retry_max_s": 2.0,
            },
        }
        self.gateway_toml.parent.mkdir(parents=True, exist_ok=True)
        self.gateway_toml.write_text(tomli_w.dumps(doc))

    def _device(self, log: Path, name: str) -> None:
        edgeprov(log, "provision", "--aa-dir", str(self.aa), "--device", name, "--gateway", GATEWAY,
                 "--broker", f"{HOST}:{self.state.mqtt_port}", "--tls-ca", str(self.broker / "ca.crt"),
                 f"--password={self.password(name)}", "--sensor", "sim_coldchain", "--board", "unix",
                 "--interval-ms", str(self.state.interval_ms), "--keepalive", "10",
                 "--sim-seed", name.rsplit("-", 1)[-1], "--out", str(self.device_dir(name)))  # fmt: skip

    # ---- running ---------------------------------------------------------------------------

    def _check_ports(self) -> None:
        s = self.state
        ports = [s.mqtt_port, s.gateway_http] + [
            s.ledger_base + o + i for o in (0, 100, 200, 300) for i in range(NODES)
        ]
        taken = [p for p in ports if not _free(p)]
        if taken:
            raise FleetError(f"ports {taken} are in use: is this fleet already running? (or use --wipe)")

    def start_broker(self) -> None:
        self.group.start("mosquitto", ["/usr/sbin/mosquitto", "-c", str(self.broker / "mosquitto.conf")])
        self._wait("mosquitto", self.state.mqtt_port)

    def start_ledger(self) -> None:
        for i, path in enumerate(self.node_configs()):
            self.group.start(f"node{i}", node_command(path))
        for i in range(NODES):
            self._wait(f"node{i}", self.state.ledger_base + 300 + i)

    def start_gateway(self) -> None:
        argv = [sys.executable, "-m", "edgeprov.cli", "gateway", "run", str(self.gateway_toml)]
        self.group.start("gateway", argv)
        self._wait("gateway", self.state.gateway_http)

    def device_argv(self, device: str) -> list[str]:
        if self.state.device_kind == "micropython":
            return [str(MICROPYTHON), "-X", f"heapsize={HEAP}", str(self.root / "firmware" / "main.py")]
        return [sys.executable, "-m", "tools.simdevice", str(self.device_dir(device))]

    def start_device(self, device: str) -> None:
        self.group.start(device, self.device_argv(device), cwd=self.device_dir(device))

    def start_dashboard(self) -> str:
        s = self.state
        argv = [sys.executable, "-m", "tools.dashboard", "--broker", f"{HOST}:{s.mqtt_port}",
                "--tls-ca", str(self.broker / "ca.crt"), "--username", "dashboard",
                "--password-file", str(self.broker / "credentials" / "dashboard"),
                "--ledger", ",".join(s.api_urls), "--metrics", ",".join(s.metrics_urls),
                "--listen", f"{HOST}:{s.dashboard_port}"]  # fmt: skip
        self.group.start("dashboard", argv)
        self._wait("dashboard", s.dashboard_port)
        return f"http://{HOST}:{s.dashboard_port}/"

    def _wait(self, name: str, port: int, timeout_s: float = 60.0) -> None:
        child = self.group.children[name]
        try:
            wait_for_port(HOST, port, timeout_s)
        except TimeoutError:
            raise FleetError(f"{name} did not start; its log ({child.log_path}):\n{child.tail()}") from None
        if not child.alive():
            raise FleetError(f"{name} exited ({child.proc.returncode}); its log:\n{child.tail()}")

    def start(self, devices: list[str] | None = None, dashboard: bool = False) -> str | None:
        """Broker, ledger, registrations, gateway, dashboard, devices (all unless named); the dashboard URL or None."""
        if self.state is None:
            raise FleetError(f"{self.root} holds no fleet; create it first")
        self._check_ports()
        try:
            self.start_broker()
            self.start_ledger()
            asyncio.run(self.register())
            self.start_gateway()
            if self.state.device_kind == "micropython":
                from tools.flash import compile_firmware

                compile_firmware(self.root / "firmware")
            url = self.start_dashboard() if dashboard else None  # before the devices: it sees every reading
            for device in self.state.devices if devices is None else devices:
                self.start_device(device)
            return url
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Reverse start order: devices, dashboard, gateway, the ledger nodes, the broker."""
        for name in reversed(list(self.group.children)):
            if not name.startswith("node") and name != "mosquitto":
                self.group.stop(name)
        self.stop_ledger()
        if "mosquitto" in self.group.children:
            self.group.stop("mosquitto")

    def stop_ledger(self) -> None:
        """All nodes at once: stopped one by one, each would take seconds to give up on the others."""
        nodes = [name for name in self.group.children if name.startswith("node")]
        with ThreadPoolExecutor(max(1, len(nodes))) as pool:
            list(pool.map(self.group.stop, nodes))

    def api(self) -> LedgerApi:
        return LedgerApi(self.state.api_urls, self.token_file("tools").read_text().strip())

    async def wait_ready(self, api: LedgerApi, timeout_s: float = 60.0) -> None:
        """Until every node's API answers (the ledger's first block needs a quorum of live nodes)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        for node in range(NODES):
            while True:
                try:
                    await api.status(node)
                    break
                except httpx.TransportError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise FleetError(f"ledger node {node} API never answered") from None
                    await asyncio.sleep(0.1)

    async def register(self) -> None:
        """Submit the gateway's and every device's AA-signed registration once (Device Registration)."""
        docs = {f"gateway:{GATEWAY}": ("gateway", self.aa / "gateways" / GATEWAY / "e1" / "registration.json")}
        docs |= {f"device:{d}": ("register", self.aa / "issued" / d / "e1" / "registration.json")
                 for d in self.state.devices}  # fmt: skip
        async with self.api() as api:
            await self.wait_ready(api)
            for name, (fn, path) in docs.items():
                if name in self.state.registered:
                    continue
                outcome = await api.call("registry", fn, {"doc": json.loads(path.read_text())})
                if not outcome.ok:
                    raise FleetError(f"the ledger refused the registration of {name}: {outcome.reason}")
                self.state.registered.append(name)
                self._save_state()

    # ---- what the ledger holds ---------------------------------------------------------------

    async def progress(self, api: LedgerApi) -> dict:
        """Per device the ledger's completeness (count, ranges, gaps), the height, the gateway's rejects."""
        status = await api.status()
        devices = {}
        for device in self.state.devices:
            try:
                devices[device] = await api.completeness(device)
            except Exception as exc:  # a device with no reading yet: the API answers 404
                devices[device] = {"count": 0, "ranges": [], "gaps": [], "error": str(exc)}
        return {"height": status["height"], "devices": devices, "gateway": await self.gateway_counts()}

    async def gateway_counts(self) -> dict[str, float]:
        """Committed, invalid and refused readings from the gateway's Prometheus metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://{HOST}:{self.state.gateway_http}/metrics"
        try:
            async with httpx.AsyncClient(timeout=3.0) as http:
                text = (await http.get(url)).text
        except httpx.HTTPError:
            return {}
        wanted = {"edgeprov_gateway_committed": "committed", "edgeprov_gateway_invalid": "invalid",
                  "edgeprov_gateway_frames_refused": "refused", "edgeprov_gateway_relayed": "relayed"}  # fmt: skip
        out = dict.fromkeys(wanted.values(), 0.0)
        for family in text_string_to_metric_families(text):
            if family.name in wanted:
                out[wanted[family.name]] += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return out
