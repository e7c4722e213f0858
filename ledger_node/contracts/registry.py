"""Device Registration contract (first seed paper; spec §3.6 step 0 and L5; DESIGN.md §2 step 1).

Every function takes one AA-signed document, `{"doc": <edgeprov.registration signed JSON>}`, checked
with the authority's Ed25519 key from the node configuration; no creator key is needed (the
authority's signature is the authorisation). Schemas:

- `register`: doc.action "register". Epoch 1 for a new device, current epoch + 1 for a re-key (L5:
  older epochs are refused from then on). A revoked device stays revoked. The policy must parse
  for the system's d, the doc's aa_fp must be this system's, and for a threshold policy the doc's
  pd must be its digest. Writes `dev|<id>` = {device, epoch, policy, pd, gateway,
  attributes_digest, status: "active", proposal} and the same under `dep|<id>|<epoch>` (proposal: the
  registering proposal's id, so a proof bundle can find the AA-signed registration transaction).
- `revoke`: doc.action "revoke" for the device's current epoch: status "revoked".
- `gateway`: doc.action "gateway": `gw|<gateway>` = {gateway, epoch, public_key, proposal}; the epoch counts
  the gateway's keys and must increase.

Response: {"device"|"gateway": id, "epoch": n}.
"""

from __future__ import annotations

from functools import lru_cache

from edgeprov.crypto.policy import Policy, PolicyError, RegistryPolicy, parse_policy
from edgeprov.registration import Registration
from ledger_node.contracts import ContractError, arg, check_dp
from ledger_node.state import TxContext, key

NAME = "registry"


def device_key(device: str) -> str:
    return key("dev", device)


def epoch_key(device: str, epoch: int) -> str:
    return key("dep", device, f"{epoch:010d}")


def gateway_key(gateway: str) -> str:
    return key("gw", gateway)


@lru_cache(maxsize=4096)
def registry_policy(text: str, d: int) -> RegistryPolicy:
    """Parsing is deterministic; every reading of a device needs its policy, so it is memoised."""
    return parse_policy(text, d)


def _doc(ctx: TxContext, args: dict, action: str) -> Registration:
    doc = arg(args, "doc", dict)
    try:
        reg = Registration.verify(doc, ctx.env.aa_key)
    except ValueError as exc:
        raise ContractError("BAD_REGISTRATION", str(exc)) from None
    if reg.action != action:
        raise ContractError("BAD_REGISTRATION", f"expected a {action!r} document, got {reg.action!r}")
    if reg.aa_fp != ctx.env.mpk.aa_fp.hex():
        raise ContractError("BAD_REGISTRATION", "the document is for another authority (aa_fp)")
    if type(reg.epoch) is not int or not 1 <= reg.epoch < 2**32:
        raise ContractError("BAD_REGISTRATION", "epoch must be a u32 >= 1")
    return reg


def register(ctx: TxContext, args: dict) -> dict:
    reg = _doc(ctx, args, "register")
    device = check_dp(reg.device, "device")
    check_dp(reg.gateway, "gateway")
    try:
        policy = registry_policy(reg.policy, ctx.env.mpk.d)
    except PolicyError as exc:
        raise ContractError("BAD_POLICY", str(exc)) from None
    if isinstance(policy, Policy) and reg.pd != policy.pd.hex():
        raise ContractError("BAD_POLICY", "pd is not the digest of the registered policy")
    current = ctx.get(device_key(device))
    expected = 1 if current is None else current["epoch"] + 1
    if current is not None and current["status"] == "revoked":
        raise ContractError("REVOKED_DEVICE", f"device {device} is revoked")
    if reg.epoch != expected:
        raise ContractError("BAD_EPOCH", f"device {device} registers epoch {expected} next, not {reg.epoch}")
    entry = {
        "device": device,
        "epoch": reg.epoch,
        "policy": reg.policy,
        "pd": reg.pd,
        "gateway": reg.gateway,
        "attributes_digest": reg.attributes_digest,
        "status": "active",
        "proposal": ctx.proposal_id,  # where the AA-signed registration is, for proof bundles
    }
    ctx.put(device_key(device), entry)
    ctx.put(epoch_key(device, reg.epoch), entry)
    return {"device": device, "epoch": reg.epoch}


def revoke(ctx: TxContext, args: dict) -> dict:
    reg = _doc(ctx, args, "revoke")
    current = ctx.get(device_key(check_dp(reg.device, "device")))
    if current is None:
        raise ContractError("UNKNOWN_DEVICE", f"device {reg.device} is not registered")
    if current["status"] == "revoked":
        raise ContractError("REVOKED_DEVICE", f"device {reg.device} is already revoked")
    if reg.epoch != current["epoch"]:
        raise ContractError("BAD_EPOCH", f"revocation names epoch {reg.epoch}, current is {current['epoch']}")
    revoked = {**current, "status": "revoked"}
    ctx.put(device_key(reg.device), revoked)
    ctx.put(epoch_key(reg.device, reg.epoch), revoked)
    return {"device": reg.device, "epoch": reg.epoch}


def gateway(ctx: TxContext, args: dict) -> dict:
    reg = _doc(ctx, args, "gateway")
    name = check_dp(reg.gateway, "gateway")
    current = ctx.get(gateway_key(name))
    if current is not None and reg.epoch <= current["epoch"]:
        raise ContractError("BAD_EPOCH", f"gateway {name} key epoch must exceed {current['epoch']}")
    entry = {"gateway": name, "epoch": reg.epoch, "public_key": reg.public_key, "proposal": ctx.proposal_id}
    ctx.put(gateway_key(name), entry)
    return {"gateway": name, "epoch": reg.epoch}


FUNCTIONS = {"register": register, "revoke": revoke, "gateway": gateway}
