"""The TouchDesigner build script: its tables against the registry, its runtime against a
running node (both directions), and the whole script executed as the Textport would."""

from __future__ import annotations

import ast
import inspect
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_packet import OscPacket

from livevace.control.addresses import COMMANDS
from livevace.params import BY_NAME, format_prompts
from livevace.patches.inputs import gather, live_params
from livevace.patches import td_runtime
from livevace.patches.td_runtime import EchoGuard, incoming, ndi_source, outgoing
from test_control_support import free_udp_port, presets, running  # noqa: F401
from test_patches_td_standin import td_module

SCRIPT = Path(__file__).resolve().parents[1] / "patches" / "touchdesigner" / "livevace_td.py"
README = SCRIPT.with_name("README.md")


def literal(name: str) -> Any:
    """A top-level constant of the committed script, read without running it."""
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return ast.literal_eval(node.value)
    raise KeyError(name)


PARAMS = literal("PARAMS")
SETTINGS = literal("SETTINGS")


def test_every_live_parameter_with_the_registry_range_default_and_choices():
    assert [s["name"] for s in PARAMS] == [p.name for p in live_params()]
    assert {p.name for p in live_params()} == {p.name for p in BY_NAME.values()
                                               if p.live and not p.readonly}
    scenes = list(gather().scenes)
    for spec in PARAMS:
        p = BY_NAME[spec["name"]]
        assert spec["address"] == p.address and spec["kind"] == p.kind
        assert (spec.get("min"), spec.get("max")) == (p.min, p.max), p.name
        if p.name == "scene":
            assert spec["choices"] == scenes and spec["style"] == "Menu"
            assert spec["save"] in {c.address for c in COMMANDS}
        else:
            assert spec.get("choices", []) == list(p.choices), p.name
        default = spec["default"]
        if p.kind == "prompts":
            assert default == format_prompts(p.default)
        elif p.kind in ("floats", "ints") and spec["style"] == "Str":
            assert p.coerce(default)[0] == p.default
        elif p.kind in ("floats", "ints", "strs"):
            assert tuple(v for v in default if v != "") == p.default
        elif p.name != "scene" and p.kind != "trigger":
            assert default == p.default, p.name


def test_the_runtime_in_the_script_is_the_tested_module_and_the_script_is_ascii():
    assert literal("RUNTIME") == inspect.getsource(td_runtime)
    SCRIPT.read_bytes().decode("ascii")  # any Textport encoding reads it


def test_the_readme_gives_the_defaults_the_script_sets():
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 6:
            rows[cells[0]] = cells
    for spec in PARAMS:
        if spec["style"] == "Menu":  # the scene menu starts on its first scene
            assert rows[f"`{spec['pars'][0]}`"][4] == spec["default"], spec["name"]
    scene = next(s for s in PARAMS if s["name"] == "scene")
    assert rows["`Scene`"][4] == scene["default"] == gather().scenes[0]


@pytest.mark.parametrize("sources, sender, host, found", [
    # macOS: NDI names the machine MACBOOK.LOCAL, not MACBOOK
    (["MACBOOK.LOCAL (livevace)"], "livevace", "MacBook.local", "MACBOOK.LOCAL (livevace)"),
    (["MACBOOK-PRO.LOCAL (livevace)"], "livevace", "", "MACBOOK-PRO.LOCAL (livevace)"),
    # DistroAV's own example of a macOS source name (its ndi-source.cpp)
    (["MACBOOK.LOCAL (Scan Converter)"], "Scan Converter", "x", "MACBOOK.LOCAL (Scan Converter)"),
    # Windows, among other streams of the same machine
    (["STUDIO-PC (OBS)", "STUDIO-PC (livevace)", "STUDIO-PC (Remote Connection 1)"],
     "livevace", "studio-pc.example.org", "STUDIO-PC (livevace)"),
    # several machines send it: this machine's first, else the first listed
    (["RENDER-1 (livevace)", "MACBOOK.LOCAL (livevace)"], "livevace", "macbook",
     "MACBOOK.LOCAL (livevace)"),
    (["RENDER-1 (livevace)", "MACBOOK.LOCAL (livevace)"], "livevace", "other-box",
     "RENDER-1 (livevace)"),
    # another stream whose name only contains the sender's, or no machine part: not it
    (["MACBOOK.LOCAL (livevace 2)", "MACBOOK.LOCAL (not livevace)", " (livevace)"],
     "livevace", "macbook", None),
    ([], "livevace", "macbook", None),
])
def test_the_ndi_source_is_found_by_its_stream_name(sources, sender, host, found):
    assert ndi_source(sources, sender, host) == found


def test_find_ndi_source_picks_the_listed_source_once_the_node_sends(td, capsys):
    exec(compile(SCRIPT.read_text(encoding="utf-8"), str(SCRIPT), "exec"), {})  # the Textport
    comp = td.op("livevace")
    assert comp.par.Ndisource.eval() == ""  # nothing listed at build: no guess
    assert "no NDI source '(livevace)' listed yet" in capsys.readouterr().out
    comp.op("ndi_in").par.name.menuNames = ["STUDIO-PC (OBS)", "MACBOOK.LOCAL (livevace)"]
    comp.par.Findndi.pulse()
    assert comp.par.Ndisource.eval() == "MACBOOK.LOCAL (livevace)"
    assert comp.op("ndi_in").par.name.eval() == "MACBOOK.LOCAL (livevace)"


def test_custom_parameter_names_are_valid_and_unique():
    names = [n for spec in PARAMS + SETTINGS["extra_pars"] for n in spec["pars"]]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][a-z0-9]*", n) for n in names), names


def sample(spec: dict) -> list:
    """A value for each custom parameter of a spec, different from its default."""
    n, style, kind = len(spec["pars"]), spec["style"], spec["kind"]
    if style in ("Float", "Int"):
        lo, hi = spec["min"], spec["max"]
        values = [lo + (hi - lo) * (i + 1) / (n + 3) for i in range(n)]
        return [round(v) for v in values] if style == "Int" else values
    if style == "Toggle":
        return [not spec["default"]]
    if style == "Menu":
        return [next(c for c in reversed(spec["choices"]) if c != spec["default"])]
    if kind == "prompts":
        return ["a forest at night :: 0.7 | fog :: 0.3"]
    if kind in ("floats", "ints"):
        return ["1000 500 250" if kind == "ints" else "1 0.5 0.25"]
    if kind == "strs":
        return ["/tmp/my images/look one.png"] + [""] * (n - 1)  # a path with spaces
    return [f"/tmp/{spec['name']}.png"] if kind == "str" else []


def collect(sock: socket.socket, seconds: float) -> dict[str, list]:
    """The last arguments that reached `sock` per address, over a few quiet moments."""
    last: dict[str, list] = {}
    deadline = time.monotonic() + seconds
    sock.settimeout(0.3)
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            break
        for timed in OscPacket(data).messages:
            last[timed.message.address] = list(timed.message.params)
    return last


def test_runtime_messages_move_the_node_and_its_feedback_comes_back(running):
    feedback = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    feedback.bind(("127.0.0.1", 0))
    r = running("--feedback", f"127.0.0.1:{feedback.getsockname()[1]}")
    sent = {}
    # the scene first: its crossfade (counted in ticks) would overtake the values sent after it
    for spec in sorted(PARAMS, key=lambda s: s["name"] != "scene"):
        values = sample(spec)
        sent[spec["name"]] = values
        messages = outgoing(spec, values)
        assert messages and all(a == spec["address"] for a, _ in messages)
        for address, args in messages:
            r.client.send(address, *args)
        if spec["name"] == "scene":
            r.client.sync()
            for _ in range(8):
                r.control.tick()
    r.client.sync()
    for _ in range(3):  # let the slews (0.1 s) finish
        time.sleep(0.12)
        r.control.tick()
    echoes = collect(feedback, 3.0)
    feedback.close()
    for spec in PARAMS:
        p, values = BY_NAME[spec["name"]], sent[spec["name"]]
        if p.kind == "trigger":
            assert r.store.take_trigger(p.name)
            continue
        raw = values if len(values) > 1 else values[0]
        expected = p.coerce([v for v in raw if v] if p.kind == "strs" else raw)[0]
        held = r.store.get(p.name)
        if p.kind == "prompts":
            assert format_prompts(held) == format_prompts(expected)
        elif p.kind in ("float", "floats"):
            assert held == pytest.approx(expected, rel=1e-6)
        else:
            assert held == expected, p.name
        back = incoming(spec, echoes[spec["address"]])
        if p.kind in ("float", "floats") and spec["style"] == "Float":
            assert back == pytest.approx(values, rel=1e-6)
        else:
            assert back == values, p.name
    assert r.store.get("reference_images") == ("/tmp/my images/look one.png",)


def test_echo_guard_drops_late_glide_echoes_and_does_not_resend_what_it_showed():
    guard = EchoGuard(hold=0.6)
    assert guard.should_send("noise_scale", [0.2], now=10.0)
    assert not guard.should_apply("noise_scale", [0.55], now=10.3)  # the node still gliding
    assert guard.should_apply("noise_scale", [0.9], now=11.0)  # a scene moved it
    assert not guard.should_send("noise_scale", [0.9], now=11.0)  # showing it is not a move
    assert guard.should_send("noise_scale", [0.9], now=12.0)  # the user back on the same value


@pytest.fixture
def td(monkeypatch):
    module, root = td_module()
    monkeypatch.setitem(sys.modules, "td", module)
    return root


def test_the_script_builds_the_comp_and_plays_with_a_running_node(td, running):
    feedback_port = free_udp_port()
    r = running("--feedback", f"127.0.0.1:{feedback_port}")
    exec(compile(SCRIPT.read_text(encoding="utf-8"), str(SCRIPT), "exec"), {})  # the Textport
    comp = td.op("livevace")
    for spec in PARAMS + SETTINGS["extra_pars"]:
        for name in spec["pars"]:
            par = getattr(comp.par, name)
            assert par.style == spec["style"]
            if spec["style"] in ("Float", "Int"):
                assert (par.min, par.max, par.clampMin) == (spec["min"], spec["max"], True)
    assert comp.par.Noisescale.eval() == BY_NAME["noise_scale"].default
    assert comp.op("oscout").par.address.eval() == "127.0.0.1"
    assert comp.op("video").par.index.eval() == (1 if sys.platform.startswith("win") else 0)
    assert comp.op("out1").inputConnectors[0].source is comp.op("video")
    comp.par.Port = r.port
    comp.par.Feedbackport = feedback_port
    oscin = comp.op("oscin")
    try:
        oscin.poll(timeout=0.05)  # binds the feedback port
        comp.par.Scene = "ink_wash"  # a menu pick alone sends nothing…
        r.client.sync()
        assert r.store.get("scene") == ""
        comp.par.Scenerecall.pulse()  # …the recall pulse does
        comp.par.Resetcache.pulse()
        r.client.sync()
        assert r.store.get("scene") == "ink_wash"
        assert r.store.take_trigger("reset_cache")
        for _ in range(8):  # the scene's crossfade
            r.control.tick()
        comp.par.Noisescale = 0.25
        comp.par.Control = "gray"
        r.client.sync()
        time.sleep(0.12)
        r.control.tick()
        assert r.store.get("noise_scale") == pytest.approx(0.25)
        assert r.store.get("control") == "gray"

        time.sleep(SETTINGS["echo_hold"])  # past the hold, feedback moves the parameters
        r.client.send("/livevace/seed", 777)
        r.client.sync()
        r.control.feedback.send("/livevace/stats/fps", [24.0])
        oscin.poll()
        assert comp.par.Seed.eval() == 777
        assert comp.par.Noisescale.eval() == pytest.approx(0.25)  # its echoes settled there
        assert comp.op("stats").row("fps")[1].val == "24.0"
    finally:
        oscin.close()
