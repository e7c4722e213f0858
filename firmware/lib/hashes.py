# Hashes of ABS-IOT-V1 for MicroPython (spec §2 "Hashes"): expand_message_xmd, H_r, HMAC-SHA256.
# Mirrors edgeprov/crypto/hashing.py byte for byte; only hashlib.sha256 is assumed (no hmac module).
from hashlib import sha256

R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

DST_STMT = b"ABS-IOT-V1-STMT_XMD:SHA-256_ZR_"
DST_NONCE = b"ABS-IOT-V1-NONCE_XMD:SHA-256_ZR_"
DST_RECORD_MAC = b"ABS-IOT-V1-RECORD-MAC"

_Z_PAD = bytes(64)  # Z_pad: one SHA-256 block of zeros (RFC 9380 §5.3.1 step 4)


def xmd(msg, dst, n):
    """expand_message_xmd(msg, DST, n) with SHA-256, RFC 9380 §5.3.1 (spec §2)."""
    ell = (n + 31) // 32
    if ell > 255 or n > 0xFFFF or n < 1 or len(dst) > 255:
        raise ValueError("xmd: length or DST out of range")
    dst_prime = dst + bytes((len(dst),))
    h = sha256(_Z_PAD)
    h.update(msg)
    h.update(bytes((n >> 8, n & 0xFF, 0)))
    h.update(dst_prime)
    b0 = h.digest()
    h = sha256(b0)
    h.update(b"\x01")
    h.update(dst_prime)
    bi = h.digest()
    if n <= 32:
        return bi[:n]
    out = bytearray(n)
    out[:32] = bi
    mixed = bytearray(32)
    for i in range(2, ell + 1):
        for j in range(32):
            mixed[j] = b0[j] ^ bi[j]
        h = sha256(mixed)
        h.update(bytes((i,)))
        h.update(dst_prime)
        bi = h.digest()
        pos = 32 * (i - 1)
        out[pos : pos + 32] = bi[: n - pos]
    return bytes(out)


def h_r(msg, dst):
    """H_r(msg, DST) = OS2IP(XMD(msg, DST, 48)) mod r (RFC 9380 hash_to_field, L = 48)."""
    return int.from_bytes(xmd(msg, dst, 48), "big") % R


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) for keys of at most one block, which is all the record MAC needs."""
    if len(key) > 64:
        raise ValueError("hmac key longer than a SHA-256 block")
    ipad = bytearray(64)
    opad = bytearray(64)
    for i in range(len(key)):
        ipad[i] = key[i]
        opad[i] = key[i]
    for i in range(64):
        ipad[i] ^= 0x36
        opad[i] ^= 0x5C
    inner = sha256(ipad)
    inner.update(msg)
    outer = sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def equal_ct(a, b):
    """Compare two MACs without an early exit (timing does not reveal the matching prefix)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
