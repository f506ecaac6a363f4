"""OSC over UDP and TCP: sockets, threads, framing, the sender allow-list and the limits
that keep one sender from hurting the show or anyone else.

Each server hands every received packet (raw bytes) to one callback together with a
`reply` function that answers the sender on the same transport. Decoding and meaning live
in the router; here only bytes move. Threads never raise: a bad peer costs a log line.

UDP replies go to whatever address a packet claims, so they are rationed (ReplyGuard): a
token bucket per sender address, and, when the node listens beyond this machine, replies
only to --osc-allow senders and --feedback hosts; otherwise the node would be a reflector
that amplifies a forged 20-byte request many times over at a victim. TCP peers silent for
--osc-tcp-idle seconds are closed, so idle connections cannot hold every slot for good; a
client refused for want of a slot is told so (an /livevace/error message) and logged.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pythonosc import slip
from pythonosc.osc_message_builder import OscMessageBuilder

from livevace.control.ratelog import BurstLog
from livevace.errors import UserError

log = logging.getLogger("livevace.osc")

Reply = Callable[[bytes], None]
PacketHandler = Callable[[bytes, tuple[str, int], Reply], None]

MAX_PACKET = 65536
"""Largest packet accepted (a UDP datagram's limit; TCP frames beyond it drop the peer)."""
MAX_TCP_PEERS = 16
TCP_IDLE = 300.0
"""Default seconds of silence after which a TCP peer is closed (--osc-tcp-idle)."""
REPLY_BURST = 16384
"""Bytes a sender may be answered at once (a full /livevace/dump fits)…"""
REPLY_RATE = 8192
"""…and per second after that (refill rate of its token bucket)."""
FREE_RATIO = 2
"""A reply at most this many times the size of its request costs nothing: it amplifies no
attack (a query of one value is answered however busy the bucket)."""
MAX_ANSWERED = 256
"""Sender addresses whose buckets are tracked at once (a flood of forged ones cannot grow it)."""


def encode(address: str, args: list[Any]) -> bytes:
    """One OSC message as bytes."""
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


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


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class ReplyGuard:
    """Who may be answered over UDP, and how much.

    A reply up to FREE_RATIO times its request's size goes out freely. A larger one is
    paid from the sender's bucket, which holds up to REPLY_BURST bytes and refills at
    REPLY_RATE per second: it goes out while the bucket is not empty (which may then run
    into debt, so one large dump is never cut off) and is dropped otherwise. So over any
    flood a sender (or a victim whose address is forged) receives at most FREE_RATIO times
    the bytes sent plus REPLY_BURST and REPLY_RATE per second, however the requests are
    phrased. `answerable` is the policy for who may be answered at all.
    """

    def __init__(self, answerable: Callable[[str], bool] = lambda host: True) -> None:
        self.answerable = answerable
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, host: str, size: int, asked: int) -> bool:
        """Whether a reply of `size` bytes to a request of `asked` bytes may go to `host`
        now (and count it when it may)."""
        if size <= FREE_RATIO * asked:
            return True
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(host)
            if bucket is None:
                if len(self._buckets) >= MAX_ANSWERED:
                    self._forget_full(now)
                if len(self._buckets) >= MAX_ANSWERED:
                    return False
                bucket = self._buckets[host] = _Bucket(REPLY_BURST, now)
            bucket.tokens = min(REPLY_BURST, bucket.tokens + (now - bucket.stamp) * REPLY_RATE)
            bucket.stamp = now
            if bucket.tokens <= 0:
                return False
            bucket.tokens -= size
            return True

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: they are the same as new ones."""
        for host, b in list(self._buckets.items()):
            if b.tokens + (now - b.stamp) * REPLY_RATE >= REPLY_BURST:
                del self._buckets[host]


def reply_policy(listen_host: str, allow: AllowList,
                 feedback_hosts: Iterable[str]) -> Callable[[str], bool]:
    """Who may be answered over UDP. On loopback only this machine can send, so everyone;
    on a network, a forged source address would turn replies on a victim, so only this
    machine, senders --osc-allow names and the hosts of the --feedback targets."""
    if is_loopback(_address_of(listen_host)):
        return lambda host: True
    known = {_address_of(name) for name in feedback_hosts}
    return lambda host: is_loopback(host) or host in known or bool(allow.networks) and allow(host)


def _address_of(host: str) -> str:
    """A host name's IPv4 address (the name itself when it does not resolve: the server or
    the feedback sender reports that on its own)."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


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

    def __init__(self, host: str, port: int, handler: PacketHandler, allow: AllowList,
                 guard: ReplyGuard | None = None) -> None:
        super().__init__(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), host, port, handler,
                         allow)
        self.guard = guard or ReplyGuard()
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
            self._handler(data, sender,
                          lambda out, to=sender, asked=len(data): self._send(out, to, asked))

    def _send(self, data: bytes, to: tuple[str, int], asked: int) -> None:
        if not self.guard.answerable(to[0]):
            self._burst.warning(f"mute {to[0]}", f"OSC from {to[0]} not answered: the node "
                                "listens beyond this machine, so it answers only --osc-allow "
                                "senders and --feedback hosts (a forged sender address would "
                                "turn the replies on someone else)")
            return
        if not self.guard.take(to[0], len(data), asked):
            self._burst.warning(f"held {to[0]}", f"replies to {to[0]} held back: more than "
                                f"{REPLY_BURST // 1024} KiB at once or {REPLY_RATE // 1024} "
                                "KiB/s asked for (a guard against reflection attacks)")
            return
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

    def __init__(self, host: str, port: int, handler: PacketHandler, allow: AllowList,
                 idle: float = TCP_IDLE) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().__init__(sock, host, port, handler, allow)
        self._idle = idle
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
            if full:
                self._refuse(conn, peer)
                continue
            self._burst.warning(f"deny {peer[0]}", f"OSC/TCP from {peer[0]} refused (not in "
                                "--osc-allow)")
            conn.close()

    def _refuse(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        """Tell a client there is no room (in OSC 1.0 framing: it has not said which it
        speaks yet), log it, close."""
        why = (f"too many OSC/TCP connections ({MAX_TCP_PEERS}); silent ones close after "
               f"{self._idle:g} s (--osc-tcp-idle)")
        self._burst.warning(f"full {peer[0]}", f"OSC/TCP from {peer[0]}:{peer[1]} refused: {why}")
        message = encode("/livevace/error", [why])
        try:
            conn.settimeout(0.5)
            conn.sendall(struct.pack(">i", len(message)) + message)
        except OSError:
            pass
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

        heard = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    if time.monotonic() - heard > self._idle:
                        self._burst.info(f"idle {peer[0]}", f"OSC/TCP peer {peer[0]}:{peer[1]} "
                                         f"silent for {self._idle:g} s: connection closed "
                                         "(--osc-tcp-idle)")
                        return
                    continue
                if not chunk:
                    return
                heard = time.monotonic()
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

