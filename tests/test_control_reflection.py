"""UDP reflection: the node answers whatever address a packet claims, so what it sends back
must stay bounded. Real UDP sockets on 127.0.0.1 measure the bytes out per byte in for the
three attacks found: a 20-byte dump (answered with 27 datagrams), a 16-byte wildcard query
(54) and a 65 KB bundle of dumps (73,089)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from pythonosc.osc_packet import OscPacket

from livevace.control.router import encode
from livevace.control.transport import (FREE_RATIO, REPLY_BURST, REPLY_RATE, AllowList,
                                        reply_policy)
from livevace.params import REGISTRY
from test_control_support import presets, running  # noqa: F401

DUMP = encode("/livevace/dump", [])
QUERY_ALL = encode("/livevace/*", [])


def dump_bundle() -> bytes:
    """As many dump messages as one datagram carries."""
    element = struct.pack(">i", len(DUMP)) + DUMP
    return b"#bundle\0" + struct.pack(">Q", 1) + element * ((65000 - 16) // len(element))


class Victim:
    """The socket the replies land on (here also the sender: the address a forger claims)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.datagrams: list[bytes] = []
        self.last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.datagrams.append(data)
            self.last = time.monotonic()

    def quiet(self, seconds: float = 1.0) -> None:
        """Wait until nothing has arrived for `seconds`."""
        while time.monotonic() - self.last < seconds:
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def attack(r, packet: bytes, times: int) -> tuple[int, int, float, list[bytes]]:
    """Send `packet` `times` times; (bytes in, bytes out, seconds it took, replies)."""
    victim = Victim()
    began = time.monotonic()
    try:
        for i in range(times):
            victim.sock.sendto(packet, ("127.0.0.1", r.port))
            if i % 100 == 99:
                r.client.sync()  # the node has read them all: none lost to a full buffer
        r.client.sync()
        victim.quiet()
    finally:
        victim.close()
    return len(packet) * times, sum(map(len, victim.datagrams)), time.monotonic() - began, \
        victim.datagrams


@pytest.mark.parametrize("packet,times", [(DUMP, 2000), (QUERY_ALL, 2000), (dump_bundle(), 3)],
                         ids=["dump", "wildcard-query", "bundle-of-dumps"])
def test_replies_to_a_flood_stay_bounded(running, packet, times):
    r = running()
    sent, answered, took, replies = attack(r, packet, times)
    # the guarantee of the design, whatever the speed of this machine: small answers free,
    # large ones from a bucket (which may end one datagram in debt)
    assert answered <= FREE_RATIO * sent + REPLY_BURST + REPLY_RATE * took + 65536
    assert answered <= 8 * sent, (answered, sent, took)
    # and a first request is answered in full: one bundle with every value
    first = {m.message.address for m in OscPacket(replies[0]).messages}
    assert first >= {p.address for p in REGISTRY if p.kind != "trigger"}


def test_one_request_is_one_datagram(running):
    """A dump, a wildcard query and a bundle of 3,000 dumps each get one datagram back."""
    r = running()
    for packet in (DUMP, QUERY_ALL, dump_bundle()):
        _, _, _, replies = attack(r, packet, 1)
        assert len(replies) == 1
        assert replies[0].startswith(b"#bundle\0")


def test_beyond_loopback_only_known_senders_are_answered():
    """Listening on the network, a forged source address must not turn replies on someone:
    only this machine, --osc-allow senders and --feedback hosts are answered."""
    everyone = reply_policy("0.0.0.0", AllowList(), ["192.168.1.30"])
    assert everyone("127.0.0.1") and everyone("192.168.1.30")
    assert not everyone("192.168.1.31") and not everyone("8.8.8.8")
    allowed = reply_policy("0.0.0.0", AllowList(["10.0.0.0/24"]), [])
    assert allowed("10.0.0.7") and not allowed("10.0.1.7")
    local = reply_policy("127.0.0.1", AllowList(), [])
    assert local("127.0.0.1")  # on loopback only this machine can send at all
