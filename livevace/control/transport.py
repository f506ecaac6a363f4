"""OSC over UDP and TCP: sockets, threads, framing and the sender allow-list.

Each server hands every received packet (raw bytes) to one callback together with a
`reply` function that answers the sender on the same transport. Decoding and meaning live
in the router; here only bytes move. Threads never raise: a bad peer costs a log line.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
from typing import Callable, Iterable

from pythonosc import slip

from livevace.control.ratelog import BurstLog
from livevace.errors import UserError

log = logging.getLogger("livevace.osc")

Reply = Callable[[bytes], None]
PacketHandler = Callable[[bytes, tuple[str, int], Reply], None]

MAX_PACKET = 65536
"""Largest packet accepted (a UDP datagram's limit; TCP frames beyond it drop the peer)."""
MAX_TCP_PEERS = 16


class AllowList:
    """Sender addresses allowed to control the node (empty: everyone who can reach it)."""

    def __init__(self, specs: Iterable[str] = ()) -> None:
        self.networks = []
        for spec in specs:
            for part in spec.split(","):
                if not part.strip():
                    continue
                try:
                    self.networks.append(ipaddress.ip_network(part.strip(), strict=False))
                except ValueError:
                    raise UserError(f"--osc-allow: {part.strip()!r} is not an IP address or "
                                    "network (e.g. 192.168.1.20 or 192.168.1.0/24)") from None

    def __call__(self, host: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


class _Server:
    """A bound socket, the callbacks and a daemon thread running `self._run`."""

    KIND = ""

    def __init__(self, sock: socket.socket, host: str, port: int, handler: PacketHandler,
                 allow: AllowList) -> None:
        self._sock = sock
        try:
            sock.bind((host, port))
            if sock.type == socket.SOCK_STREAM:
                sock.listen(8)
        except OSError as exc:
            sock.close()
            raise UserError(f"cannot listen for OSC over {self.KIND} on {host}:{port} "
                            f"({exc.strerror or exc}); another program may hold the port: "
                            "pick one with --osc-port") from None
        sock.settimeout(0.2)
        self._handler = handler
        self._allow = allow
        self._stop = threading.Event()
        self._burst = BurstLog(log)
        self._thread = threading.Thread(target=self._run, name=f"osc-{self.KIND.lower()}",
                                        daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2]

    def _run(self) -> None:
        raise NotImplementedError


class UdpServer(_Server):
    """Receives OSC datagrams on one socket in a daemon thread."""

    KIND = "UDP"

    def __init__(self, host: str, port: int, handler: PacketHandler, allow: AllowList) -> None:
        super().__init__(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), host, port, handler,
                         allow)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(MAX_PACKET)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue  # e.g. ICMP port unreachable reported on Windows
            if self._stop.is_set():  # the wake-up datagram of close()
                return
            if not self._allow(sender[0]):
                self._burst.warning(f"deny {sender[0]}", f"OSC from {sender[0]} ignored "
                                    "(not in --osc-allow)")
                continue
            self._handler(data, sender, lambda out, to=sender: self._send(out, to))

    def _send(self, data: bytes, to: tuple[str, int]) -> None:
        try:
            self._sock.sendto(data, to)
        except OSError as exc:
            self._burst.warning(f"reply {to}", f"cannot answer {to[0]}:{to[1]} ({exc})")

    def close(self) -> None:
        self._stop.set()
        host, port = self.address
        try:  # an empty datagram wakes the receiving thread at once
            self._sock.sendto(b"", ("127.0.0.1" if host == "0.0.0.0" else host, port))
        except OSError:
            pass
        self._thread.join(timeout=2)
        self._sock.close()


class TcpServer(_Server):
    """OSC over TCP: OSC 1.1 SLIP frames or OSC 1.0 length-prefixed packets.

    The framing is detected per connection from its first byte (SLIP starts with 0xC0;
    a 1.0 size prefix of a packet under 64 KiB starts with 0x00); replies use the same.
    """

    KIND = "TCP"

    def __init__(self, host: str, port: int, handler: PacketHandler, allow: AllowList) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().__init__(sock, host, port, handler, allow)
        self._peers: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread.start()

    def _run(self) -> None:  # accepts connections
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                full = len(self._peers) >= MAX_TCP_PEERS
                if not full and self._allow(peer[0]):
                    self._peers.add(conn)
                    threading.Thread(target=self._serve, args=(conn, peer), name="osc-tcp-peer",
                                     daemon=True).start()
                    continue
            self._burst.warning(f"deny {peer[0]}", f"OSC/TCP from {peer[0]} refused "
                                f"({'too many connections' if full else 'not in --osc-allow'})")
            conn.close()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(0.5)
        buf = b""
        slip_framed: bool | None = None
        send_lock = threading.Lock()

        def reply(data: bytes) -> None:
            framed = slip.encode(data) if slip_framed else struct.pack(">i", len(data)) + data
            with send_lock:
                try:
                    conn.sendall(framed)
                except OSError:
                    pass

        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                if slip_framed is None:
                    slip_framed = buf[:1] == slip.END
                packets, buf = (_split_slip if slip_framed else _split_sized)(buf)
                for packet in packets:
                    self._handler(packet, peer, reply)
                if len(buf) > 2 * MAX_PACKET:
                    self._burst.warning(f"tcp {peer[0]}", f"OSC/TCP peer {peer[0]} sent a frame "
                                        "over 64 KiB; connection closed")
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._peers.discard(conn)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        with self._lock:
            peers = list(self._peers)
        for conn in peers:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _split_slip(buf: bytes) -> tuple[list[bytes], bytes]:
    *frames, rest = buf.split(b"\xc0")
    return [slip.decode(f) for f in frames if f], rest


def _split_sized(buf: bytes) -> tuple[list[bytes], bytes]:
    packets = []
    while len(buf) >= 4:
        (size,) = struct.unpack(">i", buf[:4])
        if size < 0 or size > MAX_PACKET:
            raise ValueError("bad OSC/TCP frame size")
        if len(buf) < 4 + size:
            break
        packets.append(buf[4:4 + size])
        buf = buf[4 + size:]
    return packets, buf
