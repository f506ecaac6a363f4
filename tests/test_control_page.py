"""The browser control page: what the OSCQuery port serves to browsers and to OSCQuery
clients, the registry and status it hands the page, the MJPEG preview, and the page itself
in headless Chromium against a real `livevace run` (a slider moves the node, OSC moves the
page, the preview moves, scenes and learn work, a phone's screen fits)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import aiohttp
import cv2
import numpy as np
import pytest

from livevace.control.oscquery import OscQueryServer
from livevace.control.preview import Preview
from livevace.control.webpage import Page
from livevace.frames import Frame
from livevace.io.pattern import decode_index, encode_index
from livevace.params import REGISTRY, ParamStore
from livevace.stats import Stats
from browser_support import Chromium, NodeProcess, chromium_path
from polling import until

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.fixture
def serve():
    """Factory: an OSCQuery server with the page on a free loopback port; closed after."""
    servers: list[OscQueryServer] = []

    def start(page: Page) -> str:
        servers.append(OscQueryServer(page.store, "127.0.0.1", 0, 9000, advertise=False,
                                      page=page))
        return "http://%s:%d" % servers[-1].address

    yield start
    for s in servers:
        s.close()


def fetch(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
    async def main() -> tuple[int, str, bytes]:
        headers = {"Accept": accept} if accept else {}
        async with aiohttp.ClientSession(skip_auto_headers=["Accept"]) as session:
            async with session.get(url, headers=headers) as r:
                return r.status, r.content_type, await r.read()

    return asyncio.run(main())


def test_browsers_get_the_page_and_oscquery_clients_the_namespace(serve):
    url = serve(Page(ParamStore()))
    status, kind, body = fetch(f"{url}/", BROWSER_ACCEPT)
    assert (status, kind) == (200, "text/html") and b"/ui/app.js" in body
    for accept in (None, "*/*", "application/json", "application/json, text/html"):
        status, kind, body = fetch(f"{url}/", accept)
        assert (status, kind) == (200, "application/json"), accept
        assert json.loads(body)["FULL_PATH"] == "/"
    assert fetch(f"{url}/?HOST_INFO", BROWSER_ACCEPT)[1] == "application/json"
    assert fetch(f"{url}/livevace/seed", BROWSER_ACCEPT)[1] == "application/json"
    assert fetch(f"{url}/?HTML")[1] == "text/html"  # the OSCQuery proposal's own way
    assert fetch(f"{url}/ui/")[1] == "text/html"
    assert fetch(f"{url}/ui/app.js")[1] == "text/javascript"
    assert fetch(f"{url}/ui/style.css")[1] == "text/css"
    assert fetch(f"{url}/ui/../pyproject.toml")[0] == 404
    assert fetch(f"{url}/ui/preview.mjpg")[0] == 404  # no preview given


def test_the_page_is_built_from_the_registry_with_current_values(serve):
    store = ParamStore()
    store.set("noise_scale", 0.25)
    store.set("prompt", "a forest :: 0.7 | fog :: 0.3")
    status, _, body = fetch(serve(Page(store)) + "/ui/params.json")
    params = {p["name"]: p for p in json.loads(body)}
    assert status == 200 and list(params) == [p.name for p in REGISTRY]
    for p in REGISTRY:
        got = params[p.name]
        assert (got["kind"], got["min"], got["max"], got["unit"], got["choices"], got["group"],
                got["address"]) == (p.kind, p.min, p.max, p.unit, list(p.choices), p.group,
                                    p.address)
    assert params["noise_scale"]["value"] == [0.25]
    assert params["prompt"]["value"] == ["a forest :: 0.7 | fog :: 0.3"]
    assert params["vace_enabled"]["value"] == [True]


def test_status_holds_the_stats_what_runs_and_the_last_minute(serve):
    stats = Stats()
    stats.count("frames_out", 3)  # counters and gauges: rates would fade while the test waits
    stats.gauge("queue_pacer", 2)
    url = serve(Page(ParamStore(), stats, info={"pipeline": "passthrough"}))

    def status() -> dict:
        return json.loads(fetch(f"{url}/ui/status.json")[2])

    until(lambda: status()["history"], "the status never gained a history")
    s = status()
    assert s["info"] == {"pipeline": "passthrough"}
    assert (s["stats"]["frames_out"], s["stats"]["queue_pacer"]) == (3.0, 2.0)
    assert "fps_out" in s["stats"] and "latency_p95_ms" in s["stats"]
    assert set(s["history"][0]) == {"fps_in", "fps_out", "latency_p50_ms"}


def pattern_frame(index: int, width: int = 192, height: int = 112) -> Frame:
    image = np.full((height, width, 3), 90, np.uint8)
    encode_index(image, index)
    return Frame(image, 0.0, index)


def mjpeg_parts(url: str, count: int, between) -> list[np.ndarray]:
    """The first `count` pictures of an MJPEG stream; `between(i)` runs after picture i."""
    async def main() -> list[np.ndarray]:
        pictures = []
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as r:
                assert r.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
                reader = aiohttp.MultipartReader.from_response(r)
                while len(pictures) < count:
                    part = await reader.next()
                    assert part.headers["Content-Type"] == "image/jpeg"
                    data = np.frombuffer(await part.read(), np.uint8)
                    pictures.append(cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR),
                                                 cv2.COLOR_BGR2RGB))
                    await asyncio.to_thread(between, len(pictures) - 1)
        return pictures

    return asyncio.run(main())


def test_the_preview_streams_each_new_frame_once_as_jpeg(serve):
    preview = Preview()
    url = serve(Page(ParamStore(), preview=preview))
    preview.put(pattern_frame(7), True)

    def next_frame(i: int) -> None:
        preview.put(pattern_frame(7 + i), False)  # a held repeat: nothing new to show
        preview.put(pattern_frame(8 + i), True)

    pictures = mjpeg_parts(f"{url}/ui/preview.mjpg", 3, next_frame)
    assert [decode_index(p) for p in pictures] == [7, 8, 9]
    assert pictures[0].shape == (112, 192, 3)


def test_the_preview_is_scaled_down_for_the_network():
    preview = Preview(max_width=640)
    preview.put(Frame(np.zeros((720, 1280, 3), np.uint8), 0.0), True)
    seq, jpeg = preview.jpeg()
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert (seq, picture.shape) == (1, (360, 640, 3))
    assert Preview().jpeg() is None  # nothing emitted yet


# --- the page in a real browser, against a real node ------------------------------------

@pytest.fixture(scope="module")
def show(tmp_path_factory):
    """A `livevace run` (test pattern, passthrough) and a headless Chromium on its page."""
    chromium_path()  # skips here, before a node starts, when there is no Chromium
    tmp = tmp_path_factory.mktemp("page")
    node = NodeProcess("--source", "pattern", "--pipeline", "passthrough", "--width", "192",
                       "--height", "112", "--fps", "30", "--sink", f"record:{tmp / 'out.mp4'}",
                       env={"LIVEVACE_SCENES_DIR": str(tmp / "scenes"),
                            "LIVEVACE_CONTROLLERS_DIR": str(tmp / "controllers")})
    browser = None
    try:
        browser = Chromium(tmp / "profile")
        browser.open(f"{node.url}/", "document.querySelector('#link.live')")
        yield node, browser, tmp
    finally:
        if browser is not None:
            browser.close()
        node.close()


def control_value(browser: Chromium, name: str) -> str:
    """What the page's control of parameter `name` shows (its input or menu)."""
    selector = f".ctl[data-name={name}] input, .ctl[data-name={name}] select"
    return browser.evaluate(f"document.querySelector({json.dumps(selector)}).value")


def oscsend(port: int, address: str, types: str, *values: str) -> None:
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, types, *values], check=True,
                   timeout=10)


def test_a_slider_moved_in_the_browser_moves_the_node(show):
    node, browser, _ = show
    x, y, width = browser.centre(".ctl[data-name=noise_scale] input[type=range]")
    browser.drag(x, y, x - 0.3 * width)  # from the middle to a fifth of the way
    moved = float(control_value(browser, "noise_scale"))
    assert 0.05 < moved < 0.4
    until(lambda: abs(node.value("noise_scale")[0] - moved) < 1e-6,
          "the node's noise_scale did not follow the slider")


def test_osc_to_the_node_shows_on_the_page(show):
    node, browser, _ = show
    oscsend(node.osc_port, "/livevace/vace_context_scale", "f", "0.25")  # liblo's oscsend
    oscsend(node.osc_port, "/livevace/control", "s", "flow")
    until(lambda: control_value(browser, "vace_context_scale") == "0.25",
          "the slider did not follow OSC")
    until(lambda: control_value(browser, "control") == "flow", "the menu did not follow OSC")


def test_the_weighted_prompt_list_and_the_layer_profile(show):
    node, browser, _ = show
    browser.click(".ctl[data-name=prompt] .row button")  # + prompt
    browser.evaluate("""(() => {
        const rows = document.querySelectorAll(".ctl[data-name=prompt] .prompt-row");
        const fill = (row, text, weight) => {
            row.querySelector("textarea").value = text; row.querySelector("input").value = weight;
            row.dispatchEvent(new Event("input", {bubbles: true})); };
        fill(rows[0], "a glass forest", 0.7); fill(rows[1], "fog", 0.3); })()""")
    browser.click(".ctl[data-name=prompt] .primary")  # send
    until(lambda: node.value("prompt") == ["a glass forest :: 0.7 | fog :: 0.3"],
          "the prompt list did not reach the node")
    browser.click(".ctl[data-name=vace_layer_profile] .row button:last-child")  # one more layer
    until(lambda: node.value("vace_layer_profile") == [1.0, 1.0],
          "the layer profile did not grow to two values")


def test_the_status_shows_what_runs_and_how_fast(show):
    _, browser, _ = show
    until(lambda: "pipeline: passthrough" in browser.evaluate(
        "document.getElementById('info').textContent"), "the status does not say what runs")
    until(lambda: float(browser.evaluate(
        "[...document.querySelectorAll('#numbers div')].find(d => d.textContent.startsWith("
        "'fps out')).querySelector('dd').textContent")) > 0, "the status shows no output fps")


def test_the_preview_shows_the_output_moving(show):
    _, browser, _ = show
    until(lambda: browser.evaluate("document.getElementById('preview').naturalWidth") > 0,
          "the preview never showed a picture")
    first_index = decode_index(browser.image_pixels("#preview"))
    first_shot = browser.screenshot("#preview")
    until(lambda: decode_index(browser.image_pixels("#preview")) > first_index,
          "the pattern's frame counter did not advance in the preview")
    until(lambda: not np.array_equal(browser.screenshot("#preview"), first_shot),
          "two screenshots of the preview are the same")


def test_scenes_recall_and_save_from_the_page(show):
    node, browser, tmp = show
    until(lambda: browser.evaluate("!!document.querySelector('[data-scene=ink_wash]')"),
          "the page did not list the scenes")
    browser.click("[data-scene=ink_wash]")
    until(lambda: node.value("control") == ["edges"], "recalling ink_wash did not reach the node")
    browser.click("#scene-save input")
    browser.call("Input.insertText", text="from_the_page")
    browser.click("#scene-save button")
    until(lambda: (tmp / "scenes" / "from_the_page.toml").is_file(), "the scene was not saved")
    until(lambda: browser.evaluate("!!document.querySelector('[data-scene=from_the_page]')"),
          "the saved scene is not listed")


def test_learn_from_the_page(show):
    node, browser, tmp = show
    browser.click("#learn")
    browser.click(".ctl[data-name=vace_generation_scale] .learn-pick")
    until(lambda: not browser.evaluate("document.getElementById('learn-banner').hidden"),
          "learn mode did not start")
    until(lambda: any("learn: move a control" in line for line in node.log),
          "the node did not enter learn mode")
    oscsend(node.osc_port, "/my/fader", "f", "0.25")  # a controller's fader
    until(lambda: "/my/fader now steers vace_generation_scale" in
          browser.evaluate("document.getElementById('learn-text').textContent"),
          "the page did not say what was learned")
    until(lambda: node.value("vace_generation_scale") == [0.5], "the learned fader did not steer")
    assert "/my/fader" in (tmp / "controllers" / "learned.toml").read_text()
    browser.click("#learn")  # learn mode off again


def test_the_page_works_on_a_phone(show):
    node, browser, _ = show
    browser.call("Emulation.setDeviceMetricsOverride", width=390, height=844,
                 deviceScaleFactor=2, mobile=True)
    browser.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=5)
    try:
        browser.open(f"{node.url}/", "document.querySelector('#link.live')")
        layout = browser.evaluate("""(() => {
            const box = id => document.getElementById(id).getBoundingClientRect();
            return {inner: innerWidth, scroll: document.documentElement.scrollWidth,
                    monitor: box("monitor").bottom, controls: box("controls").top,
                    preview: box("preview").width,
                    slider: document.querySelector(".ctl[data-name=noise_scale] input")
                              .getBoundingClientRect().width}; })()""")
        assert layout["inner"] == 390 and layout["scroll"] <= 390, layout  # nothing sideways
        assert layout["controls"] >= layout["monitor"], layout  # one column
        assert 300 < layout["preview"] <= 390 and layout["slider"] > 300, layout
        x, y, _ = browser.centre(".ctl[data-name=noise_controller] input")
        browser.tap(x, y)
        until(lambda: node.value("noise_controller") == [True], "a tap did not reach the node")
    finally:
        browser.call("Emulation.setTouchEmulationEnabled", enabled=False)
        browser.call("Emulation.clearDeviceMetricsOverride")


def test_the_page_threw_no_javascript_errors(show):
    _, browser, _ = show
    assert browser.errors == []
