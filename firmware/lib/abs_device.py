# The device side of ABS-IOT-V1 for MicroPython: Precompute, Complete and the single-use record.
# Spec §3.4 (shares), §4 rules D1-D5, §5 (bundle, record, share encodings). Mirrors
# edgeprov/crypto/device.py and abs_iot.py byte for byte (tests/firmware/test_device_crypto.py).
import os

import bls12_g1 as g1
from hashes import DST_NONCE, DST_RECORD_MAC, DST_STMT, R, equal_ct, h_r, hmac_sha256, xmd

MAGIC = b"EPDB"
VERSION = 1
HEADER = 4 + 8 + 8  # u32 epoch || u64 pool_index || u64 ctr
MAC_SIZE = 32
ENTRY = 32 + 96 + 96  # s || R_dev affine || B_dev affine
STATEMENT_VERSION = 1


class RecordLost(Exception):
    """D4: the record is missing, corrupt or of another epoch; the device must be re-keyed."""


class Bundle:
    """The "EPDB" device bundle of edgeprov/crypto/bundle.py; the comb tables stay one bytes object."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        if data[:4] != MAGIC or len(data) < 6 or data[4] != VERSION:
            raise ValueError("device bundle: bad magic or unsupported version")
        n = data[5]
        pos = 6 + n
        self.device_id = data[6:pos]
        self.epoch = int.from_bytes(data[pos : pos + 4], "big")
        self.aa_fp = data[pos + 4 : pos + 36]
        self.G_iot = g1.read_affine(data, pos + 36)
        self.nonce_seed = data[pos + 132 : pos + 164]
        pos += 164 + 192  # h1 and u1 affine: the device only uses their comb tables
        count = data[pos] if pos < len(data) else 0
        self.pds = [data[pos + 1 + 32 * i : pos + 33 + 32 * i] for i in range(count)]
        pos += 1 + 32 * count
        self.w = data[pos] if pos < len(data) else 0
        if not 2 <= self.w <= 8 or not self.pds or not 1 <= n <= 64:
            raise ValueError("device bundle: comb width out of range, no policy digest or bad id")
        size = (1 << (self.w - 1)) * g1.ENTRY_SIZE
        self.tables = memoryview(data)[pos + 1 :]
        if len(self.tables) != 3 * size:
            raise ValueError("device bundle: wrong length")
        self.base_g1, self.base_h1, self.base_u1 = 0, size, 2 * size
        for off in (6 + n + 36, 6 + n + 164, 6 + n + 260):  # G_iot, h1, u1
            if not g1.on_curve(*g1.read_affine(data, off)):
                raise ValueError("device bundle: a base point is not on the curve")
        for off in range(0, len(self.tables), g1.ENTRY_SIZE):
            if not g1.on_curve(*g1.read_affine(self.tables, off)):
                raise ValueError("device bundle: comb table point %d is not on the curve" % (off // 96))

    def mul(self, base, k):
        return g1.comb_mul(self.tables, base, self.w, k)


def statement(aa_fp, pd, device_id, epoch, ctr, ts_ms, msg):
    """stmt = u8(1) || aa_fp || pd || u8 len id || id || u32 epoch || u64 ctr || u64 ts_ms || u32 len msg || msg."""
    return b"".join(
        (
            bytes((STATEMENT_VERSION,)),
            aa_fp,
            pd,
            bytes((len(device_id),)),
            device_id,
            epoch.to_bytes(4, "big"),
            ctr.to_bytes(8, "big"),
            ts_ms.to_bytes(8, "big"),
            len(msg).to_bytes(4, "big"),
            msg,
        )
    )


def device_nonce(nonce_seed, pool_index, trng):
    """D3: s = H_r(nonce_seed || u64(pool_index) || 32 TRNG bytes, DST_NONCE)."""
    return h_r(nonce_seed + pool_index.to_bytes(8, "big") + trng, DST_NONCE)


def precompute(bundle, pool_index, rng):
    """Precompute (spec §3.4): the 224-byte entry s || R_dev = [s]g1 || B_dev = G_iot + [s]h1."""
    s = 0
    while s == 0:
        s = device_nonce(bundle.nonce_seed, pool_index, rng(32))
    RX, RY, RZ = bundle.mul(bundle.base_g1, s)
    BX, BY, BZ = bundle.mul(bundle.base_h1, s)
    BX, BY, BZ = g1.add_affine(BX, BY, BZ, bundle.G_iot[0], bundle.G_iot[1])
    if BZ == 0:
        raise ValueError("precompute: B_dev is the identity")
    # Both points to affine with one inversion (Montgomery's trick): 1/RZ = BZ/(RZ*BZ).
    t = g1.inverse(RZ * BZ)
    R_aff = _scale(RX, RY, t * BZ % g1.P)
    B_aff = _scale(BX, BY, t * RZ % g1.P)
    return s.to_bytes(32, "big") + g1.affine_bytes(*R_aff) + g1.affine_bytes(*B_aff)


def _scale(X, Y, zi):
    zi2 = zi * zi % g1.P
    return X * zi2 % g1.P, Y * zi2 % g1.P * zi % g1.P


def complete(bundle, entry, c, jacobian=False):
    """Complete (spec §3.4): W_dev = B_dev + [s*c mod r]u1; share W_dev || R_dev (96 or 144 + 48 bytes)."""
    e = int.from_bytes(entry[:32], "big") * c % R
    bx, by = g1.read_affine(entry, 128)
    if e:
        X, Y, Z = bundle.mul(bundle.base_u1, e)
        X, Y, Z = g1.add_affine(X, Y, Z, bx, by)
    else:
        X, Y, Z = bx, by, 1
    rx, ry = g1.read_affine(entry, 32)
    if Z == 0:
        raise ValueError("complete: W_dev is the identity")
    W = g1.jacobian_bytes(X, Y, Z) if jacobian else g1.compress_jacobian(X, Y, Z)
    return W + g1.compress(rx, ry)


def write_atomically(path, data):
    """Replace `path` with `data`: write a temporary file, flush, close, then rename over the old one.

    Unix port: flush() calls fsync(2) on the file and rename(2) is atomic, so a crash leaves the old
    or the new record (the directory entry itself is durable once the kernel commits it).
    ESP32 / Pico W with littlefs (the default VFS): close() commits the file copy-on-write and
    rename replaces the target in one metadata commit, power-loss safe. FAT is not supported:
    its rename refuses to replace an existing file, and we never delete the record first.
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
    os.rename(tmp, path)


class Record:
    """u32 epoch || u64 pool_index || u64 ctr || entries || HMAC-SHA256 (spec §5, rule D1)."""

    def __init__(self, epoch, pool_index=0, ctr=0, entries=b""):
        self.epoch = epoch
        self.pool_index = pool_index
        self.ctr = ctr
        self.entries = entries

    def encode(self, mac_key):
        body = b"".join(
            (self.epoch.to_bytes(4, "big"), self.pool_index.to_bytes(8, "big"), self.ctr.to_bytes(8, "big"), self.entries)
        )
        return body + hmac_sha256(mac_key, body)

    @classmethod
    def decode(cls, data, mac_key, epoch):
        if len(data) < HEADER + MAC_SIZE or (len(data) - HEADER - MAC_SIZE) % ENTRY:
            raise RecordLost("device record has a wrong length")
        body = memoryview(data)[:-MAC_SIZE]
        if not equal_ct(data[-MAC_SIZE:], hmac_sha256(mac_key, body)):
            raise RecordLost("device record MAC does not verify")
        record_epoch = int.from_bytes(data[:4], "big")
        if record_epoch != epoch:
            raise RecordLost("device record is for epoch %d, key is epoch %d" % (record_epoch, epoch))
        entries = bytes(body[HEADER:])
        for off in range(0, len(entries), ENTRY):
            if not 0 < int.from_bytes(entries[off : off + 32], "big") < R:
                raise RecordLost("device record holds a malformed entry")
        return cls(epoch, int.from_bytes(data[4:12], "big"), int.from_bytes(data[12:20], "big"), entries)


def record_mac_key(nonce_seed):
    return xmd(nonce_seed, DST_RECORD_MAC, 32)


def provision(bundle_path, record_path):
    """Write the fresh record that comes with a new key (spec §3.2). Only the re-key path may call
    this: it refuses to overwrite a record, and a lost record must stay lost (D4)."""
    try:
        os.stat(record_path)
    except OSError:
        bundle = Bundle(bundle_path)
        write_atomically(record_path, Record(bundle.epoch).encode(record_mac_key(bundle.nonce_seed)))
        return
    raise OSError("device record %s exists; refusing to overwrite it" % record_path)


class Signer:
    """K_iot with its persistent record; the only way to spend a pool entry (spec §4)."""

    def __init__(self, bundle_path, record_path, rng=None):
        self.bundle = Bundle(bundle_path)
        self.device_id = self.bundle.device_id.decode()
        self.epoch = self.bundle.epoch
        self.pds = self.bundle.pds
        self.path = record_path
        self.rng = rng or os.urandom
        self.mac_key = record_mac_key(self.bundle.nonce_seed)
        try:
            with open(record_path, "rb") as f:
                data = f.read()
        except OSError:
            raise RecordLost("device record %s is missing" % record_path)
        self.record = Record.decode(data, self.mac_key, self.epoch)

    def pool_len(self):
        return len(self.record.entries) // ENTRY

    def ctr(self):
        return self.record.ctr

    def _persist(self):
        write_atomically(self.path, self.record.encode(self.mac_key))

    def precompute(self, n=1):
        """Add n entries while idle (D3); pool_index advances in the same single record write."""
        record = self.record
        fresh = [record.entries]
        for _ in range(n):
            fresh.append(precompute(self.bundle, record.pool_index, self.rng))
            record.pool_index += 1
        record.entries = b"".join(fresh)
        self._persist()

    def sign(self, ts_ms, msg, jacobian=False):
        """Share for the next counter, under pds[0]: entry removed and ctr advanced on disk first (D2)."""
        if isinstance(msg, str):
            msg = msg.encode()
        record = self.record
        if not record.entries:
            self.precompute(1)
        entry = record.entries[:ENTRY]
        record.entries = record.entries[ENTRY:]
        record.ctr += 1
        self._persist()
        b = self.bundle
        c = h_r(statement(b.aa_fp, self.pds[0], b.device_id, self.epoch, record.ctr, ts_ms, msg), DST_STMT)
        return record.ctr, complete(b, entry, c, jacobian)
