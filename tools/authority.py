"""`edgeprov authority setup | keygen | show | revoke | gateway | grant-admin`: the attribute authority, spec §3.1–§3.2.

Directory layout (`--aa-dir`, default `./aa`):

    authority.json        public: d, mpk, aa_fp, the authority's Ed25519 public key
    master.key            0600: α and the Ed25519 signing key; never printed, never logged
    devices.json          issued keys: device → epoch, attributes, policy, gateway, status
    issued/<device>/e<epoch>/
        device.bundle     0600: K_iot, nonce seed, policy digests, comb tables (for the board)
        device.record     0600: the device's fresh single-use record (spec §4)
        gateway.json      0600: K_fog, mpk and policy for the device's gateway
        registration.json the AA-signed Device Registration entry for the ledger
    gateways/<gateway>/e<epoch>/
        gateway.key       0600: the gateway's Ed25519 path-hop key (edgeprov.pathhop)
        registration.json the AA-signed "gateway" registration binding its public key
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgeprov.admin_grant import POLICIES, AdminGrant
from edgeprov.crypto.abs_iot import keygen, setup
from edgeprov.crypto.bundle import DeviceBundle, GatewayBundle
from edgeprov.crypto.device import DeviceSigner
from edgeprov.crypto.objects import MasterPublicKey
from edgeprov.crypto.points import DecodeError, R
from edgeprov.crypto.policy import FormulaPolicy, Policy, PolicyError, RegistryPolicy, parse_policy
from edgeprov.crypto.rng import SystemRng
from edgeprov.pathhop import encode_key
from edgeprov.registration import Registration, attributes_digest

MASTER_FORMAT = "edgeprov-aa-master"
PUBLIC_FORMAT = "edgeprov-aa-public"
FILE_VERSION = 1


class AuthorityError(Exception):
    """A refused authority operation, with a message for the operator."""


def write_secret(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600; refuse to overwrite (a second setup must not replace α silently)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuthorityError(f"{path} already exists; refusing to overwrite a key file") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read_secret(path: Path) -> bytes:
    """Read a key file, refusing one that group or others can read (as ssh does)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AuthorityError(f"{path} not found (run `edgeprov authority setup` first?)") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthorityError(f"{path} is accessible by others (mode {oct(mode & 0o777)}); chmod 600 it")
    return path.read_bytes()


@dataclass
class Authority:
    """The loaded authority: public key material plus (only when needed) the master secret."""

    root: Path
    mpk: MasterPublicKey
    signing_public: Ed25519PublicKey

    @classmethod
    def load(cls, root: Path) -> Authority:
        try:
            doc = json.loads((root / "authority.json").read_text())
            if doc["format"] != PUBLIC_FORMAT or doc["version"] != FILE_VERSION:
                raise AuthorityError("authority.json: unknown format or version")
            mpk = MasterPublicKey.decode(bytes.fromhex(doc["mpk"]))
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(doc["signing_public_key"]))
        except FileNotFoundError:
            raise AuthorityError(f"no authority in {root} (run `edgeprov authority setup --aa-dir {root}`)") from None
        except (KeyError, ValueError, DecodeError) as exc:
            raise AuthorityError(f"authority.json is malformed: {exc}") from None
        return cls(root, mpk, public)

    def secrets(self) -> tuple[int, Ed25519PrivateKey]:
        doc = json.loads(read_secret(self.root / "master.key"))
        if doc.get("format") != MASTER_FORMAT or doc.get("version") != FILE_VERSION:
            raise AuthorityError("master.key: unknown format or version")
        alpha = int(doc["alpha"], 16)
        if not 0 < alpha < R:
            raise AuthorityError("master.key: α out of range")
        return alpha, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["signing_key"]))

    def devices(self) -> dict[str, dict]:
        path = self.root / "devices.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def save_devices(self, devices: dict[str, dict]) -> None:
        tmp = self.root / "devices.json.tmp"
        tmp.write_text(json.dumps(devices, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.root / "devices.json")


def cmd_setup(args: argparse.Namespace) -> int:
    root: Path = args.aa_dir
    if (root / "master.key").exists():
        raise AuthorityError(f"{root} already holds an authority; a new Setup means a new system (new aa_fp)")
    mpk, alpha = setup(args.d, SystemRng())
    signing = Ed25519PrivateKey.generate()
    raw_signing = signing.private_bytes_raw().hex()
    master = {"format": MASTER_FORMAT, "version": FILE_VERSION, "alpha": f"{alpha:064x}", "signing_key": raw_signing}
    write_secret(root / "master.key", json.dumps(master).encode())
    public = {
        "format": PUBLIC_FORMAT,
        "version": FILE_VERSION,
        "d": mpk.d,
        "mpk": mpk.encode().hex(),
        "aa_fp": mpk.aa_fp.hex(),
        "signing_public_key": signing.public_key().public_bytes_raw().hex(),
    }
    (root / "authority.json").write_text(json.dumps(public, indent=2) + "\n")
    print(f"authority created in {root}: d = {mpk.d}, aa_fp = {mpk.aa_fp.hex()}")
    print(f"master secret in {root / 'master.key'} (mode 0600); back it up offline, it is never shown")
    return 0


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def checked_name(kind: str, name: str) -> str:
    """Device and gateway ids become file and topic names: a conservative character set, no paths."""
    if not NAME_PATTERN.fullmatch(name):
        raise AuthorityError(f"{kind} id {name!r} must be 1..64 of A-Z a-z 0-9 . _ - and start alphanumeric")
    return name


def cmd_keygen(args: argparse.Namespace) -> int:
    aa = Authority.load(args.aa_dir)
    device, attrs = checked_name("device", args.device), [a.encode() for a in args.attr]
    checked_name("gateway", args.gateway)
    policy = parse_policy(args.policy, aa.mpk.d)
    signed_policy = policy_signed_by(policy, attrs)
    devices = aa.devices()
    epoch = _next_epoch(devices.get(device), device, args.rekey)
    alpha, signing = aa.secrets()
    rng = SystemRng()
    k_iot, k_fog = keygen(aa.mpk, alpha, device.encode(), epoch, attrs, rng)
    bundle = DeviceBundle.create(aa.mpk, k_iot, rng.random_bytes(32), (signed_policy.pd,), args.comb_width)
    out = args.aa_dir / "issued" / device / f"e{epoch}"
    write_secret(out / "device.bundle", bundle.encode())
    DeviceSigner.provision(bundle, out / "device.record")
    write_secret(out / "gateway.json", GatewayBundle(args.gateway, aa.mpk, k_fog, policy).to_json().encode())
    registration = Registration(
        "register", device, epoch, aa.mpk.aa_fp.hex(), args.gateway, str(policy),
        signed_policy.pd.hex(), attributes_digest(attrs), int(time.time() * 1000),
    )  # fmt: skip
    (out / "registration.json").write_text(json.dumps(registration.sign(signing), indent=2) + "\n")
    devices[device] = {
        "epoch": epoch,
        "attributes": args.attr,
        "policy": str(policy),
        "gateway": args.gateway,
        "status": "active",
    }
    aa.save_devices(devices)
    print(f"{device} epoch {epoch}: device bundle, record, gateway bundle and registration in {out}")
    return 0


def policy_signed_by(policy: RegistryPolicy, attrs: list[bytes]) -> Policy:
    """The Π the device will sign under: the policy itself, or in mode 1 its disclosed set Π_S (§3.8)."""
    if isinstance(policy, FormulaPolicy):
        return policy.disclose(set(attrs))
    if len(set(attrs) & set(policy.attrs)) < policy.k:
        raise PolicyError(f"the device's attributes do not satisfy '{policy}'")
    return policy


def _next_epoch(entry: dict | None, device: str, rekey: bool) -> int:
    if entry is None:
        return 1
    if entry["status"] == "revoked":
        raise AuthorityError(f"{device} is revoked; issue a new device id instead")
    if not rekey:
        raise AuthorityError(f"{device} already has a key (epoch {entry['epoch']}); pass --rekey to issue epoch + 1")
    return entry["epoch"] + 1


def cmd_show(args: argparse.Namespace) -> int:
    aa = Authority.load(args.aa_dir)
    print(f"authority {args.aa_dir}: d = {aa.mpk.d}, aa_fp = {aa.mpk.aa_fp.hex()}")
    print(f"registration signing key (Ed25519, public): {aa.signing_public.public_bytes_raw().hex()}")
    devices = aa.devices()
    if not devices:
        print("no devices issued yet")
    for name, entry in sorted(devices.items()):
        status = f"epoch {entry['epoch']:<3} {entry['status']:<8} gateway {entry['gateway']:<12}"
        print(f"  {name:<20} {status} {entry['policy']}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    aa = Authority.load(args.aa_dir)
    devices = aa.devices()
    entry = devices.get(checked_name("device", args.device))
    if entry is None:
        raise AuthorityError(f"unknown device {args.device}")
    _, signing = aa.secrets()
    revocation = Registration(
        "revoke", args.device, entry["epoch"], aa.mpk.aa_fp.hex(), issued_at_ms=int(time.time() * 1000)
    )
    path = args.aa_dir / "issued" / args.device / "revocation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(revocation.sign(signing), indent=2) + "\n")
    entry["status"] = "revoked"
    aa.save_devices(devices)
    print(f"{args.device} revoked; submit {path} to the ledger's Device Registration contract")
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    """Issue a gateway's path-hop key and its AA-signed registration; a second call issues epoch + 1."""
    aa = Authority.load(args.aa_dir)
    gateway = checked_name("gateway", args.gateway)
    base = args.aa_dir / "gateways" / gateway
    epoch = 1 + max((int(p.name[1:]) for p in base.glob("e*") if p.name[1:].isdigit()), default=0)
    _, signing = aa.secrets()
    key = Ed25519PrivateKey.generate()
    out = base / f"e{epoch}"
    write_secret(out / "gateway.key", encode_key(gateway, key))
    public = key.public_key().public_bytes_raw().hex()
    registration = Registration(
        "gateway", "", epoch, aa.mpk.aa_fp.hex(), gateway, issued_at_ms=int(time.time() * 1000), public_key=public
    )
    (out / "registration.json").write_text(json.dumps(registration.sign(signing), indent=2) + "\n")
    print(f"gateway {gateway} key epoch {epoch}: key (0600) and registration in {out}; public key {public}")
    return 0


def cmd_grant_admin(args: argparse.Namespace) -> int:
    """Sign a use-case admin grant (edgeprov.admin_grant): the ledger's `setup` takes it from that admin only."""
    aa = Authority.load(args.aa_dir)
    grant = AdminGrant(args.usecase, args.admin_key.lower(), args.policy, int(time.time() * 1000)).check()
    _, signing = aa.secrets()
    text = json.dumps(grant.sign(signing), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        with args.out.open("x") as f:
            f.write(text)
    except FileExistsError:
        raise AuthorityError(f"{args.out} already exists; refusing to overwrite a grant") from None
    print(f"{args.usecase} admin grant for {grant.admin} ({args.policy}) in {args.out}; the admin submits it to setup")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "authority", help="attribute authority: setup, keygen, show, revoke, gateway, grant-admin"
    )
    sub = parser.add_subparsers(dest="authority_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--aa-dir", type=Path, default=Path("aa"), help="authority directory (default ./aa)")

    p = sub.add_parser("setup", parents=[common], help="create the system: mpk, master secret, signing key")
    p.add_argument("--d", type=int, default=6, help="maximum threshold d (fixed for the system's life)")
    p.set_defaults(func=_guarded(cmd_setup))

    p = sub.add_parser("keygen", parents=[common], help="issue a device key split into K_iot and K_fog")
    p.add_argument("--device", required=True, help="device id, 1..64 bytes")
    p.add_argument("--attr", action="append", default=[], help="a name=value attribute (repeatable)")
    p.add_argument("--policy", required=True, help="e.g. 'id and 2 of (org=acme, type=temp, site=ward-7)'")
    p.add_argument("--gateway", required=True, help="the gateway that will hold K_fog")
    p.add_argument("--rekey", action="store_true", help="issue epoch + 1 for a device that already has a key")
    p.add_argument("--comb-width", type=int, default=6, help="device comb table width w (spec §6)")
    p.set_defaults(func=_guarded(cmd_keygen))

    p = sub.add_parser("show", parents=[common], help="print the public parameters and issued devices")
    p.set_defaults(func=_guarded(cmd_show))

    p = sub.add_parser("revoke", parents=[common], help="revoke a device (signed revocation for the ledger)")
    p.add_argument("--device", required=True)
    p.set_defaults(func=_guarded(cmd_revoke))

    p = sub.add_parser("gateway", parents=[common], help="issue a gateway's path-hop key and signed registration")
    p.add_argument("--gateway", required=True, help="gateway id, as in its devices' keygen --gateway")
    p.set_defaults(func=_guarded(cmd_gateway))

    p = sub.add_parser("grant-admin", parents=[common], help="sign a grant naming a use case's admin (ledger setup)")
    p.add_argument("--usecase", required=True, help="use-case contract, e.g. vaccine, health, vehicle")
    p.add_argument("--admin-key", required=True, help="the admin client's raw Ed25519 public key, 64 hex digits")
    p.add_argument("--policy", required=True, choices=POLICIES, help="minting policy")
    p.add_argument("--out", type=Path, help="write the signed grant here (default: print it)")
    p.set_defaults(func=_guarded(cmd_grant_admin))


def _guarded(func):
    """Turn refusals and bad input into one clear line on stderr and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (AuthorityError, PolicyError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run
