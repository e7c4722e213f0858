"""Gateway configuration: one TOML file (README.md shows every key). Secrets live in their own 0600 files."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A missing or malformed configuration value; the message names it."""


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None  # TLS is on exactly when a CA is given
    keepalive_s: int = 30
    watchdog_s: float = 10.0  # heartbeat publish period; a missing PUBACK means a dead connection
    reconnect_max_s: float = 30.0

    def password(self) -> str | None:
        return self.password_file.read_text().strip() if self.password_file else None


@dataclass(frozen=True)
class LedgerConfig:
    api_urls: tuple[str, ...] = ()  # the nodes' HTTP APIs: endorse on f+1, submit, learn the outcome
    token_file: Path | None = None  # the API's bearer token, mode 0600
    http_timeout_s: float = 10.0
    commit_timeout_s: float = 20.0
    retry_max_s: float = 10.0
    submit_batch: int = 500
    submit_inflight: int = 4  # batches in the ledger's pipeline at once (relay.py)
    submit_linger_ms: float = 2.0  # how long a batch waits for more readings before it goes
    submit_target_s: float = 1.0  # the batch size adapts so endorsing + submitting one takes about this long
    registry_poll_s: float = 10.0  # how often the devices' registry entries are read (registry.py, G1)

    def token(self) -> str | None:
        """The first line of the token file, which must be 0600: a token is a write credential."""
        if self.token_file is None:
            return None
        try:
            mode, lines = self.token_file.stat().st_mode, self.token_file.read_text().split()
        except OSError as exc:
            raise ConfigError(f"[ledger] token_file: {exc}") from None
        if mode & 0o077:
            raise ConfigError(f"{self.token_file} must not be readable by group or others (chmod 600)")
        if not lines:
            raise ConfigError(f"{self.token_file} holds no token")
        return lines[0]


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str
    key_file: Path
    devices_dir: Path
    data_dir: Path
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    http_listen: str = "127.0.0.1:9108"
    max_frame: int = 8192
    replay_window: int = 65536
    nonce_window: int = 4096
    check_device_shares: bool = False  # rule G6: +2.2 ms per reading, blames a device that sends junk
    verify_before_relay: bool = False  # rule G7: full verification in a process pool before submitting
    verify_workers: int = 1
    write_batch: int = 256
    allow_test_system: bool = False  # accept the public test-vector mpk (tests only)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gateway.sqlite3"


def _path(value: object, base: Path, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty path string")
    path = Path(value)
    return path if path.is_absolute() else base / path


def _section(raw: dict, name: str, cls: type, base: Path, paths: tuple[str, ...]):
    values = dict(raw.get(name, {}))
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[{name}] has unknown keys {sorted(unknown)}")
    for key in paths:
        if values.get(key):
            values[key] = _path(values[key], base, f"[{name}] {key}")
    if "api_urls" in values:
        values["api_urls"] = tuple(values["api_urls"])
    return cls(**values)


def load_config(path: Path) -> GatewayConfig:
    """Parse the TOML file; relative paths are relative to the file's directory."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    base = path.parent.resolve()
    try:
        gw = dict(raw["gateway"])
        mqtt = _section(raw, "mqtt", MqttConfig, base, ("password_file", "ca_file"))
        ledger = _section(raw, "ledger", LedgerConfig, base, ("token_file",))
        for key in ("key_file", "devices_dir", "data_dir"):
            gw[key] = _path(gw.get(key), base, f"[gateway] {key}")
        gw["gateway_id"] = gw.pop("id")
        unknown = set(gw) - set(GatewayConfig.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"[gateway] has unknown keys {sorted(unknown)}")
        if not ledger.registry_poll_s > 0:
            raise ConfigError(f"[ledger] registry_poll_s must be > 0 in {path}")
        if not ledger.api_urls:
            raise ConfigError(f"[ledger] api_urls is empty in {path}: name the ledger nodes' API URLs")
        return GatewayConfig(mqtt=mqtt, ledger=ledger, **gw)
    except KeyError as exc:
        raise ConfigError(f"missing {exc} in {path}") from None
    except TypeError as exc:
        raise ConfigError(f"bad value in {path}: {exc}") from None
