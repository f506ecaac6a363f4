"""The Max for Live device and the OSC Send mapping: ranges from the registry, every control
wired to udpsend with an address the node answers, and the messages move a running node."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from livevace.control.mapping import load_controller
from livevace.control.service import DEFAULT_OSC_PORT
from livevace.params import BY_NAME
from livevace.patches.inputs import DIALS, gather
from test_control_support import presets, running  # noqa: F401
from test_patches_support import eventually, play_mapping

FOLDER = Path(__file__).resolve().parents[1] / "patches" / "ableton"


def amxd_patcher(data: bytes) -> dict[str, Any]:
    """The patcher inside a Max for Live device file (ampf header, then the patch JSON)."""
    assert data[:4] == b"ampf" and data[12:16] == b"meta"
    at = 20 + struct.unpack_from("<I", data, 16)[0]
    assert data[at:at + 4] == b"ptch"
    size = struct.unpack_from("<I", data, at + 4)[0]
    assert len(data) == at + 8 + size and data.endswith(b"\0")
    return json.loads(data[at + 8:-1].decode("utf-8"))


class Graph:
    """The boxes and patch lines of a patcher."""

    def __init__(self, document: dict[str, Any]) -> None:
        patcher = document["patcher"]
        self.boxes = {b["box"]["id"]: b["box"] for b in patcher["boxes"]}
        self.lines: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for line in patcher["lines"]:
            (src, out), (dst, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
            assert out < self.boxes[src]["numoutlets"] and inlet < self.boxes[dst]["numinlets"]
            self.lines.setdefault((src, out), []).append((dst, inlet))

    def by(self, **attrs: Any) -> list[dict[str, Any]]:
        return [b for b in self.boxes.values() if all(b.get(k) == v for k, v in attrs.items())]

    def text(self, box_id: str) -> str:
        return self.boxes[box_id].get("text", "")

    def hot(self, box: str, inlet: int) -> bool:
        """Whether a message into this inlet makes the box output (Max: the left inlet;
        gate and switch pass their data inlets and take control on the left)."""
        routes = self.text(box).split()[:1] in (["gate"], ["switch"])
        return inlet > 0 if routes else inlet == 0

    def reaches(self, start: str, outlet: int) -> list[list[str]]:
        """Every path (box texts) a message from an outlet travels to an udpsend."""
        paths = []
        stack = [([], dst) for dst, inlet in self.lines.get((start, outlet), [])
                 if self.hot(dst, inlet)]
        while stack:
            path, box = stack.pop()
            path = path + [self.text(box)]
            if self.text(box).startswith("udpsend"):
                paths.append(path)
                continue
            for out in range(self.boxes[box]["numoutlets"]):
                stack += [(path, dst) for dst, inlet in self.lines.get((box, out), [])
                          if self.hot(dst, inlet) and len(path) < 12]
        return paths


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph(json.loads((FOLDER / "livevace.maxpat").read_text(encoding="utf-8")))


def test_the_device_file_holds_the_patch_as_a_midi_effect():
    data = (FOLDER / "livevace.amxd").read_bytes()
    assert data[8:12] == b"mmmm"
    assert amxd_patcher(data) == json.loads((FOLDER / "livevace.maxpat").read_text())


def test_dials_have_the_registry_ranges_and_send_their_address(graph):
    dials = {b["varname"]: b for b in graph.by(maxclass="live.dial")}
    assert sorted(dials) == sorted(DIALS)
    for name, box in dials.items():
        p = BY_NAME[name]
        value = box["saved_attribute_attributes"]["valueof"]
        assert (value["parameter_mmin"], value["parameter_mmax"]) == (p.min, p.max)
        assert value["parameter_initial"] == [p.default]
        assert graph.reaches(box["id"], 0) == [[f"prepend {p.address}",
                                                f"udpsend 127.0.0.1 {DEFAULT_OSC_PORT}"]]


def test_scene_picks_wait_for_the_bar_or_beat_clock_then_send(graph):
    menu = graph.by(maxclass="live.menu", varname="scene")[0]
    assert menu["saved_attribute_attributes"]["valueof"]["parameter_enum"] == list(gather().scenes)
    paths = graph.reaches(menu["id"], 1)  # the symbol outlet
    assert paths and all(p[-2:] == [f"prepend {BY_NAME['scene'].address}",
                                    f"udpsend 127.0.0.1 {DEFAULT_OSC_PORT}"] for p in paths)
    assert all("gate" in p for p in paths)  # held until a clock (or "now") opens the gate
    clocks = [b for b in graph.boxes.values() if b.get("text", "").startswith("metro")]
    assert sorted(b["text"] for b in clocks) == ["metro 1n @quantize 1n @active 1",
                                                 "metro 4n @quantize 4n @active 1"]
    for clock in clocks:
        assert [p[-2:] for p in graph.reaches(clock["id"], 0)] == [[
            f"prepend {BY_NAME['scene'].address}", f"udpsend 127.0.0.1 {DEFAULT_OSC_PORT}"]]


def test_reset_button_sends_the_trigger(graph):
    button = graph.by(maxclass="live.button")[0]
    paths = graph.reaches(button["id"], 0)
    assert paths == [[BY_NAME["reset_cache"].address, f"udpsend 127.0.0.1 {DEFAULT_OSC_PORT}"]]


def test_what_the_device_sends_moves_a_running_node(graph, running):
    r = running()
    for name in DIALS:
        p = BY_NAME[name]
        r.client.send(p.address, p.min + 0.3 * (p.max - p.min))
    r.client.send(BY_NAME["reset_cache"].address)

    def dials_turned() -> None:
        for name in DIALS:
            p = BY_NAME[name]
            assert r.store.get(name) == pytest.approx(p.min + 0.3 * (p.max - p.min))

    eventually(r, dials_turned)
    assert r.store.take_trigger("reset_cache")
    menu = graph.by(maxclass="live.menu", varname="scene")[0]
    for scene in menu["saved_attribute_attributes"]["valueof"]["parameter_enum"]:
        r.client.send(BY_NAME["scene"].address, scene)
        r.client.sync()
        assert r.store.get("scene") == scene


def test_the_osc_send_mapping_drives_a_running_node(running):
    path = FOLDER / "osc-send.toml"
    controller = load_controller(path)
    play_mapping(running("--controller", str(path)), controller)
    assert {m.param for m in controller.maps} == {*DIALS, "scene", "reset_cache"}
