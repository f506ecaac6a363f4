"""OSCQuery: the node describes its OSC address space over HTTP as JSON, live.

Per the OSCQuery proposal (Vidvox/OSCQueryProposal): `GET /` returns the whole tree;
`GET /livevace/<name>` one node with FULL_PATH, TYPE, RANGE, VALUE, DESCRIPTION, ACCESS,
CLIPMODE and UNIT; `GET /path?VALUE` (any attribute) just that attribute; `GET /?HOST_INFO`
the OSC port and transport. The tree is generated from the registry (values read from the
store at each request, so they are always current) and advertised over Zeroconf
(control/discovery.py). A WebSocket opened on the same port follows value changes (LISTEN,
control/listen.py), and a browser gets the control page (control/webpage.py).

The server is aiohttp's, on one event loop in a thread of its own, because this port must
survive whatever the network sends and also carries WebSockets (OSCQuery LISTEN) and
the browser page: an idle connection costs a socket, not a thread; a connection with no
complete request for `idle_timeout` seconds is closed; at most `max_connections` are open
(the rest get 503 at once, so a flood cannot take the file descriptors the recorder and NDI
need); the listen backlog holds a burst of clients; a client that hangs up mid-request
costs nothing (aiohttp logs it at debug level). http.server, hardened, would still hold a
worker thread per open connection (so idle ones starve a bounded pool) and need a second
server for WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from livevace.control.addresses import COMMANDS
from livevace.control.discovery import Advertiser, is_loopback
from livevace.control.listen import Listen, is_websocket
from livevace.control.ratelog import BurstLog
from livevace.control.transport import PacketHandler
from livevace.control.values import json_value, type_tags
from livevace.control.webpage import Page, wants_page
from livevace.errors import UserError
from livevace.params import REGISTRY, ParamStore

log = logging.getLogger("livevace.osc")

ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "VALUE", "RANGE", "DESCRIPTION",
              "CLIPMODE", "UNIT", "TAGS")
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TAGS": True,
              "CLIPMODE": True, "UNIT": True, "CRITICAL": False, "LISTEN": True,
              "PATH_CHANGED": False}
IDLE_TIMEOUT = 15.0
"""Seconds a connection may wait without a complete request before it is closed."""
MAX_CONNECTIONS = 512
"""Open connections at most: half of the usual 1024 file descriptors a process may hold."""
BACKLOG = 1024
"""Connections the kernel queues before the server accepts them (a burst of clients)."""
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def build_tree(store: ParamStore) -> dict[str, Any]:
    """The namespace as nested OSCQuery nodes, with current values."""
    root: dict[str, Any] = {"FULL_PATH": "/", "DESCRIPTION": "livevace", "CONTENTS": {}}
    values = store.snapshot()
    for p in REGISTRY:
        value = values[p.name]
        node = _container(root, p.address)
        types = type_tags(p, value)
        node.update({"TYPE": types, "DESCRIPTION": p.description, "TAGS": [p.group],
                     "ACCESS": 1 if p.readonly else 2 if p.kind == "trigger" else 3})
        if p.kind != "trigger":
            node["VALUE"] = json_value(p, value)
        if p.kind == "enum":
            node["RANGE"] = [{"VALS": list(p.choices)}]
        elif p.min is not None and p.max is not None:
            node["RANGE"] = [{"MIN": p.min, "MAX": p.max}] * len(types)
            node["CLIPMODE"] = ["both"] * len(types)
        if p.unit and p.kind in ("float", "int"):
            node["UNIT"] = [p.unit]
    for c in COMMANDS:
        node = _container(root, c.address)
        node.update({"DESCRIPTION": c.description, "ACCESS": 2 if c.types else 0})
        if c.types:
            node["TYPE"] = c.types
    return root


def _container(root: dict[str, Any], address: str) -> dict[str, Any]:
    node = root
    path = ""
    for part in address.strip("/").split("/"):
        path += "/" + part
        node = node.setdefault("CONTENTS", {}).setdefault(part, {"FULL_PATH": path})
    return node


def find(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


def answer(store: ParamStore, host_info: dict[str, Any],
           target: str) -> tuple[int, dict[str, Any] | None]:
    """(HTTP status, JSON body or None) for a GET of `target` (path and query)."""
    url = urlsplit(target)
    query = unquote(url.query).split("&")[0].split("=")[0].upper()
    if query == "HOST_INFO":
        return 200, host_info
    node = find(build_tree(store), unquote(url.path))
    if node is None:
        return 404, None
    if not query:
        return 200, node
    if query not in ATTRIBUTES:
        return 400, None
    if query not in node:
        return 204, None
    return 200, {query: node[query]}


class OscQueryServer:
    """HTTP server for the OSCQuery namespace, its LISTEN WebSocket and the control page,
    plus its Zeroconf advertisement. `packets` takes the OSC packets WebSocket clients send
    (None: ignored); `page` is the browser page (None: no page)."""

    def __init__(self, store: ParamStore, host: str, port: int, osc_port: int,
                 osc_transport: str = "UDP", name: str = "livevace", advertise: bool = True,
                 idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, packets: PacketHandler | None = None,
                 page: Page | None = None) -> None:
        self.store = store
        self.page = page
        self.host_info = {"NAME": name, "OSC_IP": host, "OSC_PORT": osc_port,
                          "OSC_TRANSPORT": osc_transport, "EXTENSIONS": EXTENSIONS}
        if host in ("0.0.0.0", ""):  # no address to send to: clients then use the HTTP host's
            del self.host_info["OSC_IP"]
        sock = _listen(host, port)
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="oscquery", daemon=True)
        self._thread.start()
        self.listen = Listen(store, self._loop, packets)
        self._history: asyncio.Task[None] | None = None
        self._server, self._listener = asyncio.run_coroutine_threadsafe(
            self._serve(sock, idle_timeout, max_connections), self._loop).result(timeout=10)
        self._advertiser: Advertiser | None = None
        if advertise and is_loopback(self.address[0]):
            log.info("Zeroconf: not advertised, OSC and OSCQuery listen on %s (this machine "
                     "only); --osc-host 0.0.0.0 lets other machines find the node", self.address[0])
        elif advertise:
            self._advertiser = Advertiser(name, self.address[0], self.address[1], osc_port)

    async def _serve(self, sock: socket.socket, idle_timeout: float,
                     max_connections: int) -> tuple[web.Server, asyncio.AbstractServer]:
        server = _CappedServer(self._handle, max_connections, keepalive_timeout=idle_timeout,
                               access_log=None)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(server, sock=sock, backlog=BACKLOG)
        if self.page is not None:
            self._history = asyncio.create_task(self.page.keep_history())
        return server, listener

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "GET":
            return web.Response(status=405, headers={"Allow": "GET"})
        if is_websocket(request):
            return await self.listen.serve(request)
        if self.page is not None and wants_page(request):
            return await self.page.handle(request)
        status, body = answer(self.store, self.host_info, request.raw_path)
        if body is None:
            return web.Response(status=status)
        return web.Response(status=status, content_type="application/json",
                            body=json.dumps(body, ensure_ascii=False).encode("utf-8"))

    async def _shutdown(self) -> None:
        self._listener.close()
        if self.page is not None:
            self.page.stop()
        if self._history is not None:
            await self._history
        await self.listen.close()
        self._server.pre_shutdown()  # idle connections end now, not after the timeout
        await self._server.shutdown(timeout=1.0)
        await asyncio.get_running_loop().shutdown_default_executor()  # the preview's encoder
        await asyncio.sleep(0)  # let the closed connections' callbacks run

    def close(self) -> None:
        if self._advertiser is not None:
            self._advertiser.close()
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class _CappedServer(web.Server):
    """aiohttp's low-level server, refusing connections beyond `max_connections`."""

    def __init__(self, handler: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self._burst = BurstLog(log, window=10.0)

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self.connections) > self.max_connections:
            transport.write(BUSY)
            handler.force_close()
            self._burst.warning("busy", f"OSCQuery: {self.max_connections} connections open; "
                                "refused another")


def _listen(host: str, port: int) -> socket.socket:
    """The bound listening socket, here and now, so that a taken port is the caller's error."""
    try:
        sock = socket.create_server((host, port), backlog=BACKLOG)
    except OSError as exc:
        raise UserError(f"cannot serve OSCQuery on {host}:{port} ({exc.strerror or exc}); "
                        "choose another --oscquery-port") from None
    return sock
