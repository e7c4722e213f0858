# Device side of the MQTT wire format: the MicroPython mirror of edgeprov/wire.py (DESIGN.md §5).
# Encoders for the reading payload and frame, a decoder for the ack frame. Byte-identity with the
# CPython module is checked by tests/firmware/test_wire_mirror.py.
import struct

VERSION = 1
ROOT = "edgeprov/v1"
FLAG_JACOBIAN = 1
ACK_RELAYED = 0
ACK_COMMITTED = 1
ACK_REJECTED = 2
ONLINE = b"online"
_ACK_HEAD = 15  # u8 version, u32 epoch, u64 ctr, u8 status, u8 len(reason)
OFFLINE = b"offline"


class WireError(ValueError):
    pass


def topic(gateway, device, kind):
    return "%s/%s/%s/%s" % (ROOT, gateway, device, kind)


def _name_ok(name):
    if not 1 <= len(name) <= 32:
        return False
    for c in name:
        if not (97 <= c <= 122 or 48 <= c <= 57 or c == 95):
            return False
    return True


def payload(values, inputs=()):
    # values: sequence of (name, milli) pairs, any order; the canonical form sorts them bytewise.
    items = sorted((n.encode() if isinstance(n, str) else n, v) for n, v in values)
    if not 1 <= len(items) <= 32:
        raise WireError("1..32 values")
    out = bytearray((VERSION, len(items)))
    prev = b""
    for name, value in items:
        if not _name_ok(name) or name <= prev:
            raise WireError("bad or repeated value name")
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise WireError("value is not an i32")
        prev = name
        out.append(len(name))
        out.extend(name)
        out.extend(struct.pack(">i", value))
    if len(inputs) > 32:
        raise WireError("at most 32 inputs")
    out.append(len(inputs))
    for ref in inputs:
        if not 1 <= len(ref) <= 64:
            raise WireError("input reference is not 1..64 bytes")
        out.append(len(ref))
        out.extend(ref)
    return bytes(out)


def reading(device_id, epoch, ctr, ts_ms, msg, share, jacobian=False):
    dev = device_id.encode()
    if len(share) != (192 if jacobian else 96):
        raise WireError("share must be 96 or 192 bytes")
    if len(msg) > 4096:
        raise WireError("payload exceeds 4096 bytes")
    head = struct.pack(">BBB", VERSION, FLAG_JACOBIAN if jacobian else 0, len(dev))
    # ">IQQH" as two halves: MicroPython's struct handles Q, but packing u64 as two u32 keeps
    # small ints (no long-int allocation) on ports built without long-long support.
    fields = struct.pack(
        ">IIIIIH", epoch, ctr >> 32, ctr & 0xFFFFFFFF, ts_ms >> 32, ts_ms & 0xFFFFFFFF, len(msg)
    )
    return head + dev + fields + msg + share


def ack(data):
    # -> (epoch, ctr, status, reason); WireError when the frame is not canonical.
    if len(data) < _ACK_HEAD:
        raise WireError("ack frame is truncated")
    ver, epoch, hi, lo, status, n = struct.unpack(">BIIIBB", data[:_ACK_HEAD])
    if ver != VERSION:
        raise WireError("ack frame has an unknown version")
    if status > ACK_REJECTED:
        raise WireError("ack frame has an unknown status")
    if len(data) != _ACK_HEAD + n:
        raise WireError("ack frame length does not match its reason")
    try:
        reason = bytes(data[_ACK_HEAD:]).decode()
    except UnicodeError:
        reason = "(reason is not UTF-8)"
    return epoch, (hi << 32) | lo, status, reason
