"""The OSCQuery HTTP server under attack, on real sockets: idle connections, a burst of
clients, clients that hang up mid-request, connections that never finish a request, and
more connections than it will hold."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from livevace.control.oscquery import OscQueryServer
from livevace.params import ParamStore

REQUEST = b"GET /?HOST_INFO HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def serve():
    """Factory: an OSCQuery server on a free loopback port; closed after the test."""
    servers: list[OscQueryServer] = []

    def start(**options) -> OscQueryServer:
        servers.append(OscQueryServer(ParamStore(), "127.0.0.1", 0, 9000, advertise=False,
                                      **options))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def get(server: OscQueryServer, path: str = "/?HOST_INFO") -> int:
    conn = http.client.HTTPConnection(*server.address, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def open_idle(server: OscQueryServer, count: int) -> list[socket.socket]:
    return [socket.create_connection(server.address, timeout=60) for _ in range(count)]


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def listen_drops() -> int:
    """Connections the kernel dropped because a listen queue was full (this network namespace)."""
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0][1:], lines[1][1:]))["ListenDrops"])


def server_connections(server: OscQueryServer) -> int:
    """Open connections on the server's side (this process holds both ends)."""
    return sum(1 for c in psutil.Process().net_connections(kind="tcp4")
               if c.laddr and c.laddr.port == server.address[1] and c.status != psutil.CONN_LISTEN)


def test_idle_connections_take_no_threads_and_block_no_one(serve):
    server = serve()
    threads = threading.active_count()
    idle = open_idle(server, 300)
    try:
        # accepted in order: once this is answered, the 300 before it have been accepted
        assert get(server) == 200
        assert threading.active_count() - threads <= 3
    finally:
        close_all(idle)


def test_a_burst_of_clients_is_queued_not_dropped(serve):
    server = serve()
    start = threading.Barrier(200)

    def client(_: int) -> int:
        start.wait()
        return get(server)

    drops = listen_drops()
    with ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(client, range(200)))
    assert statuses == [200] * 200
    # a full listen queue drops a client's SYN: it is answered only after seconds of retries
    assert listen_drops() == drops


def test_clients_hanging_up_mid_request_cost_no_traceback(serve, caplog, capfd):
    server = serve()
    caplog.set_level(logging.INFO)
    for i in range(50):
        s = socket.create_connection(server.address, timeout=60)
        s.sendall(REQUEST if i % 2 else REQUEST[:20])  # a whole request, or half of one
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # reset, before the answer is read
    deadline = time.monotonic() + 30
    while server_connections(server):
        assert time.monotonic() < deadline, "the server never let go of the reset connections"
        time.sleep(0.05)
    assert get(server) == 200
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.exc_info]
    assert len(caplog.records) <= 3, [r.getMessage() for r in caplog.records]


def test_connections_without_a_request_are_closed_after_the_idle_timeout(serve):
    server = serve(idle_timeout=0.5)
    silent, partial = open_idle(server, 2)
    kept = http.client.HTTPConnection(*server.address, timeout=60)
    try:
        partial.sendall(REQUEST[:20])
        kept.request("GET", "/?HOST_INFO")
        resp = kept.getresponse()
        resp.read()
        assert resp.status == 200 and not resp.will_close  # then it idles, kept alive
        for s in (silent, partial, kept.sock):
            assert s.recv(65536) == b""  # closed by the server
    finally:
        close_all([silent, partial])
        kept.close()


def test_connections_beyond_the_cap_are_refused_at_once(serve, caplog):
    server = serve(max_connections=20)
    idle = open_idle(server, 20)
    try:
        extra = socket.create_connection(server.address, timeout=60)
        assert extra.recv(65536).startswith(b"HTTP/1.1 503")
        assert extra.recv(65536) == b""
        extra.close()
        assert "20 connections open" in caplog.text
        close_all(idle[:5])
        deadline = time.monotonic() + 30
        while get(server) != 200:  # once the server has seen the five go
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        close_all(idle)
