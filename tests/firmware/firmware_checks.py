"""Check what a unix-port device published: decode frames (edgeprov.wire) and verify them as the
gateway and a ledger node would (spec §3.5 flow M: gateway share, combine, Verify §3.6)."""

from __future__ import annotations

from pathlib import Path

from edgeprov.crypto.abs_iot import Record, RegistryEntry, combine, credential, gateway_share, verify
from edgeprov.crypto.bundle import GatewayBundle
from edgeprov.crypto.objects import DeviceShare
from edgeprov.wire import Reading
from tools.authority import policy_signed_by


class Verifier:
    """The gateway half for one device: K_fog and the cached credential from the authority's output."""

    def __init__(self, aa: Path, device_id: str, attrs: tuple[str, ...], epoch: int = 1) -> None:
        bundle = GatewayBundle.from_json((aa / "issued" / device_id / f"e{epoch}" / "gateway.json").read_text())
        self.mpk, self.k_fog, self.registry = bundle.mpk, bundle.k_fog, bundle.policy
        self.policy = policy_signed_by(bundle.policy, [a.encode() for a in attrs])
        self.cred = credential(self.k_fog, self.policy)

    def verify(self, frame: bytes) -> Reading:
        """Decode a reading frame and verify the combined signature; raises on any failure."""
        reading = Reading.decode(frame)
        record = Record(reading.device_id.encode(), reading.epoch, reading.ctr, reading.ts_ms, reading.msg,
                        self.policy.pd)  # fmt: skip
        c = record.statement(self.mpk.aa_fp).c
        sig = combine(DeviceShare.decode(reading.share), gateway_share(self.mpk, self.k_fog, c), self.cred)
        verify(self.mpk, RegistryEntry(record.device_id, record.epoch, self.registry), record, sig)
        return reading


def by_counter(frames: list[bytes]) -> dict[int, set[bytes]]:
    """ctr -> the distinct frames seen for it (QoS 1 may deliver one frame twice; never two frames)."""
    out: dict[int, set[bytes]] = {}
    for frame in frames:
        out.setdefault(Reading.decode(frame).ctr, set()).add(frame)
    return out
