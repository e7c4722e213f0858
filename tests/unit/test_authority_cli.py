"""`edgeprov authority setup | keygen | show | revoke` (tools/authority.py; spec §3.1–§3.2).

Runs the CLI in-process (`edgeprov.cli.main`) in tmp_path: file modes, refusals with exit status 2
and a clear message, no secret on stdout/stderr, and the issued keys really sign readings that
verify against the signed Device Registration entry.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeprov.cli import main
from edgeprov.crypto import abs_iot
from edgeprov.crypto.abs_iot import Record, RegistryEntry, SignatureRejected
from edgeprov.crypto.bundle import DeviceBundle, GatewayBundle
from edgeprov.crypto.device import DeviceSigner
from edgeprov.crypto.objects import MasterPublicKey
from edgeprov.crypto.policy import FormulaPolicy, Policy, parse_policy
from edgeprov.registration import Registration, attributes_digest

pytestmark = pytest.mark.unit

POLICY = "id and 2 of (org=acme, type=temp, site=ward-7)"
ATTRS = ["org=acme", "type=temp", "unit=dev-1"]


class Cli:
    """Runs commands against one authority directory and keeps everything they printed."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root, self.capsys, self.transcript = root, capsys, []

    def __call__(self, *args: str) -> tuple[int, str, str]:
        command, *rest = args
        code = main(["authority", command, "--aa-dir", str(self.root), *rest])
        out, err = self.capsys.readouterr()
        self.transcript.append(out + err)
        return code, out, err

    def keygen(self, device: str = "dev-1", attrs=ATTRS, policy: str = POLICY, *extra: str):
        args = ["--device", device, "--policy", policy, "--gateway", "gw-1", "--comb-width", "3", *extra]
        for a in attrs:
            args += ["--attr", a]
        return self("keygen", *args)

    def master(self) -> dict:
        return json.loads((self.root / "master.key").read_text())

    def public(self) -> dict:
        return json.loads((self.root / "authority.json").read_text())

    def issued(self, device: str = "dev-1", epoch: int = 1) -> Path:
        return self.root / "issued" / device / f"e{epoch}"

    def secret_strings(self) -> list[str]:
        master = self.master()
        alpha = int(master["alpha"], 16)
        return [master["alpha"], f"{alpha:x}", str(alpha), master["signing_key"]]

    def assert_no_secret_printed(self) -> None:
        text = "\n".join(self.transcript)
        for secret in self.secret_strings():
            assert secret not in text
            assert secret.upper() not in text


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    runner = Cli(tmp_path / "aa", capsys)
    code, _, err = runner("setup")
    assert code == 0, err
    yield runner
    runner.assert_no_secret_printed()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def signing_public(cli: Cli) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(cli.public()["signing_public_key"]))


# ---- setup -------------------------------------------------------------------------------------


def test_setup_writes_public_and_secret_files(cli):
    public = cli.public()
    assert public["format"] == "edgeprov-aa-public"
    assert set(public) == {"format", "version", "d", "mpk", "aa_fp", "signing_public_key"}
    assert "alpha" not in public and "signing_key" not in public
    mpk = MasterPublicKey.decode(bytes.fromhex(public["mpk"]))
    assert public["d"] == mpk.d == 6
    assert public["aa_fp"] == mpk.aa_fp.hex()
    assert mode(cli.root / "master.key") == 0o600
    master = cli.master()
    assert master["format"] == "edgeprov-aa-master"
    assert int(master["alpha"], 16) > 0
    # α is not derivable from, nor written into, any public file.
    for secret in cli.secret_strings():
        assert secret not in (cli.root / "authority.json").read_text()
    assert "aa_fp" in cli.transcript[0]
    assert public["aa_fp"] in cli.transcript[0]


def test_setup_with_another_d(tmp_path, capsys):
    runner = Cli(tmp_path / "aa", capsys)
    code, _, _ = runner("setup", "--d", "4")
    assert code == 0
    assert runner.public()["d"] == 4
    runner.assert_no_secret_printed()


def test_setup_refuses_bad_d(tmp_path, capsys):
    runner = Cli(tmp_path / "aa", capsys)
    code, _, err = runner("setup", "--d", "0")
    assert code == 2
    assert "error:" in err and "d must be" in err
    assert not (tmp_path / "aa" / "master.key").exists()


def test_second_setup_is_refused(cli):
    before_master = (cli.root / "master.key").read_bytes()
    before_public = (cli.root / "authority.json").read_bytes()
    code, out, err = cli("setup")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert "already holds an authority" in err
    assert len(err.strip().splitlines()) == 1
    assert (cli.root / "master.key").read_bytes() == before_master
    assert (cli.root / "authority.json").read_bytes() == before_public


# ---- keygen ------------------------------------------------------------------------------------


def test_keygen_writes_bundles_with_private_modes(cli):
    code, out, err = cli.keygen()
    assert code == 0, err
    out_dir = cli.issued()
    assert str(out_dir) in out
    for name in ("device.bundle", "device.record", "gateway.json"):
        assert mode(out_dir / name) == 0o600, name
    assert (out_dir / "registration.json").exists()
    assert not list(out_dir.glob("*.tmp"))

    public = cli.public()
    mpk = MasterPublicKey.decode(bytes.fromhex(public["mpk"]))
    bundle = DeviceBundle.decode((out_dir / "device.bundle").read_bytes())
    assert bundle.device_id == b"dev-1" and bundle.epoch == 1
    assert bundle.aa_fp == mpk.aa_fp
    assert bundle.h1 == mpk.h1 and bundle.u1 == mpk.u1
    assert bundle.w == 3

    gateway = GatewayBundle.from_json((out_dir / "gateway.json").read_text())
    assert gateway.gateway_id == "gw-1"
    assert gateway.mpk == mpk
    assert gateway.k_fog.device_id == b"dev-1" and gateway.k_fog.epoch == 1
    assert set(gateway.k_fog.attrs) == {a.encode() for a in ATTRS}
    assert gateway.policy == parse_policy(POLICY, 6)

    registration = Registration.verify(json.loads((out_dir / "registration.json").read_text()), signing_public(cli))
    assert registration.action == "register"
    assert (registration.device, registration.epoch, registration.gateway) == ("dev-1", 1, "gw-1")
    assert registration.aa_fp == mpk.aa_fp.hex()
    assert parse_policy(registration.policy, 6) == gateway.policy
    assert registration.pd == gateway.policy.pd.hex()
    assert bundle.pds == (gateway.policy.pd,)
    assert registration.attributes_digest == attributes_digest([a.encode() for a in ATTRS])
    assert registration.issued_at_ms > 0

    devices = json.loads((cli.root / "devices.json").read_text())
    assert devices["dev-1"]["epoch"] == 1 and devices["dev-1"]["status"] == "active"


def sign_and_verify(cli: Cli, device: str, epoch: int, msg: bytes = b"temp=21.5C") -> None:
    """Sign one reading with the issued keys (device + gateway) and verify it against the registration."""
    out_dir = cli.issued(device, epoch)
    bundle = DeviceBundle.decode((out_dir / "device.bundle").read_bytes())
    signer = DeviceSigner(bundle, out_dir / "device.record")
    signer.precompute(2)
    signed = signer.sign(1_700_000_000_000, msg)
    assert signed.ctr == 1

    gateway = GatewayBundle.from_json((out_dir / "gateway.json").read_text())
    mpk = gateway.mpk
    registration = Registration.verify(json.loads((out_dir / "registration.json").read_text()), signing_public(cli))
    registry_policy = parse_policy(registration.policy, mpk.d)
    entry = RegistryEntry(registration.device.encode(), registration.epoch, registry_policy)

    if isinstance(gateway.policy, FormulaPolicy):
        policy = gateway.policy.disclose(set(gateway.k_fog.attrs))
        disclosed = policy.attrs
    else:
        policy, disclosed = gateway.policy, None
    assert policy.pd.hex() == registration.pd == signed.pd.hex()
    cred = abs_iot.credential(gateway.k_fog, policy)
    record = Record(bundle.device_id, bundle.epoch, signed.ctr, signed.ts_ms, signed.msg, signed.pd, disclosed)
    gw_share = abs_iot.gateway_share(mpk, gateway.k_fog, record.statement(mpk.aa_fp).c)
    sig = abs_iot.combine(signed.share, gw_share, cred)
    abs_iot.verify(mpk, entry, record, sig)

    tampered = Record(record.device_id, record.epoch, record.ctr, record.ts_ms, msg + b"!", record.pd, disclosed)
    with pytest.raises(SignatureRejected):
        abs_iot.verify(mpk, entry, tampered, sig)


def test_issued_keys_sign_a_reading_that_verifies(cli):
    assert cli.keygen()[0] == 0
    sign_and_verify(cli, "dev-1", 1)


def test_issued_keys_with_a_formula_policy(cli):
    policy = "id and all of (org=acme, any of (type=hum, type=temp))"
    code, _, err = cli.keygen("dev-2", ATTRS, policy)
    assert code == 0, err
    registration = json.loads((cli.issued("dev-2") / "registration.json").read_text())
    registry = parse_policy(registration["policy"], 6)
    assert isinstance(registry, FormulaPolicy)
    # The device signs under the disclosed set Π_S: the registration carries its pd.
    assert registration["pd"] == registry.disclose({a.encode() for a in ATTRS}).pd.hex()
    sign_and_verify(cli, "dev-2", 1)


def test_keygen_again_needs_rekey(cli):
    assert cli.keygen()[0] == 0
    code, out, err = cli.keygen()
    assert code == 2
    assert "already has a key (epoch 1)" in err
    assert "--rekey" in err
    assert not cli.issued(epoch=2).exists()

    code, out, err = cli.keygen("dev-1", ATTRS, POLICY, "--rekey")
    assert code == 0, err
    assert "epoch 2" in out
    bundle = DeviceBundle.decode((cli.issued(epoch=2) / "device.bundle").read_bytes())
    assert bundle.epoch == 2
    registration = Registration.verify(
        json.loads((cli.issued(epoch=2) / "registration.json").read_text()), signing_public(cli)
    )
    assert registration.epoch == 2
    assert json.loads((cli.root / "devices.json").read_text())["dev-1"]["epoch"] == 2
    # Fresh secrets: nothing carried over from epoch 1 (spec §3.2 re-key).
    old = DeviceBundle.decode((cli.issued(epoch=1) / "device.bundle").read_bytes())
    assert old.nonce_seed != bundle.nonce_seed and old.G_iot != bundle.G_iot
    sign_and_verify(cli, "dev-1", 2)


def test_old_epoch_signature_is_rejected_after_rekey(cli):
    assert cli.keygen()[0] == 0
    assert cli.keygen("dev-1", ATTRS, POLICY, "--rekey")[0] == 0
    old_dir = cli.issued(epoch=1)
    bundle = DeviceBundle.decode((old_dir / "device.bundle").read_bytes())
    signed = DeviceSigner(bundle, old_dir / "device.record").sign(1, b"m")
    gateway = GatewayBundle.from_json((old_dir / "gateway.json").read_text())
    record = Record(b"dev-1", 1, signed.ctr, 1, b"m", signed.pd)
    sig = abs_iot.combine(
        signed.share,
        abs_iot.gateway_share(gateway.mpk, gateway.k_fog, record.statement(gateway.mpk.aa_fp).c),
        abs_iot.credential(gateway.k_fog, gateway.policy),
    )
    abs_iot.verify(gateway.mpk, RegistryEntry(b"dev-1", 1, gateway.policy), record, sig)  # valid for epoch 1
    current = RegistryEntry(b"dev-1", 2, gateway.policy)
    with pytest.raises(SignatureRejected) as info:
        abs_iot.verify(gateway.mpk, current, record, sig)
    assert info.value.reason == "epoch"


def test_unsatisfiable_policy_is_refused(cli):
    code, out, err = cli.keygen("dev-3", ["org=acme", "unit=x"], POLICY)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert "do not satisfy" in err
    assert "2 of (org=acme, site=ward-7, type=temp)" in err
    assert not (cli.root / "issued" / "dev-3").exists()
    devices = cli.root / "devices.json"
    assert not devices.exists() or "dev-3" not in json.loads(devices.read_text())


def test_unsatisfiable_formula_policy_is_refused(cli):
    code, _, err = cli.keygen("dev-3", ["org=acme"], "id and all of (org=acme, any of (type=hum, type=temp))")
    assert code == 2
    assert "do not satisfy the formula" in err
    assert not (cli.root / "issued" / "dev-3").exists()


def test_malformed_policy_is_refused_with_a_caret(cli):
    text = "id and 2 of (org=acme type=temp, site=ward-7)"
    code, out, err = cli.keygen("dev-4", ATTRS, text)
    assert code == 2
    assert out == ""
    lines = err.rstrip("\n").splitlines()
    assert lines[0].startswith("error: expected ')' at column ")
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * text.index("type=temp") + "^"
    assert not (cli.root / "issued" / "dev-4").exists()


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        ("2 of (org=acme, type=temp)", "starts with 'id and'"),
        ("id and 3 of (org=acme, type=temp)", "threshold 3 not in 1..2"),
        ("id and any of (org=acme, id=dev-1)", "(check d)"),
        ("id and 7 of (a=1, b=2, c=3, d=4, e=5, f=6, g=7)", "(check e)"),
    ],
)
def test_bad_policies_are_refused(cli, policy, needle):
    code, _, err = cli.keygen("dev-5", ATTRS, policy)
    assert code == 2
    assert needle in err
    assert not (cli.root / "issued" / "dev-5").exists()


@pytest.mark.parametrize("attr", ["id=dev-1", "\x00dflt=\x01", ""])
def test_bad_device_attributes_are_refused(cli, attr):
    code, _, err = cli.keygen("dev-6", [*ATTRS, attr], POLICY)
    assert code == 2
    assert err.startswith("error: ")
    assert not (cli.root / "issued" / "dev-6").exists()


@pytest.mark.parametrize("device", ["", "x" * 65])
def test_bad_device_ids_are_refused(cli, device):
    code, _, err = cli.keygen(device, ATTRS, POLICY)
    assert code == 2
    assert "device id" in err


def test_device_id_cannot_escape_the_authority_directory(cli):
    code, _, _ = cli.keygen("../../escaped", ATTRS, POLICY)
    escaped = cli.root.parent / "escaped"
    assert code == 2 or not escaped.exists()


def test_keygen_without_setup(tmp_path, capsys):
    runner = Cli(tmp_path / "nothing", capsys)
    code, _, err = runner.keygen()
    assert code == 2
    assert "no authority" in err and "setup" in err


# ---- revoke ------------------------------------------------------------------------------------


def test_revoke_writes_a_signed_revocation_and_blocks_keygen(cli):
    assert cli.keygen()[0] == 0
    code, out, err = cli("revoke", "--device", "dev-1")
    assert code == 0, err
    path = cli.root / "issued" / "dev-1" / "revocation.json"
    assert str(path) in out
    revocation = Registration.verify(json.loads(path.read_text()), signing_public(cli))
    assert revocation.action == "revoke"
    assert (revocation.device, revocation.epoch) == ("dev-1", 1)
    assert revocation.aa_fp == cli.public()["aa_fp"]
    assert json.loads((cli.root / "devices.json").read_text())["dev-1"]["status"] == "revoked"

    for extra in ((), ("--rekey",)):
        code, _, err = cli.keygen("dev-1", ATTRS, POLICY, *extra)
        assert code == 2
        assert "revoked" in err
    assert not cli.issued(epoch=2).exists()


def test_revoke_unknown_device(cli):
    code, _, err = cli("revoke", "--device", "ghost")
    assert code == 2
    assert "unknown device ghost" in err
    assert not (cli.root / "issued" / "ghost").exists()


def test_revocation_signature_binds_its_fields(cli):
    assert cli.keygen()[0] == 0
    assert cli("revoke", "--device", "dev-1")[0] == 0
    doc = json.loads((cli.root / "issued" / "dev-1" / "revocation.json").read_text())
    for key, value in (("device", "dev-2"), ("epoch", 2), ("action", "register")):
        with pytest.raises(ValueError):
            Registration.verify({**doc, key: value}, signing_public(cli))


# ---- master.key permissions --------------------------------------------------------------------


def test_group_readable_master_key_is_refused_when_needed(cli):
    assert cli.keygen()[0] == 0
    master = cli.root / "master.key"
    os.chmod(master, 0o644)

    code, _, err = cli.keygen("dev-7", ATTRS, POLICY)
    assert code == 2
    assert "accessible by others" in err and "0o644" in err and "chmod 600" in err
    assert not (cli.root / "issued" / "dev-7").exists()

    code, _, err = cli("revoke", "--device", "dev-1")
    assert code == 2
    assert "accessible by others" in err
    assert json.loads((cli.root / "devices.json").read_text())["dev-1"]["status"] == "active"

    code, out, _ = cli("show")  # public information only: no secret needed
    assert code == 0
    assert "dev-1" in out

    os.chmod(master, 0o600)
    assert cli.keygen("dev-7", ATTRS, POLICY)[0] == 0


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o660, 0o700 | 0o001])
def test_any_group_or_other_bit_is_refused(cli, bad_mode):
    os.chmod(cli.root / "master.key", bad_mode)
    code, _, err = cli.keygen()
    assert code == 2
    assert "accessible by others" in err
    os.chmod(cli.root / "master.key", 0o600)


# ---- show --------------------------------------------------------------------------------------


def test_show_lists_devices_without_secrets(cli):
    code, out, _ = cli("show")
    assert code == 0
    assert "no devices issued yet" in out

    assert cli.keygen()[0] == 0
    assert cli.keygen("dev-2", ATTRS, "id and org=acme")[0] == 0
    assert cli.keygen("dev-1", ATTRS, POLICY, "--rekey")[0] == 0
    assert cli("revoke", "--device", "dev-2")[0] == 0
    code, out, err = cli("show")
    assert code == 0 and err == ""
    public = cli.public()
    assert public["aa_fp"] in out
    assert public["signing_public_key"] in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(lines) == {"dev-1", "dev-2"}
    assert "epoch 2" in lines["dev-1"] and "active" in lines["dev-1"] and "gw-1" in lines["dev-1"]
    assert "2 of (org=acme, site=ward-7, type=temp)" in lines["dev-1"]
    assert "epoch 1" in lines["dev-2"] and "revoked" in lines["dev-2"]

    # No secret of the authority, and none of the issued keys' secrets, appear.
    for secret in cli.secret_strings():
        assert secret not in out
    for device, epoch in (("dev-1", 1), ("dev-1", 2), ("dev-2", 1)):
        bundle = DeviceBundle.decode((cli.issued(device, epoch) / "device.bundle").read_bytes())
        gateway = json.loads((cli.issued(device, epoch) / "gateway.json").read_text())
        assert bundle.nonce_seed.hex() not in out
        assert gateway["k_fog"] not in out
        assert gateway["k_fog"][-96:] not in out


def test_no_command_prints_alpha(cli):
    """A full session: every command's stdout and stderr, success or refusal, is free of α and the signing key."""
    cli.keygen()
    cli.keygen()
    cli.keygen("dev-1", ATTRS, POLICY, "--rekey")
    cli.keygen("dev-2", ["org=acme"], POLICY)
    cli.keygen("dev-2", ATTRS, "id and (")
    cli("show")
    cli("revoke", "--device", "dev-1")
    cli("revoke", "--device", "nobody")
    cli("setup")
    os.chmod(cli.root / "master.key", 0o644)
    cli.keygen("dev-3")
    os.chmod(cli.root / "master.key", 0o600)
    assert len(cli.transcript) == 11  # with the fixture's setup
    cli.assert_no_secret_printed()
    # Nor do any of the files meant to leave the authority's machine.
    for path in cli.root.rglob("*"):
        if path.is_file() and path.name != "master.key":
            content = path.read_bytes()
            for secret in cli.secret_strings():
                assert secret.encode() not in content, path
            assert int(cli.master()["alpha"], 16).to_bytes(32, "big") not in content, path


def test_cli_runs_as_a_subprocess(tmp_path):
    """The installed `edgeprov` entry point: exit status 2 and one error line on refusal."""
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "edgeprov"
    if not exe.exists():
        pytest.skip("edgeprov entry point not installed in this environment")
    root = tmp_path / "aa"
    first = subprocess.run([exe, "authority", "setup", "--aa-dir", root], capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([exe, "authority", "setup", "--aa-dir", root], capture_output=True, text=True, check=False)
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and "Traceback" not in again.stderr
    alpha = json.loads((root / "master.key").read_text())["alpha"]
    assert alpha not in first.stdout + first.stderr + again.stdout + again.stderr


def test_registration_verifies_only_with_the_authority_key(cli, tmp_path, capsys):
    assert cli.keygen()[0] == 0
    other = Cli(tmp_path / "other", capsys)
    assert other("setup")[0] == 0
    doc = json.loads((cli.issued() / "registration.json").read_text())
    assert Registration.verify(doc, signing_public(cli)).device == "dev-1"
    with pytest.raises(ValueError):
        Registration.verify(doc, signing_public(other))
    assert isinstance(parse_policy(doc["policy"], 6), Policy)


# ---- grant-admin -------------------------------------------------------------------------------

ADMIN_KEY = "ab" * 32


def grant_admin(cli: Cli, *extra: str, usecase: str = "vaccine", admin: str = ADMIN_KEY, policy: str = "allowlist"):
    return cli("grant-admin", "--usecase", usecase, "--admin-key", admin, "--policy", policy, *extra)


def test_grant_admin_prints_a_grant_signed_by_the_authority(cli, tmp_path, capsys):
    from edgeprov.admin_grant import AdminGrant
    from edgeprov.signed_doc import BadSignature

    code, out, err = grant_admin(cli, admin=ADMIN_KEY.upper(), policy="pending")
    assert code == 0, err
    doc = json.loads(out)
    grant = AdminGrant.verify(doc, signing_public(cli))
    assert (grant.usecase, grant.admin, grant.policy) == ("vaccine", ADMIN_KEY, "pending")  # hex lower-cased
    assert doc["format"] == "edgeprov-admin-grant" and grant.issued_at_ms > 0
    for field, value in (("usecase", "health"), ("admin", "cd" * 32), ("policy", "allowlist"), ("issued_at_ms", 1)):
        with pytest.raises(BadSignature):
            AdminGrant.verify({**doc, field: value}, signing_public(cli))
    other = Cli(tmp_path / "other", capsys)
    assert other("setup")[0] == 0
    with pytest.raises(BadSignature):
        AdminGrant.verify(doc, signing_public(other))
    # The format tag is signed: a grant is never taken for a registration, nor the other way round.
    with pytest.raises(ValueError):
        Registration.verify(doc, signing_public(cli))
    with pytest.raises(ValueError, match="unknown admin grant format"):
        AdminGrant.verify({**doc, "format": "edgeprov-registration"}, signing_public(cli))


def test_grant_admin_writes_out_and_never_overwrites(cli, tmp_path):
    from edgeprov.admin_grant import AdminGrant

    path = tmp_path / "vaccine.grant.json"
    code, out, err = grant_admin(cli, "--out", str(path))
    assert code == 0, err
    assert str(path) in out and ADMIN_KEY in out
    first = path.read_text()
    assert AdminGrant.verify(json.loads(first), signing_public(cli)).admin == ADMIN_KEY
    code, out, err = grant_admin(cli, "--out", str(path), admin="cd" * 32)
    assert (code, out) == (2, "") and "already exists" in err
    assert path.read_text() == first


@pytest.mark.parametrize(
    ("usecase", "admin", "needle"),
    [
        ("vaccine", "ab" * 31, "admin must be a 32-byte"),
        ("vaccine", "zz" * 32, "admin must be a 32-byte"),
        ("Vaccine!", ADMIN_KEY, "usecase must be"),
        ("", ADMIN_KEY, "usecase must be"),
    ],
)
def test_grant_admin_refuses_bad_input(cli, usecase, admin, needle):
    code, out, err = grant_admin(cli, usecase=usecase, admin=admin)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and needle in err


def test_grant_admin_refuses_an_unknown_policy(cli):
    with pytest.raises(SystemExit) as exc:
        grant_admin(cli, policy="anyone")
    assert exc.value.code == 2


def test_grant_admin_needs_a_private_master_key(cli):
    os.chmod(cli.root / "master.key", 0o640)
    code, out, err = grant_admin(cli)
    assert (code, out) == (2, "") and "accessible by others" in err
    os.chmod(cli.root / "master.key", 0o600)
