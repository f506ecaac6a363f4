"""The browser control page, served on the OSCQuery port (one port to remember).

Where it lives: `/ui/` always; `/` too for a browser, told apart from an OSCQuery client by
its Accept header (a browser asks for text/html first; OSCQuery clients ask for nothing in
particular or for JSON, and keep getting the namespace as JSON at `/`); and `/?HTML`, the
OSCQuery proposal's own way to ask a server for its HTML page.

What it serves: the page itself (plain files in `static/`, no build step, nothing fetched
from the internet), `/ui/params.json` (the registry: every parameter's kind, range, unit,
choices and current value, from which the page builds its controls), `/ui/status.json` (the
node's statistics, GPU memory, what runs, and the last minute of fps and latency) and
`/ui/preview.mjpg` (the output as MJPEG). Values move over the OSCQuery LISTEN WebSocket
(control/listen.py): the page listens to every parameter and sends OSC packets, which take
the same path as OSC from anywhere else.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from importlib import resources
from typing import Any

from aiohttp import web

from livevace.control.feedback import Stats, gpu_memory
from livevace.control.preview import Preview
from livevace.control.values import json_value
from livevace.params import REGISTRY, ParamStore

PREFIX = "/ui/"
FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
HISTORY_SECONDS = 60
HISTORY_KEYS = ("fps_in", "fps_out", "latency_p50_ms")
PREVIEW_FPS = 25.0
"""Most frames per second the MJPEG stream sends (the page is a monitor, not the output)."""
BOUNDARY = "frame"


def wants_page(request: web.BaseRequest) -> bool:
    """Whether a request asks for the page rather than for OSCQuery's JSON."""
    path = request.path
    if path.startswith(PREFIX) or path == "/ui":
        return True
    if path != "/":
        return False
    query = request.query_string
    return query.upper() == "HTML" or not query and prefers_html(request.headers.get("Accept", ""))


def prefers_html(accept: str) -> bool:
    """An Accept header ranks text/html above application/json (a browser's does)."""
    quality = {"text/html": 0.0, "application/json": 0.0}
    for item in accept.split(","):
        kind, *options = (part.strip() for part in item.split(";"))
        if kind in quality:
            q = 1.0
            for option in options:
                name, _, value = option.partition("=")
                if name.strip() == "q":
                    try:
                        q = float(value)
                    except ValueError:
                        q = 0.0
            quality[kind] = q
    return quality["text/html"] > quality["application/json"]


def registry_json(store: ParamStore) -> list[dict[str, Any]]:
    """Every parameter as the page builds its control from it; values as OSC sends them."""
    values = store.snapshot()
    return [{"name": p.name, "address": p.address, "kind": p.kind, "group": p.group,
             "description": p.description, "min": p.min, "max": p.max, "unit": p.unit,
             "choices": list(p.choices), "max_len": p.max_len, "apply": p.apply,
             "readonly": p.readonly, "value": json_value(p, values[p.name])}
            for p in REGISTRY]


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and math.isfinite(v)}


class Page:
    """The page's HTTP side; its WebSocket side is the OSCQuery server's LISTEN."""

    def __init__(self, store: ParamStore, stats: Stats | None = None,
                 preview: Preview | None = None, info: dict[str, str] | None = None) -> None:
        self.store = store
        self.stats = stats
        self.preview = preview
        self.info = info if info is not None else {}
        """What runs (pipeline, model, size…), shown as given; the node fills it in."""
        self.history: deque[dict[str, float]] = deque(maxlen=HISTORY_SECONDS)
        self._stopping = asyncio.Event()

    def status(self) -> dict[str, Any]:
        stats = _finite({**gpu_memory(), **(self.stats.snapshot() if self.stats else {})})
        return {"stats": stats, "info": self.info, "history": list(self.history)}

    async def keep_history(self) -> None:
        """Once a second, the values the page's graph draws (the last minute)."""
        while not self._stopping.is_set() and self.stats is not None:
            snap = self.stats.snapshot()
            self.history.append({k: round(snap.get(k, 0.0), 2) for k in HISTORY_KEYS})
            try:
                await asyncio.wait_for(self._stopping.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        name = request.path.removeprefix(PREFIX) if request.path.startswith(PREFIX) else ""
        if name in ("", "index.html"):
            return _file("index.html")
        if name in FILES:
            return _file(name)
        if name == "params.json":
            return _json(registry_json(self.store))
        if name == "status.json":
            return _json(self.status())
        if name == "preview.mjpg" and self.preview is not None:
            return await self._mjpeg(request, self.preview)
        return web.Response(status=404)

    async def _mjpeg(self, request: web.BaseRequest, preview: Preview) -> web.StreamResponse:
        """Each new output frame as one JPEG part, until the browser leaves."""
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store"})
        await response.prepare(request)
        await response.write(f"--{BOUNDARY}\r\n".encode())
        shown = -1
        try:
            while not self._stopping.is_set():
                if preview.seq != shown:
                    got = await asyncio.to_thread(preview.jpeg)
                    if got is not None and got[0] != shown:
                        shown, jpeg = got
                        # the boundary right after the part: a browser shows a part once
                        # the next boundary arrives
                        await response.write(
                            b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                            + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
                try:
                    await asyncio.wait_for(self._stopping.wait(), 1.0 / PREVIEW_FPS)
                except asyncio.TimeoutError:
                    pass
        except ConnectionError:  # the browser went away
            pass
        return response

    def stop(self) -> None:
        """End the streams and the history (on the server's loop, before it shuts down)."""
        self._stopping.set()


def _file(name: str) -> web.Response:
    body = resources.files("livevace.control").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=FILES[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


def _json(body: Any) -> web.Response:
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                        content_type="application/json", headers={"Cache-Control": "no-store"})
