"""Helpers for the browser tests (no tests here): Debian's headless Chromium driven over the
Chrome DevTools protocol, spoken through aiohttp's WebSocket client (no driver, no extra
dependency), and a real `livevace run` process to point it at."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from polling import until


def chromium_path() -> str:
    """The Chromium executable; skips the test with the reason when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium here (Debian: apt-get install chromium chromium-driver; CI "
                "installs it)")
    raise AssertionError  # not reached


class Chromium:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900) -> None:
        self.proc = subprocess.Popen(
            [chromium_path(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-extensions", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        until(lambda: port_file.is_file() and port_file.read_text().strip(),
              "Chromium did not open its DevTools port", timeout=60)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        """Uncaught JavaScript exceptions of the page, as Chromium reported them."""
        self._run(self._connect(page["webSocketDebuggerUrl"]))
        self.call("Runtime.enable")

    def _run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self, url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            if data.get("method") == "Runtime.exceptionThrown":
                self.errors.append(data["params"]["exceptionDetails"].get("exception", {})
                                   .get("description", str(data["params"])))
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        number = next(self._ids)
        future = self._loop.create_future()
        self._waiting[number] = future
        await self._ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        answer = await future
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._run(self._call(method, params))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str) -> None:
        """Load `url` and wait until the expression `ready` is true there."""
        self.call("Page.navigate", url=url)
        until(lambda: self.evaluate(f"document.readyState === 'complete' && !!({ready})"),
              f"{url} did not get ready ({ready})", timeout=60)

    def centre(self, selector: str) -> tuple[float, float, float]:
        """(x, y, width) of an element, scrolled into view, in CSS pixels of the viewport."""
        box = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, r.width]; }})()""")
        return box[0], box[1], box[2]

    def drag(self, x0: float, y: float, x1: float, steps: int = 8) -> None:
        """Press the mouse at (x0, y), move it to (x1, y) and let go: a user's drag."""
        mouse = "Input.dispatchMouseEvent"
        self.call(mouse, type="mouseMoved", x=x0, y=y)
        self.call(mouse, type="mousePressed", x=x0, y=y, button="left", buttons=1, clickCount=1)
        for i in range(1, steps + 1):
            self.call(mouse, type="mouseMoved", x=x0 + (x1 - x0) * i / steps, y=y, button="left",
                      buttons=1)
        self.call(mouse, type="mouseReleased", x=x1, y=y, button="left", buttons=0, clickCount=1)

    def click(self, selector: str) -> None:
        """A mouse click in the middle of an element."""
        x, y, _ = self.centre(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def tap(self, x: float, y: float) -> None:
        """A finger's tap (touch events, as on a phone)."""
        point = [{"x": x, "y": y}]
        self.call("Input.dispatchTouchEvent", type="touchStart", touchPoints=point)
        self.call("Input.dispatchTouchEvent", type="touchEnd", touchPoints=[])

    def screenshot(self, selector: str) -> np.ndarray:
        """The pixels of an element as the screen shows them (RGB)."""
        x, y, w = self.centre(selector)
        h = self.evaluate(f"document.querySelector({json.dumps(selector)})"
                          ".getBoundingClientRect().height")
        shot = self.call("Page.captureScreenshot", format="png",
                         clip={"x": x - w / 2, "y": y - h / 2, "width": w, "height": h, "scale": 1})
        png = np.frombuffer(base64.b64decode(shot["data"]), np.uint8)
        return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def image_pixels(self, selector: str) -> np.ndarray:
        """The picture an <img> shows now, at its own size (RGB): drawn into a canvas."""
        url = self.evaluate(f"""(() => {{ const i = document.querySelector({json.dumps(selector)});
            const c = document.createElement("canvas"); c.width = i.naturalWidth;
            c.height = i.naturalHeight; c.getContext("2d").drawImage(i, 0, 0);
            return c.toDataURL("image/png"); }})()""")
        png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
        return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        async def shut() -> None:
            await self._ws.close()
            await self._session.close()
            await self._reader

        try:
            self._run(shut(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NodeProcess:
    """`livevace run` in a process of its own on free ports; its log read as it comes."""

    PORTS = re.compile(r"OSC control on [\d.]+:(\d+)|control page on http://[\d.]+:(\d+)/")

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livevace", "run", "--osc-port", "0", "--oscquery-port", "0",
             "--no-zeroconf", "--no-preview", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        self.log: list[str] = []
        self.osc_port = self.http_port = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        until(lambda: (self.osc_port and self.http_port) or self.proc.poll() is not None,
              "the node did not start", timeout=120)
        assert self.proc.poll() is None, "the node stopped:\n" + "".join(self.log)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            for m in self.PORTS.finditer(line):
                if m.group(1):
                    self.osc_port = int(m.group(1))
                if m.group(2):
                    self.http_port = int(m.group(2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def value(self, name: str) -> Any:
        """A parameter's value as the node holds it (OSCQuery)."""
        with urllib.request.urlopen(f"{self.url}/livevace/{name}?VALUE", timeout=30) as r:
            return json.load(r)["VALUE"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
