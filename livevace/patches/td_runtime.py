"""Runs inside TouchDesigner as the `runtime` Text DAT of the livevace COMP (copied there by
the generated build script): custom parameters <-> OSC, both ways (ASCII only: the
Textport may read the build script in a legacy Windows encoding).

Standard library only: TouchDesigner's Python has no livevace. The pure functions
(`outgoing`, `incoming`, `EchoGuard`) carry the logic and are tested against a real node;
the `on_*` glue at the bottom only reads and writes TouchDesigner parameters.

A spec is one entry of the build script's PARAMS table: the registry name, OSC address and
kind of a parameter, the style of its custom parameter(s) and their names in `pars`.
"""

from __future__ import annotations

import socket
import time

RECALL = "Scenerecall"
"""Pulse that recalls the scene selected in the Scene menu."""
SAVE = "Scenesave"
"""Pulse that saves the node's current state as scene SAVENAME."""
SAVENAME = "Scenesavename"
SENDALL = "Sendall"
"""Pulse that sends every parameter (after the node restarted)."""
FINDNDI = "Findndi"
"""Pulse that looks for the node's NDI source among those NDI lists."""
CONNECTION_PAGE = "Connection"


def td_name(name: str) -> str:
    """A registry name as a TouchDesigner custom parameter name (capital, then lowercase
    letters and digits only): vace_context_scale -> Vacecontextscale."""
    flat = "".join(ch for ch in name.lower() if ch.isalnum())
    return flat[:1].upper() + flat[1:]


def _numbers(text: str, integer: bool) -> list:
    out = []
    for word in str(text).replace(",", " ").split():
        try:
            number = float(word)
        except ValueError:
            continue
        out.append(int(round(number)) if integer else number)
    return out


def _text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else "%g" % number


def outgoing(spec: dict, values: list) -> list:
    """The OSC messages [(address, args)] that carry a parameter's custom values (one
    value per name in spec['pars']); [] when there is nothing valid to send."""
    kind, address = spec["kind"], spec["address"]
    if kind == "trigger":
        return [(address, [])]
    if kind in ("floats", "ints"):
        integer = kind == "ints"
        if spec["style"] == "Str":
            numbers = _numbers(values[0], integer)
        else:
            numbers = [int(round(v)) if integer else float(v) for v in values]
        return [(address, numbers)] if numbers else []
    if kind == "strs":
        return [(address, [str(v) for v in values])]  # several args: paths keep their spaces
    value = values[0]
    if kind == "float":
        return [(address, [float(value)])]
    if kind == "int":
        return [(address, [int(round(value))])]
    if kind == "bool":
        return [(address, [1 if value else 0])]
    text = str(value)
    if kind == "prompts" and not text.strip():
        return []
    return [(address, [text])]


def incoming(spec: dict, args: list):
    """The custom values for an echoed `/livevace/<name> args...`, or None when the
    message cannot be shown (a trigger, no arguments)."""
    kind, size = spec["kind"], len(spec["pars"])
    if kind == "trigger" or not args:
        return None
    if kind in ("floats", "ints"):
        if spec["style"] == "Str":
            return [" ".join(_text(a) for a in args)]
        numbers = [int(a) if kind == "ints" else float(a) for a in args]
        return numbers if len(numbers) == size else None
    if kind == "strs":
        texts = [str(a) for a in args][:size]
        return texts + [""] * (size - len(texts))
    value = args[0]
    if kind == "float":
        return [float(value)]
    if kind == "int":
        return [int(value)]
    if kind == "bool":
        return [bool(value)]
    return [str(value)]


def _machine(name: str) -> str:
    """The first label of a machine name, case-folded: MACBOOK.LOCAL and macbook match."""
    return name.split(".")[0].strip().lower()


def ndi_source(sources: list, sender: str, host: str = ""):
    """The NDI source that is the node's sender among the names NDI lists, or None.

    NDI names a source 'MACHINE (stream)' with the machine as NDI reports it (STUDIO-PC on
    Windows, MACBOOK.LOCAL on macOS), so the source is found by its stream name, never by
    guessing the machine part. When several machines send that stream, this machine's
    (`host`) is preferred, else the first listed."""
    suffix = " (%s)" % sender
    found = [s for s in sources if s.endswith(suffix) and s[:-len(suffix)].strip()]
    here = [s for s in found if host and _machine(s[:-len(suffix)]) == _machine(host)]
    return (here or found or [None])[0]


class EchoGuard:
    """Stops the feedback loop between TouchDesigner and the node.

    The node echoes every change, including those TouchDesigner made, and glides
    continuous values, so the echoes of a fader move arrive late and in steps. Echoes of a
    parameter TouchDesigner sent within `hold` seconds are ignored, and the change an echo
    makes (the next one TouchDesigner reports for that parameter) is not sent back."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.sent_at: dict = {}
        self.received: dict = {}

    def should_send(self, name: str, values: list, now: float) -> bool:
        if self.received.pop(name, None) == list(values):
            return False
        self.sent_at[name] = now
        return True

    def should_apply(self, name: str, values: list, now: float) -> bool:
        if now - self.sent_at.get(name, float("-inf")) < self.hold:
            return False
        self.received[name] = list(values)
        return True


# --- TouchDesigner glue (called by the Parameter Execute and OSC In callbacks) -------------

_GUARD = None


def _guard(comp) -> EchoGuard:
    global _GUARD
    if _GUARD is None:
        _GUARD = EchoGuard(comp.fetch("livevace_settings")["echo_hold"])
    return _GUARD


def _specs(comp) -> list:
    return comp.fetch("livevace_params")


def _spec_of_par(comp, par_name: str):
    for spec in _specs(comp):
        if par_name in spec["pars"]:
            return spec
    return None


def _values(comp, spec: dict) -> list:
    return [getattr(comp.par, name).eval() for name in spec["pars"]]


def _send(comp, messages: list) -> None:
    out = comp.op("oscout")
    for address, args in messages:
        out.sendOSC(address, args)


def send_param(comp, spec: dict, force: bool = False) -> None:
    values = _values(comp, spec)
    if force or _guard(comp).should_send(spec["name"], values, time.monotonic()):
        _send(comp, outgoing(spec, values))


def on_value_change(comp, par) -> None:
    spec = _spec_of_par(comp, par.name)
    if spec is not None and not spec.get("on_pulse"):
        send_param(comp, spec)


def find_ndi(comp) -> bool:
    """Point the NDI source parameter at the node's sender if the NDI In TOP lists it."""
    sources = list(getattr(comp.op("ndi_in").par.name, "menuNames", None) or [])
    sender = comp.fetch("livevace_settings")["sender"]
    found = ndi_source(sources, sender, socket.gethostname())
    if found is None:
        print("livevace: no NDI source '(%s)' listed yet; start the node with --sink ndi, "
              "then pulse Find NDI source" % sender)
        return False
    comp.par.Ndisource = found
    return True


def on_pulse(comp, par) -> None:
    if par.name == FINDNDI:
        find_ndi(comp)
        return
    if par.name == SENDALL:
        for spec in _specs(comp):
            if spec["kind"] != "trigger" and not spec.get("on_pulse"):
                send_param(comp, spec, force=True)
        return
    for spec in _specs(comp):
        if par.name == RECALL and spec.get("on_pulse") == RECALL:
            send_param(comp, spec, force=True)
        elif par.name == SAVE and spec.get("save"):
            name = getattr(comp.par, SAVENAME).eval().strip()
            if name:
                _send(comp, [(spec["save"], [name])])
        elif spec["kind"] == "trigger" and par.name in spec["pars"]:
            _send(comp, outgoing(spec, []))


def on_osc(comp, address: str, args: list) -> None:
    """Feedback from the node: statistics into the stats table, values into parameters."""
    stats = comp.fetch("livevace_settings")["stats_prefix"]
    if address.startswith(stats):
        table = comp.op("stats")
        key = address[len(stats):]
        row = table.row(key)
        if row is None:
            table.appendRow([key, args[0] if args else ""])
        else:
            row[1].val = args[0] if args else ""
        return
    for spec in _specs(comp):
        if spec["address"] != address:
            continue
        values = incoming(spec, list(args))
        if values is None or values == _values(comp, spec) or \
                not _guard(comp).should_apply(spec["name"], values, time.monotonic()):
            return
        for name, value in zip(spec["pars"], values):
            par = getattr(comp.par, name)
            if spec["style"] == "Menu" and value not in par.menuNames:
                continue
            par.val = value
        return
