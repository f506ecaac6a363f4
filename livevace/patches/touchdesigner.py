"""TouchDesigner: a build script for the Textport that makes the `livevace` COMP, and the
README for those who build it by hand.

The script is three parts glued together: the PARAMS table (one spec per live registry
parameter: custom parameter style, names, range, default, choices), the runtime module
(`td_runtime.py`, parameters ⇄ OSC) as text, and the builder (`td_builder.py`).
"""

from __future__ import annotations

import inspect
import pprint
from typing import Any

from livevace.control.addresses import SENT, markdown_table
from livevace.control.values import describe_default, describe_range
from livevace.params import Param, format_prompts
from livevace.patches import td_builder, td_runtime
from livevace.patches.inputs import Inputs, label
from livevace.patches.readme import render
from livevace.patches.td_runtime import (CONNECTION_PAGE, FINDNDI, RECALL, SAVE, SAVENAME,
                                         SENDALL, td_name)

SCRIPT = "touchdesigner/livevace_td.py"
README = "touchdesigner/README.md"
PAGE_TITLES = {"vace": "VACE"}
LIST_AS_PARS = 4
"""Numeric lists up to this long get one custom parameter per element (outpaint's four
sides); longer ones are typed as text ("1000 750 500 250")."""


def _style(p: Param) -> tuple[str, int]:
    """(custom parameter style, how many parameters) for a registry kind."""
    if p.kind in ("floats", "ints") and p.max_len <= LIST_AS_PARS:
        return ("Float" if p.kind == "floats" else "Int"), p.max_len
    if p.kind == "strs":
        return "Str", p.max_len
    return {"float": "Float", "int": "Int", "bool": "Toggle", "enum": "Menu",
            "trigger": "Pulse"}.get(p.kind, "Str"), 1


def _default(p: Param, style: str, size: int) -> Any:
    value = p.default
    if p.kind == "prompts":
        return format_prompts(value)
    if p.kind in ("floats", "ints"):
        return list(value) if size > 1 else " ".join(str(v) for v in value)
    if p.kind == "strs":
        return (list(value) + [""] * size)[:size]
    return value


def param_spec(p: Param, inputs: Inputs) -> dict[str, Any]:
    style, size = _style(p)
    base = td_name(p.name)
    spec: dict[str, Any] = {
        "name": p.name, "address": p.address, "kind": p.kind,
        "page": PAGE_TITLES.get(p.group, p.group.title()), "label": label(p.name),
        "style": style, "pars": [base] if size == 1 else [f"{base}{i + 1}" for i in range(size)],
        "default": _default(p, style, size), "help": p.description,
    }
    if p.min is not None and p.max is not None:
        spec["min"], spec["max"] = p.min, p.max
    if p.choices:
        spec["choices"] = list(p.choices)
    if p.name == "scene":  # a menu of the presets, sent by the recall pulse, not on change
        spec.update(style="Menu", choices=list(inputs.scenes), default=inputs.scenes[0],
                    on_pulse=RECALL, save=inputs.command(p.address + "/save").address)
    return spec


def extra_pars(inputs: Inputs) -> list[dict[str, Any]]:
    """Custom parameters that are not registry parameters: the connection and the scene
    pulses (the runtime knows them by these names)."""
    def par(name: str, text: str, page: str, style: str, default: Any, helptext: str,
            **more: Any) -> dict:
        return {"pars": [name], "page": page, "style": style, "default": default,
                "label": text, "help": helptext, **more}

    conn = CONNECTION_PAGE
    return [
        par("Host", "Host", conn, "Str", "127.0.0.1", "Address of the machine running livevace."),
        par("Port", "Port", conn, "Int", inputs.osc_port, "livevace's OSC port (--osc-port).",
            min=1, max=65535),
        par("Feedbackport", "Feedback port", conn, "Int", inputs.feedback_port,
            "Port this COMP listens on; start livevace with --feedback <this machine>:<port>.",
            min=1, max=65535),
        par("Video", "Video", conn, "Menu", "ndi", "Where the picture comes from.",
            choices=["ndi", "spout"]),
        par("Ndisource", "NDI source", conn, "Str", "",
            "NDI source name, MACHINE (%s): filled by Find NDI source." % inputs.sender),
        par(FINDNDI, "Find NDI source", conn, "Pulse", None,
            "Pick the node's NDI source from those NDI lists, by its stream name."),
        par("Spoutsender", "Spout sender", conn, "Str", inputs.sender,
            "Spout sender (Windows) or Syphon server (macOS) name."),
        par(SENDALL, "Send all", conn, "Pulse", None, "Send every parameter to the node."),
        par(RECALL, "Scene recall", "Scene", "Pulse", None, "Recall the scene selected above."),
        par(SAVENAME, "Scene save name", "Scene", "Str", "",
            "Name to save the current state under."),
        par(SAVE, "Scene save", "Scene", "Pulse", None,
            "Save the node's current state as that scene."),
    ]


def settings(inputs: Inputs) -> dict[str, Any]:
    stats = next(c.address for c in SENT if c.address.startswith("/livevace/stats/"))
    return {
        "sender": inputs.sender, "feedback_port": inputs.feedback_port,
        "echo_hold": max(p.slew for p in inputs.params) + 0.5,
        "stats_prefix": stats.split("<")[0], "extra_pars": extra_pars(inputs),
    }


def _literal(value: Any) -> str:
    """A Python literal in ASCII (non-ASCII text as \\u escapes): the Textport may read the
    script in a legacy Windows encoding."""
    text = pprint.pformat(value, width=100, sort_dicts=False)
    return text.encode("ascii", "backslashreplace").decode("ascii")


def script(inputs: Inputs) -> str:
    params = [param_spec(p, inputs) for p in inputs.params]
    runtime = inspect.getsource(td_runtime)
    if "'''" in runtime or runtime.endswith("\\"):
        raise AssertionError("td_runtime.py must fit in a r'''…''' string")
    builder = inspect.getsource(td_builder)
    return (
        "# @generated by `livevace patches build` (livevace/patches/touchdesigner.py) from the\n"
        "# parameter registry (livevace/params.py), td_runtime.py and td_builder.py: do not edit.\n"
        '"""Builds the `livevace` COMP in TouchDesigner (2022 or newer).\n\n'
        "Run it from the Textport (Dialogs > Textport and DATs):\n\n"
        "    exec(open(r'C:/path/to/patches/touchdesigner/livevace_td.py',\n"
        "              encoding='utf-8').read())\n\n"
        "Generated by `livevace patches build` from livevace's parameter registry: do not\n"
        'edit; rebuild instead (see README.md beside this file).\n"""\n\n'
        f"PARAMS = {_literal(params)}\n\n"
        f"SETTINGS = {_literal(settings(inputs))}\n\n"
        f"RUNTIME = r'''{runtime}'''\n\n"
        "# --- the builder (livevace/patches/td_builder.py) ---\n\n"
        f"{builder}\n\n"
        "build(PARAMS, SETTINGS, RUNTIME)\n"
    )


def readme(inputs: Inputs) -> str:
    rows = []
    for p in inputs.params:
        s = param_spec(p, inputs)
        choices = " · ".join(s["choices"]) if p.name == "scene" else describe_range(p)
        default = s["default"] if s["style"] == "Menu" else describe_default(p)  # where it starts
        rows.append((", ".join(f"`{n}`" for n in s["pars"]), s["page"], s["style"],
                     choices, default, f"`{p.address}`"))
    header = ("Custom parameter", "Page", "Style", "Range / choices", "Default", "OSC address")
    return render("touchdesigner.md", inputs, par_table=markdown_table(header, rows))


def files(inputs: Inputs) -> dict[str, str]:
    return {SCRIPT: script(inputs), README: readme(inputs)}
