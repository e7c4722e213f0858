# A small MQTT 3.1.1 client for MicroPython (after micropython-lib umqtt.simple, written anew):
# QoS 0/1 publish with retransmission (DUP flag) until PUBACK, SUBSCRIBE with QoS 1, keepalive
# PINGREQ, last will, username/password, TLS via ssl.SSLContext with a CA file.
# Nothing blocks without bound: every socket operation has a timeout (OSError on expiry), and
# `poll(ms)` waits at most ms for input. Any protocol or socket error raises OSError; the caller
# (link.py) drops the connection and reconnects with backoff; a CA file mbedtls cannot parse raises
# ValueError.
import select
import socket
import struct
import time

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0
DUP = 0x08


class MQTTError(OSError):
    pass


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def _der(cert):
    # The ports' mbedtls builds take DER only: decode the first certificate of a PEM file.
    begin = cert.find(b"-----BEGIN CERTIFICATE-----")
    if begin < 0:
        return cert
    end = cert.find(b"-----END CERTIFICATE-----", begin)
    if end < 0:
        raise ValueError("CA file: unterminated PEM certificate")
    import binascii

    return binascii.a2b_base64(cert[begin + 27 : end])


class MQTTClient:
    def __init__(self, client_id, host, port, username=None, password=None, keepalive=60, ca=None,
                 timeout_ms=5000, retry_ms=5000):
        self.client_id, self.host, self.port = client_id, host, port
        self.username, self.password, self.ca = username, password, ca
        self.keepalive, self.timeout_ms, self.retry_ms = keepalive, timeout_ms, retry_ms
        self.sock = None
        self.poller = None
        self.will = None
        self.pid = 0
        self.pending = {}  # pid -> [topic, msg, retain, ticks_sent]; QoS 1 awaiting PUBACK
        self.on_message = None  # (topic bytes, msg bytes)
        self.on_puback = None  # (pid)
        self.ping_sent = None
        self.last_tx = 0

    def set_last_will(self, topic, msg, retain=True):
        self.will = (topic, msg, retain)

    # -- connection ------------------------------------------------------------------------
    def connect(self):
        addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        sock = socket.socket()
        sock.settimeout(self.timeout_ms / 1000)
        try:
            sock.connect(addr)
            if self.ca:
                sock = self._tls(sock)
        except Exception:
            sock.close()
            raise
        self.sock = sock
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        self.pending = {}
        self.ping_sent = None
        self._send(CONNECT, self._connect_body())
        kind, body = self._packet()
        if kind != CONNACK or len(body) != 2:
            raise MQTTError("expected CONNACK")
        if body[1]:
            raise MQTTError("broker refused connection, return code %d" % body[1])

    def _tls(self, sock):
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        with open(self.ca, "rb") as f:
            ca = f.read()
        ctx.load_verify_locations(cadata=_der(ca))
        return ctx.wrap_socket(sock, server_hostname=self.host)

    def _connect_body(self):
        flags = 0x02  # clean session: unacked frames live in the flash ring, not the broker
        payload = _str(self.client_id)
        if self.will:
            flags |= 0x04 | 0x08 | (0x20 if self.will[2] else 0)  # will, QoS 1, retain
            payload += _str(self.will[0]) + _str(self.will[1])
        if self.username is not None:
            flags |= 0x80
            payload += _str(self.username)
        if self.password is not None:
            flags |= 0x40
            payload += _str(self.password)
        return b"\x00\x04MQTT\x04" + struct.pack(">BH", flags, self.keepalive) + payload

    def disconnect(self):
        try:
            self._send(DISCONNECT, b"")
        except OSError:
            pass
        self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.poller = None

    def connected(self):
        return self.sock is not None

    # -- framing -----------------------------------------------------------------------------
    def _write(self, data):
        mv = memoryview(data)
        while mv:
            n = self.sock.write(mv)
            if not n:
                raise MQTTError("socket write failed")
            mv = mv[n:]

    def _send(self, kind, body):
        n = len(body)
        head = bytearray((kind,))
        while True:
            b = n & 0x7F
            n >>= 7
            head.append(b | 0x80 if n else b)
            if not n:
                break
        self._write(head)
        if body:
            self._write(body)
        self.last_tx = time.ticks_ms()

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.read(n - len(buf))
            if not chunk:
                raise MQTTError("connection closed by broker")
            buf += chunk
        return buf

    def _packet(self):
        kind = self._read(1)[0]
        n, shift = 0, 0
        while True:
            b = self._read(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTError("bad remaining length")
        return kind, self._read(n) if n else b""

    # -- operations --------------------------------------------------------------------------
    def _next_pid(self):
        while True:
            self.pid = self.pid % 65535 + 1
            if self.pid not in self.pending:
                return self.pid

    def _publish_packet(self, topic, msg, retain, pid, dup):
        kind = PUBLISH | (0x01 if retain else 0) | (0x02 if pid else 0) | (DUP if dup else 0)
        body = _str(topic) + (struct.pack(">H", pid) if pid else b"") + msg
        self._send(kind, body)

    def publish(self, topic, msg, retain=False, qos=0):
        # QoS 1 returns the packet id; the frame is resent with DUP until its PUBACK arrives.
        pid = self._next_pid() if qos else 0
        if qos:
            self.pending[pid] = [topic, msg, retain, time.ticks_ms()]
        self._publish_packet(topic, msg, retain, pid, False)
        return pid

    def subscribe(self, topic):
        pid = self._next_pid()
        self._send(SUBSCRIBE, struct.pack(">H", pid) + _str(topic) + b"\x01")
        start = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), start) < self.timeout_ms:
            kind, body = self._packet()
            if kind == SUBACK and struct.unpack(">H", body[:2])[0] == pid:
                if body[2] & 0x80:
                    raise MQTTError("broker refused subscription to %s" % topic)
                return
            self._handle(kind, body)
        raise MQTTError("no SUBACK")

    def poll(self, ms=0):
        # Handle everything that has arrived, waiting at most `ms` for the first packet; then
        # keepalive and retransmission duties. Returns when there is nothing more to read.
        wait = ms
        while self.poller.poll(wait):
            kind, body = self._packet()
            self._handle(kind, body)
            wait = 0
        self._keepalive()
        self._retransmit()

    def _handle(self, kind, body):
        t = kind & 0xF0
        if t == PUBACK:
            pid = struct.unpack(">H", body)[0]
            if self.pending.pop(pid, None) is not None and self.on_puback:
                self.on_puback(pid)
        elif t == PUBLISH:
            self._incoming(kind, body)
        elif t == PINGRESP:
            self.ping_sent = None
        elif t != SUBACK:
            raise MQTTError("unexpected packet 0x%02x" % kind)

    def _incoming(self, kind, body):
        n = struct.unpack(">H", body[:2])[0]
        topic = body[2 : 2 + n]
        pos = 2 + n
        qos = (kind >> 1) & 3
        if qos:
            pid = body[pos : pos + 2]
            pos += 2
            self._send(PUBACK, pid)
        if self.on_message:
            self.on_message(topic, body[pos:])

    def _keepalive(self):
        now = time.ticks_ms()
        if self.ping_sent is not None:
            if time.ticks_diff(now, self.ping_sent) > self.keepalive * 1000:
                raise MQTTError("no PINGRESP within keepalive")
        elif time.ticks_diff(now, self.last_tx) >= self.keepalive * 500:
            self._send(PINGREQ, b"")
            self.ping_sent = now

    def _retransmit(self):
        now = time.ticks_ms()
        for pid, p in self.pending.items():
            if time.ticks_diff(now, p[3]) >= self.retry_ms:
                self._publish_packet(p[0], p[1], p[2], pid, True)
                p[3] = now
