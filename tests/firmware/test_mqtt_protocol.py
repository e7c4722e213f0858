"""firmware/lib/mqtt.py on the MicroPython VM against a scripted MQTT 3.1.1 peer (a raw TCP socket in
the test) for what a well-behaved Mosquitto never does: withhold a PUBACK (the client must resend
the PUBLISH with the DUP flag and the same packet id) and ignore a PINGREQ (the client must give up
on the connection after the keepalive)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from conftest import run_micropython

pytestmark = pytest.mark.integration

CLIENT = """
import mqtt
events = []
c = mqtt.MQTTClient("dev-p", "127.0.0.1", int(sys.argv[1]), "dev-p", "pw", keepalive=2, retry_ms=300)
c.set_last_will("edgeprov/v1/gw/dev-p/status", b"offline", True)
c.on_puback = lambda pid: events.append(("puback", pid))
c.connect()
pid = c.publish("edgeprov/v1/gw/dev-p/reading", b"frame-1", qos=1)
print("published", pid)
try:
    while True:
        c.poll(50)
        if events:
            print(*events.pop())
except OSError as exc:
    print("dropped:", exc)
"""


def read_packet(conn: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    kind = exactly(1)[0]
    length, shift = 0, 0
    while True:
        b = exactly(1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return kind, exactly(length)


def peer(server: socket.socket, seen: list) -> None:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(20)
        kind, body = read_packet(conn)
        seen.append(("connect", kind, body))
        conn.sendall(b"\x20\x02\x00\x00")
        first = read_packet(conn)  # QoS 1 PUBLISH: withhold its PUBACK
        seen.append(("publish", *first))
        again = read_packet(conn)
        seen.append(("publish", *again))
        pid = again[1][2 + struct.unpack(">H", again[1][:2])[0] :][:2]
        conn.sendall(b"\x40\x02" + pid)
        ping = read_packet(conn)
        seen.append(("ping", *ping))
        conn.sendall(b"\xd0\x00")
        seen.append(("ping", *read_packet(conn)))  # the second PINGREQ goes unanswered
        try:
            read_packet(conn)
        except (EOFError, OSError):
            seen.append(("closed",))


def test_dup_retransmission_and_keepalive_timeout(tmp_path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    seen: list = []
    thread = threading.Thread(target=peer, args=(server, seen), daemon=True)
    thread.start()
    out = run_micropython(CLIENT, tmp_path, str(server.getsockname()[1]), timeout=60).splitlines()
    thread.join(10)
    server.close()
    assert out == ["published 1", "puback 1", "dropped: no PINGRESP within keepalive"]
    (_, kind, connect), (_, k1, p1), (_, k2, p2) = seen[:3]
    assert kind == 0x10 and connect.startswith(b"\x00\x04MQTT\x04")
    flags = connect[7]
    assert flags & 0x02 and flags & 0x04 and flags & 0x20 and flags & 0xC0 == 0xC0  # clean, will, retain, login
    assert connect[8:10] == b"\x00\x02"  # keepalive 2 s
    assert k1 == 0x32 and k2 == 0x3A, "QoS 1 PUBLISH, then the same with DUP"
    assert p1 == p2 and p1.endswith(b"frame-1")
    assert [s[:2] for s in seen[3:5]] == [("ping", 0xC0), ("ping", 0xC0)]
