"""Max patchers as JSON (`.maxpat`) and Max for Live device files (`.amxd`).

A patcher is {"patcher": {..., "boxes": [{"box": {...}}], "lines": [{"patchline": ...}]}}.
Max re-creates every object from its text when it loads a patch, so the inlet and outlet
counts written here only have to be right for the lines to attach; `OBJECTS` lists them
for the objects the livevace device uses.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

OBJECTS: dict[str, tuple[int, list[str]]] = {
    # first word of a newobj box → (inlets, outlet types)
    "udpsend": (1, []),
    "prepend": (1, [""]),
    "zl": (2, ["", ""]),
    "gate": (2, [""]),
    "switch": (4, [""]),  # switch 3: a control inlet and three data inlets
    "metro": (2, ["bang"]),
    "+": (2, ["int"]),
    "midiin": (1, ["int"]),
    "midiout": (1, []),
    "live.thisdevice": (1, ["bang", "int", "int"]),
}
TRIGGER_OUTLETS = {"b": "bang", "i": "int", "f": "float", "s": "", "l": ""}
UI: dict[str, tuple[int, list[str]]] = {
    "live.dial": (1, ["", "float"]),
    "live.menu": (1, ["", "", "float"]),
    "live.button": (1, [""]),
    "message": (2, [""]),
    "comment": (1, []),
}
PARAMETER_TYPES = {"float": 0, "int": 1, "enum": 2}
AMXD_TYPES = {"audio_effect": b"aaaa", "midi_effect": b"mmmm", "instrument": b"iiii"}


@dataclass
class Patcher:
    """Boxes and patch lines, with ids obj-1, obj-2… in creation order (deterministic)."""

    boxes: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, list[Any]] = field(default_factory=dict)

    def _add(self, maxclass: str, inlets: int, outlets: list[str], rect: list[float],
             **attrs: Any) -> str:
        box_id = f"obj-{len(self.boxes) + 1}"
        box = {"id": box_id, "maxclass": maxclass, "numinlets": inlets,
               "numoutlets": len(outlets), "patching_rect": rect, **attrs}
        if outlets:
            box["outlettype"] = outlets
        self.boxes.append({"box": box})
        return box_id

    def obj(self, text: str, x: float, y: float, width: float = 120.0) -> str:
        words = text.split()
        if words[0] == "t":  # trigger: one outlet per argument
            inlets, outlets = 1, [TRIGGER_OUTLETS[w] for w in words[1:]]
        else:
            inlets, outlets = OBJECTS[words[0]]
        return self._add("newobj", inlets, outlets, [x, y, width, 22.0], text=text)

    def ui(self, maxclass: str, x: float, y: float, w: float, h: float,
           presentation: list[float] | None = None, **attrs: Any) -> str:
        inlets, outlets = UI[maxclass]
        if presentation is not None:
            attrs.update(presentation=1, presentation_rect=presentation)
        return self._add(maxclass, inlets, outlets, [x, y, w, h], **attrs)

    def parameter(self, maxclass: str, name: str, short: str, kind: str, rect: list[float],
                  presentation: list[float], **value: Any) -> str:
        """A Live parameter (automatable, MIDI-mappable): live.dial / live.menu / live.button."""
        valueof = {"parameter_longname": name, "parameter_shortname": short,
                   "parameter_type": PARAMETER_TYPES[kind], **value}
        box_id = self.ui(maxclass, *rect, presentation, parameter_enable=1, varname=name,
                         saved_attribute_attributes={"valueof": valueof})
        self.parameters[box_id] = [name, short, 0]
        return box_id

    def connect(self, source: str, outlet: int, destination: str, inlet: int = 0) -> None:
        self.lines.append({"patchline": {"source": [source, outlet],
                                         "destination": [destination, inlet]}})

    def document(self, width: float, height: float, device_width: float) -> dict[str, Any]:
        return {"patcher": {
            "fileversion": 1,
            "appversion": {"major": 8, "minor": 6, "revision": 0, "architecture": "x64",
                           "modernui": 1},
            "classnamespace": "box",
            "rect": [100.0, 100.0, width, height],
            "openinpresentation": 1,
            "devicewidth": device_width,
            "default_fontsize": 10.0,
            "default_fontname": "Arial",
            "boxes": self.boxes,
            "lines": self.lines,
            "parameters": dict(self.parameters),
            "dependency_cache": [],
            "autosave": 0,
        }}


def maxpat(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def amxd(document: dict[str, Any], device: str = "midi_effect") -> bytes:
    """A Max for Live device file: the 'ampf' header, then the patcher JSON (0-terminated)."""
    body = maxpat(document).encode("utf-8") + b"\0"
    return (b"ampf" + struct.pack("<I", 4) + AMXD_TYPES[device]
            + b"meta" + struct.pack("<I", 4) + b"\0\0\0\0"
            + b"ptch" + struct.pack("<I", len(body)) + body)
