# The device's MQTT session (DESIGN.md §5): connect with backoff, last will `offline` and a
# retained `online` on .../status, (re-)subscribe to .../ack on every connect, and QoS 1 reading
# publishes whose PUBACKs are reported by packet id. Errors never escape: the link goes down and
# the next `up()` after the backoff delay tries again, so the app loop keeps signing and buffering.
import time

import wire
from log import log
from mqtt import MQTTClient

BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 60000


class Link:
    def __init__(self, cfg, on_ack, on_puback):
        b = cfg["broker"]
        dev, gw = cfg["device_id"], cfg["gateway_id"]
        self.reading_topic = wire.topic(gw, dev, "reading")
        self.ack_topic = wire.topic(gw, dev, "ack").encode()
        self.status_topic = wire.topic(gw, dev, "status")
        self.client = MQTTClient(dev, b["host"], b["port"], b["username"], b["password"], b["keepalive"],
                                 b["ca"] if b["tls"] else None)
        self.client.set_last_will(self.status_topic, wire.OFFLINE, True)
        self.client.on_message = self._message
        self.client.on_puback = on_puback
        self.on_ack = on_ack
        self.backoff = BACKOFF_MIN_MS
        self.next_try = time.ticks_ms()
        self.connects = 0

    def connected(self):
        return self.client.connected()

    def up(self):
        # True when connected; otherwise try once if the backoff delay has passed.
        if self.client.connected():
            return True
        if time.ticks_diff(time.ticks_ms(), self.next_try) < 0:
            return False
        try:
            self.client.connect()
            self.client.subscribe(self.ack_topic)
            self.client.publish(self.status_topic, wire.ONLINE, retain=True, qos=1)
        except (OSError, ValueError) as exc:  # ValueError: the CA file does not parse
            self.down("connect failed: %r" % (exc,))
            return False
        self.connects += 1
        self.backoff = BACKOFF_MIN_MS
        log("I", "mqtt: online as", self.status_topic)
        return True

    def down(self, why):
        self.client.close()
        self.next_try = time.ticks_add(time.ticks_ms(), self.backoff)
        log("W", "mqtt:", why, "- retry in", self.backoff, "ms")
        self.backoff = min(self.backoff * 2, BACKOFF_MAX_MS)

    def close(self):
        # Orderly stop: say `offline` ourselves (a clean DISCONNECT suppresses the last will).
        if self.client.connected():
            try:
                self.client.publish(self.status_topic, wire.OFFLINE, retain=True, qos=1)
                self.client.poll(200)
            except OSError:
                pass
            self.client.disconnect()

    def publish(self, frame):
        # -> packet id, or 0 when the link went down (the frame stays in the ring).
        try:
            return self.client.publish(self.reading_topic, frame, qos=1)
        except OSError as exc:
            self.down("publish failed: %r" % (exc,))
            return 0

    def poll(self, ms):
        if not self.client.connected():
            time.sleep_ms(ms)
            return
        try:
            self.client.poll(ms)
        except (OSError, ValueError, IndexError) as exc:  # the latter two: a malformed packet from the broker
            self.down("connection lost: %r" % (exc,))

    def _message(self, topic, msg):
        if topic == self.ack_topic:
            try:
                self.on_ack(wire.ack(msg))
            except wire.WireError as exc:
                log("W", "ack: malformed frame ignored:", exc)
