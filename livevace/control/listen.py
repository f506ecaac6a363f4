"""OSCQuery's bi-directional extension: value changes pushed over a WebSocket (LISTEN).

A client (TouchOSC, Chataigne, ossia score, the node's own page) opens a WebSocket on the
OSCQuery port and sends text frames `{"COMMAND": "LISTEN", "DATA": "/livevace/seed"}` (or
IGNORE); from then on every accepted change of that parameter comes to it as a binary
frame holding the OSC message, whatever made the change (OSC, a controller, a scene, a
slew step, the page). Binary frames from the client are OSC packets and take the very path
UDP packets take (the router, the allow list), so the feedback targets see what a page
does; their replies come back over the same socket.

The store calls its listeners on the writer's thread, which must never wait: a change of
a parameter someone listens to only marks it changed (a flood of slew steps coalesces) and
wakes the event loop, at most one wake-up pending; the loop encodes the value the store
holds then. Each client likewise holds at most one waiting message per address, plus a
short queue of replies, so a slow client (a phone on bad Wi-Fi) gets the latest values late
rather than making anything grow.

A browser lets any web site open a WebSocket to 127.0.0.1, so a socket that comes with an
Origin (every browser sends one; OSCQuery clients send none) is only taken when that origin
is the node's own page, addressed by an IP address, `localhost` or this machine's name: a
page on the internet, even one whose name an attacker points at 127.0.0.1, cannot steer the
show through the VJ's browser.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
from collections import deque
from typing import Any, Callable
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from livevace.control.ratelog import BurstLog, shorten
from livevace.control.transport import MAX_PACKET, PacketHandler, encode
from livevace.control.values import osc_args
from livevace.params import REGISTRY, ParamStore, param

log = logging.getLogger("livevace.osc")

HEARTBEAT = 20.0
"""Seconds between pings: a client that vanished without closing is noticed and dropped."""
MAX_REPLIES = 64
"""Replies waiting for one client at most (older ones are dropped first)."""
LISTENABLE = frozenset(p.address for p in REGISTRY)


def is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def trusted_origin(request: web.BaseRequest) -> bool:
    """No Origin (not a browser), or the node's own page under a name that is this machine."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    url = urlsplit(origin)
    return url.netloc.lower() == request.host.lower() and is_this_machine(url.hostname or "")


def is_this_machine(name: str) -> bool:
    """An IP address, `localhost` or this machine's own (mDNS) name: never a name from DNS
    that someone else controls."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    own = socket.gethostname().lower().split(".")[0]
    return name.lower() in ("localhost", own, f"{own}.local")


class _Client:
    """One WebSocket: what it listens to and what waits to be sent to it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.listens: set[str] = set()
        self.values: dict[str, bytes] = {}
        self.sent: dict[str, bytes] = {}
        """The last message sent per address."""
        self.replies: deque[bytes] = deque(maxlen=MAX_REPLIES)
        self.wake = asyncio.Event()

    def push(self, address: str, data: bytes, repeats: bool = False) -> None:
        """Queue a value for an address it listens to. The value it was last sent is not
        sent again (a flush racing a writer can read the same value twice), and whatever
        waits is then older than what it has; `repeats`: each push is news (a trigger)."""
        if address not in self.listens:
            return
        if not repeats and self.sent.get(address) == data:
            self.values.pop(address, None)
            return
        self.values[address] = data
        self.wake.set()

    def reply(self, data: bytes) -> None:
        self.replies.append(data)
        self.wake.set()

    async def send_forever(self) -> None:
        try:
            while not self.ws.closed:
                await self.wake.wait()
                self.wake.clear()
                replies, values = list(self.replies), list(self.values.items())
                self.replies.clear()
                self.values.clear()
                self.sent.update(values)  # before the awaits: a push meanwhile sees them
                for data in replies + [data for _, data in values]:
                    await self.ws.send_bytes(data)
        except ConnectionError:  # the client went away: its reader ends the connection
            pass


class Listen:
    """The LISTEN/IGNORE WebSocket endpoint of an OSCQuery server (runs on its event loop).

    `packets` receives the OSC packets clients send (None: they are ignored)."""

    def __init__(self, store: ParamStore, loop: asyncio.AbstractEventLoop,
                 packets: PacketHandler | None = None) -> None:
        self.store = store
        self.packets = packets
        self._loop = loop
        self._clients: set[_Client] = set()
        self._listened: frozenset[str] = frozenset()
        """Addresses some client listens to (replaced whole, so other threads may read it)."""
        self._pending: set[str] = set()
        """Parameters changed since the last flush."""
        self._lock = threading.Lock()
        self._burst = BurstLog(log, window=10.0)
        self._unsubscribe: Callable[[], None] | None = store.subscribe(self._changed)

    # --- any thread ---------------------------------------------------------------------
    def _changed(self, name: str, value: Any) -> None:
        if param(name).address not in self._listened:
            return
        with self._lock:
            wake = not self._pending
            self._pending.add(name)
        if wake:
            self._call_soon(self._flush)

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the server has closed: nobody is listening any more
            pass

    # --- the event loop -----------------------------------------------------------------
    def _flush(self) -> None:
        """Send the changed parameters' values as they are now (so writers on several
        threads can never leave an older value last)."""
        with self._lock:
            pending, self._pending = self._pending, set()
        for name in pending:
            p = param(name)
            value = True if p.kind == "trigger" else self.store.get(name)
            data = encode(p.address, osc_args(p, value))
            for client in self._clients:
                client.push(p.address, data, repeats=p.kind == "trigger")

    async def serve(self, request: web.BaseRequest) -> web.StreamResponse:
        """Hold one client's WebSocket until it closes."""
        if not trusted_origin(request):
            origin = shorten(request.headers["Origin"])
            self._burst.warning(f"origin {origin}", f"OSCQuery WebSocket from the web page "
                                f"{origin!r} refused (only the node's own page may steer it)")
            return web.Response(status=403)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_PACKET)
        await ws.prepare(request)
        client = _Client(ws)
        self._clients.add(client)
        sender = asyncio.create_task(client.send_forever())
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peer = (peername[0], peername[1]) if peername else (request.remote or "?", 0)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._command(client, msg.data)
                elif msg.type == WSMsgType.BINARY and self.packets is not None:
                    self.packets(msg.data, peer, lambda data: self._call_soon(client.reply, data))
        except ConnectionError:  # the client went away mid-send: the same as a close
            pass
        finally:
            self._clients.discard(client)
            self._update_listened()
            sender.cancel()
        return ws

    def _command(self, client: _Client, text: str) -> None:
        try:
            message = json.loads(text)
            command, path = message["COMMAND"], message["DATA"]
        except (ValueError, TypeError, KeyError):
            self._burst.warning("bad command", f"OSCQuery WebSocket: {shorten(text)!r} is not "
                                '{"COMMAND": …, "DATA": …}; ignored')
            return
        if command not in ("LISTEN", "IGNORE") or not isinstance(path, str):
            self._burst.warning(f"command {shorten(str(command))}", "OSCQuery WebSocket: "
                                f"{shorten(str(command))!r} {shorten(str(path))!r} is not "
                                "understood (LISTEN or IGNORE an address); ignored")
            return
        if command == "IGNORE":
            client.listens.discard(path)
        elif path in LISTENABLE:
            client.listens.add(path)
        self._update_listened()

    def _update_listened(self) -> None:
        self._listened = frozenset().union(*(c.listens for c in self._clients))

    async def close(self) -> None:
        """Stop hearing the store and close every client's socket."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for client in list(self._clients):
            await client.ws.close()
