"""The TouchOSC layout: it decompresses and parses, holds exactly the shipped mapping's
addresses with its input ranges, and every control's messages move a running node."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from livevace.control.mapping import load_controller
from test_control_support import presets, running  # noqa: F401
from test_patches_support import eventually, played

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = sorted((REPO / "presets" / "controllers").glob("touchosc*.toml"))


def controls(path: Path) -> dict[str, dict]:
    """address → {type, buttonType, vars, scales, send, receive} of every OSC control."""
    root = ET.fromstring(zlib.decompress(path.read_bytes()))
    assert root.tag == "lexml" and root.get("version") == "3"
    out = {}
    for node in root.iter("node"):
        osc = node.find("messages/osc")
        if osc is None:
            continue
        props = {p.findtext("key"): p.find("value") for p in node.find("properties")}
        args = osc.findall("arguments/partial")
        out[osc.findtext("path/partial/value")] = {
            "type": node.get("type"),
            "buttonType": props["buttonType"].text if "buttonType" in props else None,
            "vars": [a.findtext("value") for a in args],
            "scales": [(float(a.findtext("scaleMin")), float(a.findtext("scaleMax")))
                       for a in args],
            "send": osc.findtext("send"), "receive": osc.findtext("receive"),
            "triggers": [t.findtext("var") for t in osc.findall("triggers/trigger")],
        }
    return out


@pytest.mark.parametrize("mapping", LAYOUTS, ids=lambda p: p.stem)
def test_layout_matches_the_mapping(mapping):
    controller = load_controller(mapping)
    layout = controls(REPO / "patches" / "touchosc" / f"{mapping.stem}.tosc")
    assert set(layout) == {m.address for m in controller.maps}
    for address, c in layout.items():
        maps = sorted((m for m in controller.maps if m.address == address), key=lambda m: m.arg)
        assert c["vars"] == ["x", "y"][:len(maps)] == c["triggers"]
        assert c["scales"] == [(m.lo_in, m.hi_in) for m in maps]
        assert (c["send"], c["receive"]) == ("1", "1")  # and feedback moves it
        kind = address.rsplit("/", 1)[-1].rstrip("0123456789")
        assert (c["type"], c["buttonType"]) == {
            "fader": ("FADER", None), "push": ("BUTTON", "0"), "toggle": ("BUTTON", "1"),
            "xy": ("XY", None)}[kind], address


@pytest.mark.parametrize("mapping", LAYOUTS, ids=lambda p: p.stem)
def test_every_control_moves_a_running_node(mapping, running):
    controller = load_controller(mapping)
    r = running("--controller", str(mapping))
    for address, c in controls(REPO / "patches" / "touchosc" / f"{mapping.stem}.tosc").items():
        maps = sorted((m for m in controller.maps if m.address == address), key=lambda m: m.arg)
        # what TouchOSC sends: x (and y) scaled into the control's range; buttons pressed
        xs = [0.25, 0.75] if c["type"] == "XY" else [0.7 if c["type"] == "FADER" else 1.0]
        args = [lo + x * (hi - lo) for x, (lo, hi) in zip(xs, c["scales"])]
        r.client.send(address, *args)
        eventually(r, lambda: [played(r, controller, m, v) for m, v in zip(maps, args)])
