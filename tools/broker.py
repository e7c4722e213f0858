"""`edgeprov broker config`: a locked-down Mosquitto for one gateway and its devices (DESIGN.md §1, §5).

Writes into --out:

    ca.crt, ca.key          a private CA (EC P-256; ca.key 0600: keep it offline after setup)
    server.crt, server.key  the broker's TLS certificate for --host names (server.key 0600)
    passwd                  one account per device, the gateway and a read-only dashboard,
                            Mosquitto's PBKDF2-SHA512 `$7$` format (0600)
    credentials/<user>      each account's random password, 0600, to hand to that party only
    acl                     a device reads and writes only edgeprov/v1/<gateway>/<its id>/#,
                            the gateway edgeprov/v1/<gateway>/#, the dashboard reads it
    mosquitto.conf          TLS listener, no anonymous access, large queues for the gateway's
                            persistent session (a restarting gateway must not lose readings)

Passwords are 32 random bytes (base64url), so the hash's iteration count (101, Mosquitto's
default) is not what protects them.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import ipaddress
import os
import pwd
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeprov import wire

PBKDF2_ITERATIONS = 101
DASHBOARD_USER = "dashboard"
CERT_DAYS = 3650
DEFAULT_HOSTS = ["localhost", "127.0.0.1"]


class BrokerConfigError(ValueError):
    """Bad arguments for the broker configuration; the message says which."""


def password_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's `$7$` entry: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash, both base64."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(gateway: str, devices: list[str]) -> str:
    root = wire.TOPIC_ROOT
    lines = [f"user {gateway}", f"topic readwrite {root}/{gateway}/#", ""]
    lines += [f"user {DASHBOARD_USER}", f"topic read {root}/{gateway}/#", ""]
    for device in devices:
        lines += [f"user {device}", f"topic readwrite {root}/{gateway}/{device}/#", ""]
    return "\n".join(lines)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeprov"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_certificates(out: Path, gateway: str, hosts: list[str]) -> None:
    """A CA and a server certificate whose SANs are `hosts` (DNS names or IP addresses)."""
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=CERT_DAYS))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"edgeprov broker CA for {gateway}")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [_san(h) for h in hosts]
    cert = (
        x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    _write(out / "ca.key", _key_pem(ca_key), 0o600)
    _write(out / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    _write(out / "server.key", _key_pem(key), 0o600)
    _write(out / "server.crt", cert.public_bytes(serialization.Encoding.PEM))


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def mosquitto_conf(out: Path, port: int, bind: str, plain_port: int | None, run_as: str) -> str:
    lines = [
        "# generated by `edgeprov broker config`; see tools/broker.py",
        f"user {run_as}",  # started as root, Mosquitto switches to this user before reading passwd and keys
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {out / 'passwd'}",
        f"acl_file {out / 'acl'}",
        "persistence true",
        f"persistence_location {out / 'data'}/",
        "max_queued_messages 1000000",  # a stopped gateway's QoS 1 backlog, kept for its persistent session
        "max_inflight_messages 100",
        "max_packet_size 16384",  # a reading frame is at most a few kB (edgeprov.wire MAX_MSG + share)
        "set_tcp_nodelay true",  # small frames go out at once: publish -> relayed ack 46-57 ms became 17-20 ms
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        "",
        f"listener {port} {bind}",
        "protocol mqtt",
        f"cafile {out / 'ca.crt'}",
        f"certfile {out / 'server.crt'}",
        f"keyfile {out / 'server.key'}",
        "tls_version tlsv1.2",
        "require_certificate false",
    ]
    if plain_port is not None:
        # Loopback only, still password- and ACL-protected: for clients without TLS on the same host.
        lines += ["", f"listener {plain_port} 127.0.0.1", "protocol mqtt"]
    return "\n".join(lines) + "\n"


def write_config(
    out: Path,
    gateway: str,
    devices: list[str],
    port: int,
    bind: str,
    hosts: list[str],
    plain_port: int | None,
    run_as: str,
) -> dict[str, str]:
    """Write everything into `out`; returns {user: password} (also written to credentials/, 0600)."""
    for name in [gateway, *devices]:
        wire.topic(gateway, name, "reading")  # the id rules of the topics, with a clear error
    if len(set(devices)) != len(devices) or gateway in devices or DASHBOARD_USER in [gateway, *devices]:
        raise BrokerConfigError("device ids must be distinct and differ from the gateway id and 'dashboard'")
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    creds = out / "credentials"
    creds.mkdir(mode=0o700, exist_ok=True)
    accounts = {user: secrets.token_urlsafe(32) for user in [gateway, DASHBOARD_USER, *devices]}
    for user, password in accounts.items():
        _write(creds / user, password.encode(), 0o600)
    passwd = "".join(f"{user}:{password_hash(pw)}\n" for user, pw in accounts.items())
    _write(out / "passwd", passwd.encode(), 0o600)
    _write(out / "acl", acl_text(gateway, devices).encode())
    make_certificates(out, gateway, hosts)
    _write(out / "mosquitto.conf", mosquitto_conf(out.resolve(), port, bind, plain_port, run_as).encode())
    _give_to(run_as, [out / "passwd", out / "server.key", out / "data"])
    return accounts


def _give_to(user: str, paths: list[Path]) -> None:
    """As root, hand the files the broker must read (0600) to the user it runs as."""
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise BrokerConfigError(f"no system user {user!r} (install mosquitto, or pass --run-as)") from None
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def default_user() -> str:
    """Debian's `mosquitto` account when we are root, else whoever runs this (who will run the broker)."""
    return "mosquitto" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def cmd_config(args: argparse.Namespace) -> int:
    try:
        write_config(
            args.out,
            args.gateway,
            args.devices,
            args.port,
            args.bind,
            args.host or DEFAULT_HOSTS,
            args.plain_port,
            args.run_as or default_user(),
        )
    except (BrokerConfigError, wire.WireError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"broker config for gateway {args.gateway} and {len(args.devices)} devices in {args.out}")
    print(f"run: mosquitto -c {args.out / 'mosquitto.conf'}   (passwords are in {args.out / 'credentials'}, 0600)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("broker", help="Mosquitto: TLS, per-device passwords and ACLs")
    sub = parser.add_subparsers(dest="broker_command", required=True)
    p = sub.add_parser("config", help="write mosquitto.conf, certificates, password file and ACLs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--gateway", required=True, help="gateway id (its MQTT account and topic prefix)")
    p.add_argument("--devices", nargs="+", required=True, help="device ids, one MQTT account each")
    p.add_argument("--port", type=int, default=8883, help="TLS listener port")
    p.add_argument("--bind", default="0.0.0.0", help="TLS listener address")
    p.add_argument(
        "--host",
        action="append",
        default=None,
        help="server certificate name (repeatable; default localhost, 127.0.0.1)",
    )
    p.add_argument("--plain-port", type=int, default=None, help="optional plaintext listener on 127.0.0.1")
    p.add_argument("--run-as", default=None, help="system user Mosquitto runs as (default: mosquitto when root)")
    p.set_defaults(func=cmd_config)
