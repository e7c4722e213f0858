# Offline buffer: a bounded ring of signed reading frames in flash (firmware/README.md, "Offline
# buffer"). Every frame enters the ring right after signing and leaves it only when its PUBACK
# arrives, so a broker outage, a lost connection or a reboot loses nothing that was buffered.
#
# ring.dat : `slots` fixed slots of `slot_size` bytes: u32 seq ‖ u16 len ‖ frame ‖ padding
# ring.meta: u32 head ‖ u32 tail ‖ u32 dropped, replaced atomically (write temp, rename)
# Frames hold sequence numbers tail..head-1; slot = seq % slots. A slot whose stored seq does not
# match was never committed by a meta write (crash between the two writes) and is ignored.
# When full the oldest frame is dropped and counted: the ledger sees its counter as a gap.
import os
import struct

from log import log

_SLOT_HEAD = 6


class RingError(Exception):
    pass


class Ring:
    def __init__(self, path, slots, slot_size):
        self.path, self.slots, self.slot_size = path, slots, slot_size
        self.meta_path = path + ".meta"
        self.head = self.tail = self.dropped = 0
        self.acked = []
        self.f = self._open()

    def _open(self):
        size = self.slots * self.slot_size
        try:
            if os.stat(self.path)[6] == size:
                self._load_meta()
                return open(self.path, "r+b")
            log("W", "buffer: ring geometry changed, starting empty")
        except OSError:
            pass
        with open(self.path, "wb") as f:
            zero = bytes(self.slot_size)
            for _ in range(self.slots):
                f.write(zero)
        self._save_meta()
        return open(self.path, "r+b")

    def _load_meta(self):
        try:
            with open(self.meta_path, "rb") as f:
                self.head, self.tail, self.dropped = struct.unpack(">III", f.read(12))
        except (OSError, ValueError):
            log("W", "buffer: no readable ring.meta, starting empty")
            self.head = self.tail = self.dropped = 0
        if not 0 <= self.head - self.tail <= self.slots:
            log("W", "buffer: inconsistent ring.meta, starting empty")
            self.head = self.tail = 0

    def _save_meta(self):
        tmp = self.meta_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(struct.pack(">III", self.head, self.tail, self.dropped))
        os.rename(tmp, self.meta_path)

    def __len__(self):
        return self.head - self.tail

    def push(self, frame):
        if len(frame) + _SLOT_HEAD > self.slot_size:
            raise RingError("frame of %d bytes exceeds the buffer slot size" % len(frame))
        if len(self) == self.slots:
            self.tail += 1
            self.dropped += 1
            log("W", "buffer: full, dropped the oldest frame; dropped so far", self.dropped)
        seq = self.head
        self.f.seek((seq % self.slots) * self.slot_size)
        self.f.write(struct.pack(">IH", seq, len(frame)))
        self.f.write(frame)
        self.f.flush()
        self.head = seq + 1
        self._save_meta()
        return seq

    def get(self, seq):
        if not self.tail <= seq < self.head:
            raise RingError("frame %d is not in the ring" % seq)
        self.f.seek((seq % self.slots) * self.slot_size)
        stored, n = struct.unpack(">IH", self.f.read(_SLOT_HEAD))
        if stored != seq or n > self.slot_size - _SLOT_HEAD:
            raise RingError("slot for frame %d is corrupt" % seq)
        return self.f.read(n)

    def skip(self, seq):
        # A slot that cannot be read is retired like a dropped frame (counted, a counter gap).
        self.dropped += 1
        self.ack(seq)

    def ack(self, seq):
        # PUBACK for frame `seq`: retire every frame from the tail up to the first unacked one.
        if seq < self.tail or seq in self.acked:
            return
        self.acked.append(seq)
        moved = False
        while self.tail in self.acked:
            self.acked.remove(self.tail)
            self.tail += 1
            moved = True
        if moved:
            self.acked = [s for s in self.acked if s > self.tail]
            self._save_meta()

    def close(self):
        self.f.close()
