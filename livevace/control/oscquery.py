"""OSCQuery: the node describes its OSC address space over HTTP as JSON, live.

Per the OSCQuery proposal (Vidvox/OSCQueryProposal): `GET /` returns the whole tree;
`GET /livevace/<name>` one node with FULL_PATH, TYPE, RANGE, VALUE, DESCRIPTION, ACCESS,
CLIPMODE and UNIT; `GET /path?VALUE` (any attribute) just that attribute; `GET /?HOST_INFO`
the OSC port and transport. The tree is generated from the registry (values read from the
store at each request, so they are always current) and advertised over Zeroconf as
`_oscjson._tcp` (and the OSC port as `_osc._udp`, which TouchOSC browses).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from livevace.control.addresses import COMMANDS
from livevace.control.values import json_value, type_tags
from livevace.errors import UserError
from livevace.params import REGISTRY, ParamStore

log = logging.getLogger("livevace.osc")

ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "VALUE", "RANGE", "DESCRIPTION",
              "CLIPMODE", "UNIT", "TAGS")
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TAGS": True,
              "CLIPMODE": True, "UNIT": True, "CRITICAL": False, "LISTEN": False,
              "PATH_CHANGED": False}


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


class OscQueryServer:
    """HTTP server for the OSCQuery namespace, plus its Zeroconf advertisement."""

    def __init__(self, store: ParamStore, host: str, port: int, osc_port: int,
                 osc_transport: str = "UDP", name: str = "livevace", advertise: bool = True) -> None:
        self.store = store
        self.host_info = {"NAME": name, "OSC_IP": host, "OSC_PORT": osc_port,
                          "OSC_TRANSPORT": osc_transport, "EXTENSIONS": EXTENSIONS}
        handler = type("Handler", (_Handler,), {"service": self})
        try:
            self._http = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise UserError(f"cannot serve OSCQuery on {host}:{port} ({exc.strerror or exc}); "
                            "choose another --oscquery-port") from None
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), name="oscquery",
                                        daemon=True)
        self._thread.start()
        self._zeroconf = None
        # mDNS probing takes seconds: advertise beside the show, never in front of it
        self._advertiser: threading.Thread | None = None
        if advertise:
            self._advertiser = threading.Thread(target=self._advertise, name="oscquery-mdns",
                                                args=(name, host, osc_port), daemon=True)
            self._advertiser.start()

    @property
    def address(self) -> tuple[str, int]:
        return self._http.server_address[:2]

    def _advertise(self, name: str, host: str, osc_port: int) -> None:
        try:
            from zeroconf import IPVersion, ServiceInfo, Zeroconf

            ip = host if host not in ("0.0.0.0", "") else _lan_ip()
            interfaces = [ip] if host not in ("0.0.0.0", "") else None
            self._zeroconf = Zeroconf(interfaces=interfaces or "all", ip_version=IPVersion.V4Only)
            label = f"{name} on {socket.gethostname()}"[:63]
            self._infos = [
                ServiceInfo("_oscjson._tcp.local.", f"{label}._oscjson._tcp.local.",
                            addresses=[socket.inet_aton(ip)], port=self.address[1],
                            properties={"txtvers": "1"}),
                ServiceInfo("_osc._udp.local.", f"{label}._osc._udp.local.",
                            addresses=[socket.inet_aton(ip)], port=osc_port),
            ]
            for info in self._infos:
                self._zeroconf.register_service(info, allow_name_change=True)
            log.info("OSCQuery advertised over Zeroconf as %r (_oscjson._tcp)", label)
        except Exception as exc:  # no multicast on this network: serve without discovery
            log.warning("Zeroconf advertisement unavailable (%s); OSCQuery still answers on "
                        "http://%s:%d/", exc, *self.address)
            self._close_zeroconf()

    def _close_zeroconf(self) -> None:
        if self._zeroconf is not None:
            try:
                self._zeroconf.unregister_all_services()
                self._zeroconf.close()
            except Exception:
                pass
            self._zeroconf = None

    def close(self) -> None:
        if self._advertiser is not None:
            self._advertiser.join(timeout=10)
        self._close_zeroconf()
        self._http.shutdown()
        self._http.server_close()


def _lan_ip() -> str:
    """The address other machines reach this one at (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    service: OscQueryServer
    server_version = "livevace-oscquery"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        query = unquote(url.query).split("&")[0].split("=")[0].upper()
        if query == "HOST_INFO":
            return self._json(self.service.host_info)
        node = find(build_tree(self.service.store), unquote(url.path))
        if node is None:
            return self._status(404)
        if not query:
            return self._json(node)
        if query not in ATTRIBUTES:
            return self._status(400)
        if query not in node:
            return self._status(204)
        return self._json({query: node[query]})

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("oscquery: " + format, *args)
