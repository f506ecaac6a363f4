"""OSC over TCP under attack: idle connections filling every slot used to lock out every
later controller for good, silently. Real TCP sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import struct
import time

from pythonosc.osc_message import OscMessage

from livevace.control.router import encode
from livevace.control.transport import MAX_TCP_PEERS
from test_control_support import presets, running  # noqa: F401


def read_frame(conn: socket.socket) -> bytes | None:
    """One size-prefixed (OSC 1.0) frame, or None when the peer closed first."""
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data[4:4 + struct.unpack(">i", data[:4])[0]]


def closed_by_peer(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        return conn.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def send_seed(port: int, seed: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    data = encode("/livevace/seed", [seed])
    conn.sendall(struct.pack(">i", len(data)) + data)
    return conn


def wait_for(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_a_full_table_refuses_visibly_and_idle_peers_time_out(running, caplog):
    caplog.set_level(logging.INFO, "livevace.osc")
    r = running("--osc-tcp", "--osc-tcp-idle", "1.5")
    idle = [socket.create_connection(("127.0.0.1", r.port), timeout=5)
            for _ in range(MAX_TCP_PEERS)]
    time.sleep(0.3)  # accepted, each by its own thread
    late = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    late.settimeout(5)
    message = OscMessage(read_frame(late))  # told why, then closed
    assert message.address == "/livevace/error"
    assert "too many OSC/TCP connections" in message.params[0]
    assert read_frame(late) is None
    port = late.getsockname()[1]
    late.close()
    assert f"OSC/TCP from 127.0.0.1:{port} refused: too many" in caplog.text
    # the silent ones are closed (generously: the timeout is 1.5 s)
    assert all(closed_by_peer(c, within=10) for c in idle)
    assert "silent for 1.5 s: connection closed" in caplog.text
    for c in idle:
        c.close()
    conn = send_seed(r.port, 4242)  # and a controller gets in again
    assert wait_for(lambda: r.store.get("seed") == 4242)
    conn.close()


def test_a_talking_peer_is_not_timed_out(running):
    r = running("--osc-tcp", "--osc-tcp-idle", "2")
    conn = send_seed(r.port, 1)
    for seed in range(2, 17):  # a message every 0.2 s for 3 s: never silent for 2 s
        time.sleep(0.2)
        data = encode("/livevace/seed", [seed])
        conn.sendall(struct.pack(">i", len(data)) + data)
    assert wait_for(lambda: r.store.get("seed") == 16)
    assert not closed_by_peer(conn, within=0.5)
    conn.close()
