# The device's application loop (DESIGN.md §2 step 3): read the sensor, encode the payload, sign
# (spec §3.4 Complete), frame, put the frame in the flash ring and publish the ring in order;
# precompute pool entries while idle. See firmware/README.md for the counter and buffer rules.
import gc
import time

import wire
from board import now_ms
from buffer import Ring, RingError
from link import Link
from log import log

WINDOW = 8  # QoS 1 frames in flight at once (each ~160 bytes of heap until its PUBACK)
IDLE_POLL_MS = 50


class App:
    def __init__(self, cfg, board, signer):
        self.cfg, self.board, self.signer = cfg, board, signer
        self.sensor = board.sensor(cfg["sensor"], cfg["sim_seed"])
        self.ring = Ring("ring.dat", cfg["buffer_slots"], cfg["buffer_slot_size"])
        self.link = Link(cfg, self._ack, self._puback)
        self.inflight = {}  # packet id -> ring seq
        self.next_seq = self.ring.tail
        self.readings = 0
        self.heap_peak = 0  # highest gc.mem_alloc() seen (includes garbage not yet collected)
        self.heap_live = 0  # highest live set right after a collection
        log("I", "app: device", signer.device_id, "epoch", signer.epoch, "last ctr", signer.ctr(),
            "pool", signer.pool_len(), "buffered", len(self.ring), "dropped", self.ring.dropped)

    def run(self):
        cfg = self.cfg
        interval, limit = cfg["interval_ms"], cfg["max_readings"]
        next_at = time.ticks_ms()
        while not (limit and self.readings >= limit and not len(self.ring)):
            self.board.feed()
            if (not limit or self.readings < limit) and time.ticks_diff(time.ticks_ms(), next_at) >= 0:
                self.reading()
                next_at = time.ticks_add(next_at, interval)
                if time.ticks_diff(time.ticks_ms(), next_at) > interval:
                    next_at = time.ticks_add(time.ticks_ms(), interval)  # fell behind: do not burst
            up = self.link.up()
            self.board.led(up)
            if up and len(self.inflight) < WINDOW:
                self.pump()
            self.idle(time.ticks_diff(next_at, time.ticks_ms()))
        self.link.close()
        self.stats()

    def close(self):
        # After a crash: free the socket and the ring's file before the supervisor starts a new App.
        self.link.client.close()
        self.ring.close()

    def reading(self):
        msg = wire.payload(self.sensor.read())
        # sign() persists the record (entry removed, ctr advanced) before it returns the share.
        ts = now_ms()
        ctr, share = self.signer.sign(ts, msg, self.cfg["jacobian"])
        frame = wire.reading(self.signer.device_id, self.signer.epoch, ctr, ts, msg, share, self.cfg["jacobian"])
        self.ring.push(frame)
        self.readings += 1
        self._heap()
        gc.collect()  # once per reading: keeps the heap unfragmented; the live set is the figure to watch
        self.heap_live = max(self.heap_live, gc.mem_alloc())
        log("I", "reading ctr", ctr, "bytes", len(frame), "buffered", len(self.ring))

    def pump(self):
        # Publish ring frames in order, at most WINDOW unacknowledged.
        ring = self.ring
        self.next_seq = max(self.next_seq, ring.tail)
        while len(self.inflight) < WINDOW and self.next_seq < ring.head and self.link.connected():
            seq = self.next_seq
            try:
                frame = ring.get(seq)
            except (RingError, OSError, ValueError) as exc:
                log("E", "buffer:", exc, "- skipped")
                ring.skip(seq)
                self.next_seq = seq + 1
                continue
            pid = self.link.publish(frame)
            if not pid:
                return self._lost_link()
            self.inflight[pid] = seq
            self.next_seq = seq + 1
            self._heap()

    def idle(self, budget_ms):
        # Top up the pool one entry at a time between polls, so acks and pings are not starved.
        if budget_ms > 0 and self.signer.pool_len() < self.cfg["pool_target"]:
            gc.collect()  # the record write needs one block of 52 + 224 * pool bytes
            self.signer.precompute(1)
            self._heap()
            budget_ms = 0
        was_up = self.link.connected()
        self.link.poll(max(0, min(budget_ms, IDLE_POLL_MS)))
        if was_up and not self.link.connected():
            self._lost_link()

    def _lost_link(self):
        # Unacknowledged frames are still in the ring; resend them from the tail after reconnect.
        self.inflight = {}
        self.next_seq = self.ring.tail

    def _puback(self, pid):
        seq = self.inflight.pop(pid, None)
        if seq is not None:
            self.ring.ack(seq)

    def _ack(self, ack):
        epoch, ctr, status, reason = ack
        log("I", "ack ctr", ctr, "epoch", epoch, ("relayed", "committed", "rejected")[status], reason)

    def _heap(self):
        used = gc.mem_alloc()
        if used > self.heap_peak:
            self.heap_peak = used

    def stats(self):
        log("I", "stats readings", self.readings, "connects", self.link.connects, "dropped", self.ring.dropped,
            "heap_peak", self.heap_peak, "heap_live", self.heap_live, "heap_total", gc.mem_alloc() + gc.mem_free())
