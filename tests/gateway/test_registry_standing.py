"""The gateway's registry decisions (gateway/registry.py, rule G1, spec abs-scheme.md §3.5), without a ledger.

Shows: a ledger entry "revoked" (at any epoch) refuses the device as "revoked"; a ledger epoch above
the bundle's refuses it as "stale-epoch"; no entry (the ledger does not know the device) and a bundle
newer than the ledger's epoch keep it relayed; a device never answered for is relayed; a malformed
answer counts as no answer. A follower
whose ledger is unreachable (the real client against a closed port) keeps the standings it learnt
and counts the failures; sessions refuse a revoked device's frame before its counter is claimed, so
once the ledger stops refusing it the same frame is admitted. The poll period is a config key
(default 10 s, > 0) and the install template writes it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprov.procs import free_port
from gateway.cli import default_config
from gateway.config import ConfigError, LedgerConfig, load_config
from gateway.devices import load_devices
from gateway.ledger_link import ApiLink
from gateway.metrics import Metrics
from gateway.refusal import Refused
from gateway.registry import RegistryFollower, Standing, checked, standing
from gateway.session import Sessions
from tests.gateway.fleet import GATEWAY, Fleet, reading_frame, reading_topic

pytestmark = pytest.mark.unit

TS = 1_790_000_000_000


def entry(epoch: int, status: str = "active") -> dict:
    return {"device": "dev-1", "epoch": epoch, "status": status, "gateway": GATEWAY}


@pytest.mark.parametrize(
    ("ledger", "bundle_epoch", "expected"),
    [
        (entry(2), 2, Standing.ACTIVE),
        (entry(2, "revoked"), 2, Standing.REVOKED),
        (entry(3, "revoked"), 2, Standing.REVOKED),  # revoked after a re-key this gateway missed
        (entry(1, "revoked"), 2, Standing.REVOKED),  # a revoked device stays revoked: epoch 2 can never register
        (entry(3), 2, Standing.STALE_EPOCH),
        (entry(1), 2, Standing.EPOCH_PENDING),
        (None, 2, Standing.UNREGISTERED),
    ],
)
def test_a_ledger_entry_decides_the_standing(ledger: dict | None, bundle_epoch: int, expected: Standing) -> None:
    assert standing(bundle_epoch, ledger) is expected


@pytest.mark.parametrize("answer", [[], {"epoch": "1", "status": "active"}, {"epoch": 1}, "revoked"])
def test_a_malformed_entry_is_no_answer(answer: object) -> None:
    with pytest.raises(ValueError, match="malformed registry entry for dev-1"):
        checked("dev-1", answer)
    assert checked("dev-1", None) is None and checked("dev-1", entry(1)) == entry(1)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["epoch", "status", "x"]), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(JSON, st.integers(1, 5))
def test_any_answer_is_an_entry_or_a_clear_error(answer: object, bundle_epoch: int) -> None:
    try:
        found = checked("dev-1", answer)
    except ValueError:
        return
    assert isinstance(standing(bundle_epoch, found), Standing)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return Fleet(tmp_path_factory.mktemp("fleet"), ["dev-1", "dev-2", "dev-3"]).issue()


def closed_follower(devices: dict, metrics: Metrics) -> RegistryFollower:
    link = ApiLink((f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"), None, 2.0)
    return RegistryFollower(link, devices, metrics, nodes=2)


def refusal(follower: RegistryFollower, device) -> str | None:
    try:
        follower.check(device)
    except Refused as refused:
        assert refused.quiet  # logged once by the follower, not once per frame
        return refused.reason
    return None


def test_an_unreachable_ledger_keeps_the_last_known_standings(fleet: Fleet) -> None:
    devices = load_devices(fleet.aa / "issued", GATEWAY)
    metrics = Metrics()

    async def scenario() -> tuple[dict, dict, bool | None]:
        follower = closed_follower(devices, metrics)
        try:
            before = {name: refusal(follower, d) for name, d in devices.items()}  # nothing learnt yet: all relayed
            follower._learn("dev-1", entry(1, "revoked"))  # what a round that reached the ledger records
            follower._learn("dev-2", entry(2))
            follower._learn("dev-3", None)
            await follower.poll()  # every node refuses the connection
            after = {name: refusal(follower, d) for name, d in devices.items()}
            return before, after, follower.reachable
        finally:
            await follower.link.close()

    before, after, reachable = asyncio.run(scenario())
    assert before == {"dev-1": None, "dev-2": None, "dev-3": None}
    assert after == {"dev-1": "revoked", "dev-2": "stale-epoch", "dev-3": None}  # unregistered: relayed
    assert reachable is False
    assert metrics.registry_failures._value.get() == 3  # one per device whose entry no node gave
    gauge = {s.labels["standing"]: s.value for s in metrics.registry_devices.collect()[0].samples}
    assert (gauge["revoked"], gauge["stale-epoch"], gauge["unregistered"], gauge["active"]) == (1, 1, 1, 0)


def test_sessions_refuse_a_revoked_device_before_claiming_its_counter(fleet: Fleet) -> None:
    devices = load_devices(fleet.aa / "issued", GATEWAY)
    follower = closed_follower(devices, Metrics())

    async def no_lookup(device: str, epoch: int, ctr: int) -> None:
        return None

    sessions = Sessions(GATEWAY, devices, 2048, 1000, no_lookup, follower.check)
    frame = reading_frame(fleet.signer("dev-1"), TS, 4000)
    follower._learn("dev-1", entry(1, "revoked"))
    with pytest.raises(Refused) as refused:
        asyncio.run(sessions.admit(reading_topic("dev-1"), frame))
    assert refused.value.reason == "revoked"
    follower._learn("dev-1", None)  # the ledger no longer knows it (reset): relayed again, the ledger decides
    admitted = asyncio.run(sessions.admit(reading_topic("dev-1"), frame))
    assert admitted.reading.ctr == 1  # the refused attempt claimed nothing
    asyncio.run(follower.link.close())


def test_the_poll_period_is_configured(fleet: Fleet, tmp_path: Path) -> None:
    assert LedgerConfig().registry_poll_s == 10.0
    path = fleet.gateway_config(["http://127.0.0.1:7700"])
    assert load_config(path).ledger.registry_poll_s == 10.0
    path.write_text(path.read_text().replace("[ledger]\n", "[ledger]\nregistry_poll_s = 0.5\n"))
    assert load_config(path).ledger.registry_poll_s == 0.5
    path.write_text(path.read_text().replace("registry_poll_s = 0.5", "registry_poll_s = 0"))
    with pytest.raises(ConfigError, match="registry_poll_s"):
        load_config(path)
    installed = default_config("gw-1", "127.0.0.1:8883", [], Path("/etc/edgeprov"), Path("/var/lib/x"))
    assert installed["ledger"]["registry_poll_s"] == 10.0
