"""Key bundles the attribute authority hands out (spec §3.2, §5): one for the device, one for its gateway.

Device bundle (binary, read by MicroPython, kept small):

    "EPDB" ‖ u8 version=1 ‖ u8 len id ‖ id ‖ u32 epoch ‖ aa_fp 32 ‖ G_iot 96 ‖ nonce_seed 32
    ‖ h1 96 ‖ u1 96 ‖ u8 count ‖ pd 32 × count ‖ u8 w ‖ comb tables for g1, h1, u1 (3 × 2^(w−1) × 96)

Points are raw affine x ‖ y (the device never takes square roots). Gateway bundle: JSON with K_fog
(binary, hex), the mpk, and the registry policy. Both hold secrets: files are written 0600.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from py_arkworks_bls12381 import G1Point

from edgeprov.crypto.comb import ENTRY_SIZE, comb_table
from edgeprov.crypto.objects import KFog, KIot, MasterPublicKey, Reader
from edgeprov.crypto.points import DecodeError, g1, g1_from_affine, g1_to_affine
from edgeprov.crypto.policy import RegistryPolicy, parse_policy

DEVICE_MAGIC = b"EPDB"
DEVICE_VERSION = 1
GATEWAY_FORMAT = "edgeprov-gateway-bundle"
GATEWAY_VERSION = 1


def _affine(point: G1Point) -> bytes:
    x, y = g1_to_affine(point)
    return x.to_bytes(48, "big") + y.to_bytes(48, "big")


def _point(data: bytes) -> G1Point:
    return g1_from_affine(int.from_bytes(data[:48], "big"), int.from_bytes(data[48:], "big"))


@dataclass(frozen=True)
class DeviceBundle:
    """K_iot with what the device needs to sign: nonce seed, aa_fp, policy digests, bases and comb tables."""

    device_id: bytes
    epoch: int
    aa_fp: bytes
    G_iot: G1Point
    nonce_seed: bytes
    h1: G1Point
    u1: G1Point
    pds: tuple[bytes, ...]
    w: int
    tables: bytes

    @classmethod
    def create(cls, mpk: MasterPublicKey, k_iot: KIot, nonce_seed: bytes, pds: tuple[bytes, ...], w: int = 6):
        tables = b"".join(comb_table(base, w) for base in (g1, mpk.h1, mpk.u1))
        return cls(k_iot.device_id, k_iot.epoch, mpk.aa_fp, k_iot.G_iot, nonce_seed, mpk.h1, mpk.u1, pds, w, tables)

    def encode(self) -> bytes:
        out = bytearray(DEVICE_MAGIC) + bytes([DEVICE_VERSION, len(self.device_id)]) + self.device_id
        out += self.epoch.to_bytes(4, "big") + self.aa_fp + _affine(self.G_iot) + self.nonce_seed
        out += _affine(self.h1) + _affine(self.u1) + bytes([len(self.pds)]) + b"".join(self.pds)
        return bytes(out + bytes([self.w]) + self.tables)

    @classmethod
    def decode(cls, data: bytes) -> DeviceBundle:
        reader = Reader(data, "device bundle")
        if reader.take(4) != DEVICE_MAGIC or reader.u8() != DEVICE_VERSION:
            raise DecodeError("device bundle: bad magic or unsupported version")
        device_id = reader.take(reader.u8())
        epoch = reader.int(4)
        aa_fp = reader.take(32)
        G_iot = _point(reader.take(96))
        nonce_seed = reader.take(32)
        h1, u1 = _point(reader.take(96)), _point(reader.take(96))
        pds = tuple(reader.take(32) for _ in range(reader.u8()))
        w = reader.u8()
        if not 2 <= w <= 8 or not pds:
            raise DecodeError("device bundle: comb width out of range or no policy digest")
        tables = reader.take(3 * (1 << (w - 1)) * ENTRY_SIZE)
        reader.end()
        return cls(device_id, epoch, aa_fp, G_iot, nonce_seed, h1, u1, pds, w, tables)

    @property
    def k_iot(self) -> KIot:
        return KIot(self.device_id, self.epoch, self.G_iot)


@dataclass(frozen=True)
class GatewayBundle:
    """K_fog for one device and epoch, with the mpk and the registered policy the gateway serves (rule G1)."""

    gateway_id: str
    mpk: MasterPublicKey
    k_fog: KFog
    policy: RegistryPolicy

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": GATEWAY_FORMAT,
                "version": GATEWAY_VERSION,
                "gateway": self.gateway_id,
                "device": self.k_fog.device_id.decode(),
                "epoch": self.k_fog.epoch,
                "policy": str(self.policy),
                "mpk": self.mpk.encode().hex(),
                "k_fog": self.k_fog.encode().hex(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, allow_test: bool = False) -> GatewayBundle:
        try:
            doc = json.loads(text)
            if doc.get("format") != GATEWAY_FORMAT or doc.get("version") != GATEWAY_VERSION:
                raise DecodeError("gateway bundle: unknown format or version")
            mpk = MasterPublicKey.decode(bytes.fromhex(doc["mpk"]), allow_test=allow_test)
            k_fog = KFog.decode(bytes.fromhex(doc["k_fog"]))
            policy = parse_policy(doc["policy"], mpk.d)
            gateway_id = str(doc["gateway"])
            header_matches = k_fog.device_id.decode() == doc["device"] and k_fog.epoch == doc["epoch"]
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise DecodeError(f"gateway bundle: {exc!r}") from None
        if not header_matches:
            raise DecodeError("gateway bundle: header does not match K_fog")
        return cls(gateway_id, mpk, k_fog, policy)
