"""The devices this gateway serves (rule G1, spec §3.5): one gateway bundle per device and epoch.

Bundles are the AA's `gateway.json` files (edgeprov.crypto.bundle.GatewayBundle), found anywhere
under the devices directory (e.g. a copy of `issued/`). For each device the highest epoch wins:
a re-key (L5) supersedes the older key. The credential (spec §3.3) is computed once here and
cached under its key (cred_id, id, epoch, pd) (§3.6 step 4); Z_cred for rule G6 is derived lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from py_arkworks_bls12381 import GT

from edgeprov.crypto.abs_iot import RegistryEntry, credential, credential_Z
from edgeprov.crypto.bundle import GatewayBundle
from edgeprov.crypto.credstore import CredKey
from edgeprov.crypto.objects import Credential
from edgeprov.crypto.points import DecodeError
from edgeprov.crypto.policy import FormulaPolicy, Policy, PolicyError, id_star

log = logging.getLogger("edgeprov.gateway.devices")


@dataclass
class DeviceKey:
    """Everything the gateway needs to sign for one device at its current epoch."""

    bundle: GatewayBundle
    policy: Policy  # the Π the device signs under: the registry policy, or Π_S in mode 1 (§3.8)
    cred: Credential
    _Z: GT | None = field(default=None, repr=False)

    @property
    def device_id(self) -> str:
        return self.bundle.k_fog.device_id.decode()

    @property
    def epoch(self) -> int:
        return self.bundle.k_fog.epoch

    @property
    def cred_key(self) -> CredKey:
        return CredKey(self.cred.cred_id, self.bundle.k_fog.device_id, self.epoch, self.policy.pd)

    @property
    def disclosed(self) -> tuple[bytes, ...] | None:
        return self.policy.attrs if isinstance(self.bundle.policy, FormulaPolicy) else None

    @property
    def registry_entry(self) -> RegistryEntry:
        return RegistryEntry(self.bundle.k_fog.device_id, self.epoch, self.bundle.policy)

    def Z(self) -> GT:
        """Z_cred (spec §3.3), computed on first use for rule G6."""
        if self._Z is None:
            self._Z = credential_Z(self.cred, self.policy, id_star(self.bundle.k_fog.device_id, self.epoch))
        return self._Z


def signed_policy(bundle: GatewayBundle) -> Policy:
    """Π the device signs: the threshold policy, or the minimal disclosed set of a formula (§3.8)."""
    if isinstance(bundle.policy, FormulaPolicy):
        return bundle.policy.disclose(set(bundle.k_fog.attrs))
    return bundle.policy


def load_devices(directory: Path, gateway_id: str, allow_test: bool = False) -> dict[str, DeviceKey]:
    """Read every `*.json` gateway bundle below `directory` meant for `gateway_id`; bad files are skipped loudly."""
    newest: dict[str, GatewayBundle] = {}
    for path in sorted(directory.rglob("*.json")):
        try:
            bundle = GatewayBundle.from_json(path.read_text(), allow_test=allow_test)
        except (DecodeError, OSError, UnicodeDecodeError) as exc:
            if "gateway bundle: unknown format" not in str(exc):
                log.warning("skipping %s: %s", path, exc)
            continue
        if bundle.gateway_id != gateway_id:
            log.warning("skipping %s: issued for gateway %r, not %r", path, bundle.gateway_id, gateway_id)
            continue
        device = bundle.k_fog.device_id.decode()
        if device not in newest or bundle.k_fog.epoch > newest[device].k_fog.epoch:
            newest[device] = bundle
    devices = {}
    for device, bundle in newest.items():
        try:
            policy = signed_policy(bundle)
            devices[device] = DeviceKey(bundle, policy, credential(bundle.k_fog, policy))
        except PolicyError as exc:
            log.warning("skipping device %s epoch %d: %s", device, bundle.k_fog.epoch, exc)
    log.info("serving %d devices from %s", len(devices), directory)
    return devices
