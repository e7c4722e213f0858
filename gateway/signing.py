"""The gateway's part of a signature, Flow M (spec §3.5 rules G2–G7) for one admitted reading.

G2: the statement and c are rebuilt from the checked frame fields and the registered Π, never
taken from the device. G3: the share is decoded canonically (a Jacobian W_dev is validated).
G4: NonceGuard drops byte-identical copies and refuses a repeated R_dev with an alert; each relayed
reading's R_dev and mark are stored with it (store.py) and seed the guard on start, so the memory
survives a restart (§4 D5: a rolled-back device reuses pool entries under new counters). G5: the
gateway share uses the nonce derived online from c (abs_iot.gateway_share). G6 (optional): the
device share is checked against the cached Z_cred. G7: combine; verification is `verifier.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeprov import wire
from edgeprov.crypto.abs_iot import check_device_share, combine, gateway_share
from edgeprov.crypto.objects import DeviceShare, Signature
from edgeprov.crypto.points import DecodeError
from edgeprov.crypto.replay import NonceGuard, Verdict, nonce_mark
from edgeprov.crypto.statement import Statement
from gateway.devices import DeviceKey
from gateway.refusal import Duplicate, Refused


@dataclass(frozen=True)
class Signed:
    statement: Statement
    signature: Signature
    r_dev: bytes  # compressed, 48 bytes: what G4 remembers
    nonce_mark: bytes  # replay.nonce_mark of (ctr, c, canonical share)


class GatewaySigner:
    def __init__(self, nonce_window: int, check_shares: bool) -> None:
        self.guard = NonceGuard(nonce_window)
        self.check_shares = check_shares

    def sign(self, device: DeviceKey, reading: wire.Reading) -> Signed:
        mpk = device.bundle.mpk
        stmt = Statement(
            mpk.aa_fp,
            device.policy.pd,
            reading.device_id.encode(),
            reading.epoch,
            reading.ctr,
            reading.ts_ms,
            reading.msg,
        )
        try:
            share = DeviceShare.decode(reading.share)
        except DecodeError as exc:
            raise Refused("share-malformed", str(exc)) from None
        r_dev, mark = share.R_dev.to_compressed_bytes(), nonce_mark(reading.ctr, stmt.c, share.encode())
        verdict = self.guard.check_mark(stmt.device_id, r_dev, mark)
        if verdict is Verdict.DUPLICATE:
            raise Duplicate(reading.device_id, reading.epoch, reading.ctr)
        if verdict is Verdict.NONCE_REUSE:
            raise Refused("nonce-reuse", f"R_dev repeated by {reading.device_id} at ctr {reading.ctr}", alert=True)
        if self.check_shares and not check_device_share(mpk, device.bundle.k_fog.G_gw, share, stmt.c, device.Z()):
            raise Refused("share-invalid", "device share fails the G6 equation")
        gw = gateway_share(mpk, device.bundle.k_fog, stmt.c)
        return Signed(stmt, combine(share, gw, device.cred), r_dev, mark)

    def seed(self, device_id: str, sightings: list[tuple[bytes, bytes]]) -> None:
        """Restore a device's G4 memory from the store: (R_dev, mark) of its relayed readings, oldest first."""
        self.guard.seed(device_id.encode(), sightings)

    def release(self, device_id: str, signed: Signed) -> None:
        """Forget a signed reading that could not be stored: the broker's redelivery must not be a duplicate."""
        self.guard.forget(device_id.encode(), signed.r_dev, signed.nonce_mark)
