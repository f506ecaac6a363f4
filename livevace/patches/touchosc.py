"""TouchOSC (2022+): a `.tosc` layout with one control per address of each shipped TouchOSC
mapping (presets/controllers/touchosc*.toml), so the layout and the mapping cannot drift.

A `.tosc` file is zlib-compressed XML. This one is written in the format TouchOSC 1.5's
editor saves, <lexml version='6'> (the root node's <includes>, each message's <noDuplicates>
and ten-character <connections>; empty <messages> and <children> left out), checked against
a layout the editor saved (tests/data/hosts/touchosc/). It is a tree of <node>s, each with
<properties> (sorted by key, as the editor writes them), <values> and <messages>: one <osc>
per address a control sends, carrying the control's value `x` (or `y`) scaled to the
mapping's input range and receiving feedback on the same address. Controls are named after
TouchOSC's stock "Simple" layout (/1/fader1, /2/push3, the XY pad /3/xy sending /3/xy/x and
/3/xy/y), so the widget is read from the address; other addresses get the widget their
mapping mode implies.
"""

from __future__ import annotations

import re
import struct
import uuid
import zlib
from dataclasses import dataclass

from livevace.control.addresses import markdown_table
from livevace.control.mapping import Controller, Mapping
from livevace.params import format_prompts
from livevace.patches.inputs import Inputs, label
from livevace.patches.readme import render

README = "touchosc/README.md"
WIDGETS = {"fader": "FADER", "rotary": "RADIAL", "toggle": "TOGGLE", "push": "PUSH", "xy": "XY"}
NODE_TYPES = {"FADER": "FADER", "RADIAL": "RADIAL", "TOGGLE": "BUTTON", "PUSH": "BUTTON",
              "XY": "XY"}
BUTTON_TYPES = {"PUSH": 0, "TOGGLE": 1}
"""TouchOSC button types: 0 momentary (sends 1 on press, 0 on release), 1 toggle."""
SIZES = {"FADER": (70, 300), "RADIAL": (90, 90), "TOGGLE": (70, 70), "PUSH": (100, 70),
         "XY": (340, 340)}
COLORS = {"FADER": (0.2, 0.75, 1.0), "RADIAL": (0.2, 0.75, 1.0), "TOGGLE": (1.0, 0.75, 0.2),
          "PUSH": (0.85, 0.35, 1.0), "XY": (0.3, 1.0, 0.6)}
GAP, LABEL_H, ROW_W = 12, 36, 440
LEXML_VERSION = "6"
CONNECTIONS = "1" * 10
"""TouchOSC 1.5 routes a message to any of ten connections; this one uses all of them."""
XY_AXIS = re.compile(r"^(?P<pad>.*/xy\d*)/(?P<axis>[xy])$")
"""An XY pad's axis address (/3/xy/x): both axes belong to the pad /3/xy."""
NAMESPACE = uuid.UUID("6c697665-7661-6365-2d74-6f7563686f73")
"""uuid5 namespace of the node IDs: the same address always gets the same ID."""


@dataclass(frozen=True)
class Control:
    """One TouchOSC control: its address, the widget and the mappings that read it, in the
    order of the values (x, y) it moves."""

    address: str
    widget: str
    maps: tuple[Mapping, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses it sends (an XY pad may send each axis on its own)."""
        return tuple(dict.fromkeys(m.address for m in self.maps))

    @property
    def page(self) -> str:
        return self.address.strip("/").split("/")[0] if self.address.count("/") > 1 else ""


def widget(address: str, maps: tuple[Mapping, ...]) -> str:
    named = WIDGETS.get(re.sub(r"\d+$", "", address.rsplit("/", 1)[-1]))
    if named:
        return named
    if len(maps) > 1:
        return "XY"
    m = maps[0]
    if m.mode == "absolute" and m.p.kind == "bool":
        return "TOGGLE"
    if m.mode in ("toggle", "momentary", "trigger") or (m.mode == "bank" and m.index is not None):
        return "PUSH"
    return "FADER"


def controls(controller: Controller) -> list[Control]:
    by_node: dict[str, list[Mapping]] = {}
    for m in controller.maps:
        axis = XY_AXIS.match(m.address)
        by_node.setdefault(axis["pad"] if axis else m.address, []).append(m)
    return [Control(a, widget(a, tuple(ms)),
                    tuple(sorted(ms, key=lambda m: (m.address, m.arg))))
            for a, ms in by_node.items()]


def caption(m: Mapping, controller: Controller) -> str:
    if m.mode == "bank":
        if m.index is None:
            return "prompt bank"
        words = format_prompts(controller.bank[m.index]).split()
        return f"{m.index + 1}: " + " ".join(words[:4])
    if m.mode == "trigger" and m.value is not None:
        return f"{label(m.param)}: {m.value}"
    return label(m.param)


# --- XML ------------------------------------------------------------------------------------

def _cdata(text: str) -> str:
    return "<![CDATA[" + str(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _prop(kind: str, key: str, value: str) -> str:
    return f"<property type='{kind}'><key>{_cdata(key)}</key><value>{value}</value></property>"


def _value(key: str, default: str) -> str:
    return (f"<value><key>{_cdata(key)}</key><locked>0</locked>"
            f"<lockedDefaultCurrent>0</lockedDefaultCurrent><default>{_cdata(default)}</default>"
            f"<defaultPull>0</defaultPull></value>")


def _partial(kind: str, conversion: str, value: str, lo: float = 0, hi: float = 1) -> str:
    return (f"<partial><type>{kind}</type><conversion>{conversion}</conversion>"
            f"<value>{_cdata(value)}</value><scaleMin>{_num(lo)}</scaleMin>"
            f"<scaleMax>{_num(hi)}</scaleMax></partial>")


def osc_message(address: str, sends: list[tuple[str, Mapping]]) -> str:
    """Send the values (var, mapping) scaled into each mapping's input range when they
    change; receive feedback too."""
    triggers = "".join(f"<trigger><var>{_cdata(v)}</var><condition>ANY</condition></trigger>"
                       for v, _ in sends)
    arguments = "".join(_partial("VALUE", "FLOAT", v, m.lo_in, m.hi_in) for v, m in sends)
    return ("<osc><enabled>1</enabled><send>1</send><receive>1</receive><feedback>0</feedback>"
            f"<noDuplicates>0</noDuplicates><connections>{CONNECTIONS}</connections>"
            f"<triggers>{triggers}</triggers>"
            f"<path>{_partial('CONSTANT', 'STRING', address)}</path>"
            f"<arguments>{arguments}</arguments></osc>")


def osc_messages(c: Control) -> str:
    """One <osc> per address: x and y on one address, or each on its own (/3/xy/x)."""
    by_address: dict[str, list[tuple[str, Mapping]]] = {}
    for var, m in zip(("x", "y"), c.maps):
        by_address.setdefault(m.address, []).append((var, m))
    return "".join(osc_message(a, sends) for a, sends in by_address.items())


def node(kind: str, name: str, frame: tuple[int, int, int, int], color: tuple[float, ...],
         props: dict[str, str] | None = None, values: str = "", messages: str = "",
         children: str = "", includes: bool = False) -> str:
    """A node as the editor writes it: properties sorted by key, empty <messages> and
    <children> left out, <includes> on the root alone."""
    x, y, w, h = frame
    node_id = uuid.uuid5(NAMESPACE, f"{kind}:{name}:{x}:{y}")
    properties = {
        "name": _prop("s", "name", _cdata(name)),
        "frame": _prop("r", "frame", f"<x>{x}</x><y>{y}</y><w>{w}</w><h>{h}</h>"),
        "color": _prop("c", "color",
                       "".join(f"<{c}>{_num(v)}</{c}>" for c, v in zip("rgba", color))),
        **(props or {}),
    }
    body = "".join(properties[k] for k in sorted(properties))
    return (f"<node ID='{node_id}' type='{kind}'>" + ("<includes></includes>" if includes else "")
            + f"<properties>{body}</properties><values>{values}</values>"
            + (f"<messages>{messages}</messages>" if messages else "")
            + (f"<children>{children}</children>" if children else "") + "</node>")


def text_label(text: str, frame: tuple[int, int, int, int]) -> str:
    return node("LABEL", f"label {text}", frame, (0.85, 0.85, 0.85, 1.0),
                values=_value("text", text))


def control_node(c: Control, controller: Controller, frame: tuple[int, int, int, int]) -> str:
    props = {}
    if c.widget in BUTTON_TYPES:
        props["buttonType"] = _prop("i", "buttonType", str(BUTTON_TYPES[c.widget]))
    defaults = []
    for m, var in zip(c.maps, ("x", "y")):
        at = m.to_control(m.p.default, controller.bank)
        position = 0.0 if at is None else (at - m.lo_in) / (m.hi_in - m.lo_in)
        defaults.append(_value(var, _num(round(position, 6))))
    values = "".join(defaults) + _value("touch", "false")
    return node(NODE_TYPES[c.widget], c.address.strip("/"), frame, (*COLORS[c.widget], 1.0),
                props, values, osc_messages(c))


def layout(controller: Controller) -> str:
    """All controls on one screen: one column per page (/1/…, /2/…), each with a heading,
    rows of controls flowing left to right and a caption under every control."""
    pages: dict[str, list[Control]] = {}
    for c in controls(controller):
        pages.setdefault(c.page, []).append(c)
    items, left, bottom = [], GAP, 0
    for page, cs in pages.items():
        items.append(text_label(f"page {page}" if page else controller.name,
                                (left, GAP, ROW_W, LABEL_H)))
        x, y, row_h, right = left, GAP + LABEL_H + GAP, 0, left
        for c in cs:
            w, h = SIZES[c.widget]
            if x + w > left + ROW_W and x > left:
                x, y, row_h = left, y + row_h + GAP, 0
            items.append(control_node(c, controller, (x, y, w, h)))
            text = " · ".join(caption(m, controller) for m in c.maps)
            items.append(text_label(text, (x, y + h, max(w, 100), LABEL_H)))
            x, row_h, right = x + max(w, 100) + GAP, max(row_h, h + LABEL_H), max(right, x + w)
        bottom = max(bottom, y + row_h + GAP)
        left = max(left + ROW_W, right) + 3 * GAP
    root = node("GROUP", controller.name, (0, 0, left, bottom), (0.05, 0.05, 0.08, 1.0),
                {"background": _prop("b", "background", "1")}, _value("touch", "false"),
                children="".join(items), includes=True)
    return (f"<?xml version='1.0' encoding='UTF-8'?><lexml version='{LEXML_VERSION}'>"
            + root + "</lexml>")


def zlib_stored(data: bytes) -> bytes:
    """A zlib stream of stored (uncompressed) deflate blocks: any zlib reader opens it, and
    unlike compressed output it is the same bytes with every zlib build, so the committed
    layout can be compared byte for byte with a fresh build."""
    out = bytearray(b"\x78\x01")
    chunks = [data[i:i + 65535] for i in range(0, len(data), 65535)] or [b""]
    for i, chunk in enumerate(chunks):
        out += bytes([i == len(chunks) - 1]) + struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF)
        out += chunk
    return bytes(out + struct.pack(">I", zlib.adler32(data)))


def tosc_path(controller: Controller) -> str:
    return f"touchosc/{controller.path.stem}.tosc"


def readme(inputs: Inputs) -> str:
    rows = []
    for controller in inputs.touchosc:
        for c in controls(controller):
            rows.append((f"`{tosc_path(controller)}`", " · ".join(f"`{a}`" for a in c.addresses),
                         c.widget.lower(),
                         " · ".join(caption(m, controller) for m in c.maps)))
    files = ", ".join(f"`{tosc_path(c)}` (from `presets/controllers/{c.path.name}`)"
                      for c in inputs.touchosc)
    return render("touchosc.md", inputs, layouts=files,
                  control_table=markdown_table(("Layout", "Address", "Widget", "Moves"), rows),
                  controller=inputs.touchosc[0].path.stem if inputs.touchosc else "touchosc")


def files(inputs: Inputs) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    for controller in inputs.touchosc:
        out[tosc_path(controller)] = zlib_stored(layout(controller).encode("utf-8"))
    out[README] = readme(inputs)
    return out
