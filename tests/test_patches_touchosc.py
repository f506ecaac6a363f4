"""The TouchOSC layout: it is written as the TouchOSC editor writes a layout (compared with
one the editor saved), its addresses are the stock Simple layout's, it holds exactly the
shipped mapping's addresses with its input ranges, and every control's messages move a
running node."""

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
SIMPLE = REPO / "tests" / "data" / "hosts" / "touchosc" / "simple_mk2.tosc"
"""TouchOSC's stock Simple layout as the editor saved it (see SOURCE.md beside it)."""


def parse(path: Path) -> ET.Element:
    return ET.fromstring(zlib.decompress(path.read_bytes()))


def ours(mapping: Path) -> ET.Element:
    return parse(REPO / "patches" / "touchosc" / f"{mapping.stem}.tosc")


def name_of(key: str, lineage: list[ET.Element]) -> str:
    """What a PROPERTY partial of an OSC path reads: 'name', 'parent.name',
    'parent.parent.name' … of the node at the end of its lineage."""
    node = lineage[-1 - key.count("parent.")]
    return next(p.findtext("value") for p in node.find("properties")
                if p.findtext("key") == "name")


def controls(root: ET.Element) -> dict[str, dict]:
    """address → {type, buttonType, vars, scales, send, receive, triggers} of every OSC
    message, its path put together from its partials as TouchOSC does."""
    out = {}

    def walk(node: ET.Element, parents: list[ET.Element]) -> None:
        props = {p.findtext("key"): p.findtext("value") for p in node.find("properties")}
        for osc in node.findall("messages/osc"):
            parts = osc.findall("path/partial")
            address = "".join(p.findtext("value") if p.findtext("type") == "CONSTANT"
                              else name_of(p.findtext("value"), parents + [node]) for p in parts)
            args = osc.findall("arguments/partial")
            out[address] = {
                "type": node.get("type"), "buttonType": props.get("buttonType"),
                "vars": [a.findtext("value") for a in args],
                "scales": [(float(a.findtext("scaleMin")), float(a.findtext("scaleMax")))
                           for a in args],
                "send": osc.findtext("send"), "receive": osc.findtext("receive"),
                "triggers": [t.findtext("var") for t in osc.findall("triggers/trigger")],
            }
        for child in node.findall("children/node"):
            walk(child, parents + [node])

    walk(root.find("node"), [])
    return out


def shapes(root: ET.Element) -> dict[str, dict[str, set]]:
    """Per node type, the structure the file gives it: the sequence of a node's elements,
    (property key, property type, the property value's elements), value keys with their
    elements, each message's elements and every attribute name, gathered over all nodes."""
    out: dict[str, dict[str, set]] = {}
    for node in root.iter("node"):
        s = out.setdefault(node.get("type"), {k: set() for k in (
            "elements", "properties", "values", "messages", "partials", "attributes")})
        s["elements"].add(tuple(e.tag for e in node))
        s["attributes"].add(("node", *sorted(node.attrib)))
        for p in node.find("properties"):
            s["properties"].add((p.findtext("key"), p.get("type"),
                                 tuple(e.tag for e in p.find("value"))))
            s["attributes"].add(("property", *sorted(p.attrib)))
        for v in node.findall("values/value"):
            s["values"].add((v.findtext("key"), tuple(e.tag for e in v)))
        for osc in node.findall("messages/osc"):
            s["messages"].add(tuple(e.tag for e in osc))
            s["messages"].add(("connections", len(osc.findtext("connections"))))
            for part in osc.findall("path/partial") + osc.findall("arguments/partial"):
                s["partials"].add(tuple(e.tag for e in part))
    return out


@pytest.mark.parametrize("mapping", LAYOUTS, ids=lambda p: p.stem)
def test_layout_is_written_as_the_touchosc_editor_writes_one(mapping):
    real, mine = parse(SIMPLE), ours(mapping)
    assert (mine.tag, mine.attrib) == (real.tag, real.attrib) == ("lexml", {"version": "6"})
    assert [e.tag for e in mine] == [e.tag for e in real] == ["node"]
    assert [e.tag for e in mine.find("node")] == [e.tag for e in real.find("node")]  # includes
    expected, got = shapes(real), shapes(mine)
    for kind, shape in got.items():
        for key, found in shape.items():
            assert found <= expected[kind][key], (kind, key, found - expected[kind][key])
    for node in mine.iter("node"):  # properties sorted by key, as the editor writes them
        keys = [p.findtext("key") for p in node.find("properties")]
        assert keys == sorted(keys), node.get("type")


@pytest.mark.parametrize("mapping", LAYOUTS, ids=lambda p: p.stem)
def test_addresses_are_the_stock_simple_layouts(mapping):
    simple, layout = controls(parse(SIMPLE)), controls(ours(mapping))
    assert "/3/xy/x" in simple and "/3/xy" not in simple  # the pad sends each axis alone
    for address, c in layout.items():
        real = simple.get(address)
        assert real is not None, f"{address} is not an address of the Simple layout"
        for key in ("type", "buttonType", "vars", "triggers"):
            assert c[key] == real[key], (address, key)


@pytest.mark.parametrize("mapping", LAYOUTS, ids=lambda p: p.stem)
def test_layout_matches_the_mapping(mapping):
    controller = load_controller(mapping)
    layout = controls(ours(mapping))
    assert set(layout) == {m.address for m in controller.maps}
    for address, c in layout.items():
        maps = sorted((m for m in controller.maps if m.address == address), key=lambda m: m.arg)
        assert len(c["vars"]) == len(maps) and c["vars"] == c["triggers"]
        assert c["scales"] == [(m.lo_in, m.hi_in) for m in maps]
        assert (c["send"], c["receive"]) == ("1", "1")  # and feedback moves it


@pytest.mark.parametrize("mapping", LAYOUTS, ids=lambda p: p.stem)
def test_every_control_moves_a_running_node(mapping, running):
    controller = load_controller(mapping)
    r = running("--controller", str(mapping))
    for address, c in controls(ours(mapping)).items():
        maps = sorted((m for m in controller.maps if m.address == address), key=lambda m: m.arg)
        # what TouchOSC sends: x (or y) scaled into the control's range; buttons pressed
        xs = [0.25, 0.75] if c["type"] == "XY" else [0.7 if c["type"] == "FADER" else 1.0]
        args = [lo + x * (hi - lo) for x, (lo, hi) in zip(xs, c["scales"])]
        r.client.send(address, *args)
        eventually(r, lambda: [played(r, controller, m, v) for m, v in zip(maps, args)])
