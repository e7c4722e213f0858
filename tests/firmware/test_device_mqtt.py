"""The firmware (compiled tree, `micropython -X heapsize=96k`) against a real Mosquitto: readings
verify in CPython, a broker restart loses and duplicates nothing, a SIGKILL never reuses a counter
or pool entry, acks are handled, and many sign-and-publish iterations stay within the heap."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from firmware_checks import Verifier, by_counter

from edgeprov.wire import STATUS_OFFLINE, STATUS_ONLINE, Ack, Reading

pytestmark = pytest.mark.integration

ATTRS = ("org=acme", "type=temp", "site=ward-7")


def console_counters(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"reading ctr (\d+)", text)]


def test_published_readings_decode_and_verify(mosquitto_broker, provision, device_process, subscriber) -> None:
    broker = mosquitto_broker()
    sub = subscriber(broker)
    dev = provision(broker, max_readings=6)
    run = device_process(dev)
    assert run.wait(120) == 0, run.output()
    frames = sub.wait_count("/reading", 6)
    verifier = Verifier(dev.aa, dev.device_id, ATTRS)
    readings = [verifier.verify(f) for f in frames]
    assert [r.ctr for r in readings] == [1, 2, 3, 4, 5, 6]
    assert all(r.device_id == dev.device_id and r.epoch == 1 for r in readings)
    temps = [r.payload.value("temp") for r in readings]
    assert all(isinstance(t, int) and -20_000 < t < 40_000 for t in temps)
    assert sub.payloads("/status") == [STATUS_ONLINE, STATUS_OFFLINE]  # orderly stop says offline itself
    assert "stats readings 6" in run.output()


def test_broker_restart_loses_and_duplicates_nothing(tmp_path, mosquitto_broker, provision, device_process, subscriber):
    store = tmp_path / "mosquitto-store"
    store.mkdir()
    # Persistence keeps the test subscriber's session (and its queued messages) across the restart.
    broker = mosquitto_broker(f"allow_anonymous true\npersistence true\npersistence_location {store}/")
    sub = subscriber(broker, client_id="restart-subscriber")
    total = 40
    dev = provision(broker, max_readings=total, interval_ms=150)
    run = device_process(dev)
    sub.wait_count("/reading", 5)
    broker.stop()
    run.wait_for(" W mqtt: ", timeout=30)
    done_before = len(console_counters(run.output()))
    run.wait_for("reading ctr", count=done_before + 8, timeout=60)  # signed and buffered while down
    broker.start()
    assert run.wait(180) == 0, run.output()
    frames = sub.wait_count("/reading", total, timeout=60)
    seen = by_counter(frames)
    assert sorted(seen) == list(range(1, total + 1)), "a counter is missing: a frame was lost"
    assert all(len(v) == 1 for v in seen.values()), "two different frames for one counter"
    verifier = Verifier(dev.aa, dev.device_id, ATTRS)
    for ctr in (1, total // 2, total):
        verifier.verify(next(iter(seen[ctr])))
    # QoS 1 is at-least-once: a frame whose PUBACK died with the broker is sent again, byte-identical
    # (the gateway drops such copies, rule G4). Anything beyond that would be a real duplicate.
    resent = len(frames) - total
    assert resent <= 8, f"{resent} redeliveries, more than the in-flight window"
    assert "connects 2" in run.output()
    assert "crashed" not in run.output(), "the app must ride out the outage without a restart"


def test_full_ring_drops_oldest_and_the_loss_is_a_counter_gap(
    tmp_path, mosquitto_broker, provision, device_process, subscriber
):
    broker = mosquitto_broker(f"allow_anonymous true\npersistence true\npersistence_location {tmp_path}/")
    sub = subscriber(broker, client_id="gap-subscriber")
    total = 24
    dev = provision(broker, max_readings=total, interval_ms=100, buffer_slots=4)
    run = device_process(dev)
    sub.wait_count("/reading", 2)
    broker.stop()
    run.wait_for("buffer: full, dropped the oldest frame", count=3, timeout=60)
    broker.start()
    assert run.wait(180) == 0, run.output()
    dropped = int(re.search(r"stats readings \d+ connects \d+ dropped (\d+)", run.output())[1])
    seen = by_counter(sub.payloads("/reading"))
    missing = sorted(set(range(1, total + 1)) - set(seen))
    # `dropped` counts frames that left the ring without a PUBACK; up to a window of them may have
    # reached the broker just before it went down, so it bounds the gap from above.
    assert dropped >= 3 and dropped - 8 <= len(missing) <= dropped, (dropped, missing)
    # Dropping takes the oldest: the gap is one run of counters, and everything after it arrived.
    assert missing == list(range(missing[0], missing[0] + len(missing)))
    assert max(seen) == total


def test_sigkill_and_restart_never_reuse_counter_or_pool_entry(mosquitto_broker, provision, device_process, subscriber):
    broker = mosquitto_broker()
    sub = subscriber(broker)
    dev = provision(broker, interval_ms=50, pool_target=4)
    runs = []
    for round_ in range(4):
        run = device_process(dev)
        run.wait_for("reading ctr", count=3 + round_, timeout=60)
        run.kill()
        runs.append(console_counters(run.output()))
        # The broker publishes the last will when the killed device's socket closes.
        sub.wait_count("/status", 2 * (round_ + 1))
        assert sub.payloads("/status")[-1] == STATUS_OFFLINE
    for earlier, later in itertools.pairwise(runs):
        assert max(earlier) < min(later), f"counter reused after SIGKILL: {earlier} then {later}"
    # A last run publishes what the killed runs had buffered: every logged reading arrives.
    final = device_process(dev)
    logged = {ctr for run in runs for ctr in run}
    deadline = time.monotonic() + 60
    while not logged <= set(by_counter(sub.payloads("/reading"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    final.kill()
    seen = by_counter(sub.payloads("/reading"))
    assert logged <= set(seen), f"buffered readings lost: {sorted(logged - set(seen))}"
    assert all(len(v) == 1 for v in seen.values()), "two different frames for one counter"
    r_devs = [Reading.decode(f).share[48:] for v in seen.values() for f in v]
    assert len(r_devs) == len(set(r_devs)), "a pool entry (R_dev) was used twice"


def test_acks_are_decoded_and_malformed_ones_ignored(mosquitto_broker, provision, device_process, subscriber):
    broker = mosquitto_broker()
    sub = subscriber(broker)
    dev = provision(broker, interval_ms=200)
    run = device_process(dev)
    sub.wait_count("/reading", 1)
    ack_topic = dev.topic("ack")
    sub.client.publish(ack_topic, b"\x07garbage", qos=1)
    sub.client.publish(ack_topic, Ack(1, 1, 1, "in block 7").encode(), qos=1)
    run.wait_for("ack ctr 1 epoch 1 committed in block 7", timeout=30)
    assert "ack: malformed frame ignored" in run.output()
    sub.wait_count("/reading", 3)  # still signing and publishing after the bad frame
    run.kill()


@pytest.mark.parametrize(
    "iterations",
    [
        pytest.param(200, id="200"),
        pytest.param(10_000, id="10000", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
    ],
)
def test_many_sign_and_publish_iterations_fit_the_heap(
    iterations, mosquitto_broker, provision, device_process, subscriber, record_property
):
    # The test subscriber may lag behind on a loaded host: let the broker queue without limit for it.
    broker = mosquitto_broker("allow_anonymous true\nmax_queued_messages 0")
    sub = subscriber(broker)
    # 10 ms between readings: far faster than a real sensor (10 s), slow enough for the link to keep up;
    # a large ring so that a stall of the loaded host does not drop frames (dropping is tested elsewhere).
    dev = provision(broker, max_readings=iterations, interval_ms=10, pool_target=2, buffer_slots=2048)
    run = device_process(dev)
    assert run.wait(60 + iterations * 0.5) == 0, run.output()[-3000:]
    out = run.output()
    assert "MemoryError" not in out and "crashed" not in out
    stats = re.search(r"stats readings (\d+) .* heap_peak (\d+) heap_live (\d+) heap_total (\d+)", out)
    assert stats and int(stats[1]) == iterations
    seen = by_counter(sub.wait_count("/reading", iterations, timeout=60))
    assert sorted(seen) == list(range(1, iterations + 1))
    figures = {"heap_peak": int(stats[2]), "heap_live_max": int(stats[3]), "heap_total": int(stats[4])}
    record_property("heap", figures)
    print(f"\n{iterations} iterations: {figures}")
