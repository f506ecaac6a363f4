"""Controller mappings: which incoming OSC address moves which parameter, and how.

A mapping file (`presets/controllers/*.toml`) describes one controller::

    name = "TouchOSC Simple"                 # shown in logs (default: the file name)
    description = "…"
    bank = ["a neon city", "a forest :: 0.7 | fog :: 0.3"]   # optional prompt bank
    port = "APC mini mk2"                    # optional: the MIDI ports (name contains this)
                                             #   whose /midi/ controls this file maps

    [[map]]
    address = "/1/fader1"         # incoming OSC address, exact (no wildcards, not /livevace/…)
    param = "vace_context_scale"  # registry name (`livevace osc --list`)
    in = [0.0, 1.0]               # optional: input range the control sends (default 0..1)
    out = [0.0, 2.0]              # optional: output range, inside the parameter's (default: all of it)
    curve = "linear"              # optional: linear | exp | log
    invert = false                # optional: 1 - x before the curve
    slew = 0.2                    # optional: glide time in seconds (default: the parameter's)
    mode = "absolute"             # optional: absolute | toggle | momentary | trigger | bank
    value = "pose"                # trigger only: what a press sets (default: fire a trigger parameter)
    index = 2                     # bank only: the bank entry (0-based) a press selects;
                                  #   without it the control scans the bank (0..1 → entries)
    arg = 0                       # optional: which message argument to read (XY pads: 0 = x, 1 = y)
    send = [0, 127]               # MIDI only: raw values feedback sends for the bottom and top
                                  #   of the range (LED colours; default the kind's full range)
    send_channel = 7              # MIDI only: the channel feedback goes out on (default the
                                  #   address's; some pads pick LED brightness by channel)

MIDI controls (`livevace run --midi NAME`) have addresses under /midi/: `/midi/<ch>/note/<n>`,
`/midi/<ch>/cc/<n>`, `/midi/<ch>/cc14/<n>` (a 14-bit MSB/LSB pair) and `/midi/<ch>/bend`,
channels 1..16, values 0..1 (livevace.control.midimsg). Everything else works as for OSC.
Without `port`, a file's MIDI controls answer every `--midi` port; with it, only the ports
whose names contain it (so two controllers sending the same CC numbers do not collide).

A file without `[[map]]` tables (an empty file, say) loads, maps nothing and says so in a
warning naming it.

Modes: `absolute` maps the control's value to the parameter (numbers through in → curve →
out; booleans on at ≥ 0.5; enums pick a choice by position). `toggle` flips a boolean on
every press (value ≥ 0.5); `momentary` holds a boolean on while pressed; `trigger` fires
a trigger parameter or sets `value` on a press; `bank` selects a prompt from `bank`
(`param` may be left out; it is always `prompt`). A message without arguments is a press.

Curves, for x in 0..1 (K = 4): linear x; exp (e^(Kx) − 1)/(e^K − 1) (fine control at the
low end); log ln(1 + (e^K − 1)x)/K (fine control at the high end). Every mapping is
invertible, so feedback moves motor faders and lights the buttons of the selected prompt
or control type.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import tomli_w

from livevace.control.midimsg import RANGE, MidiAddressError, is_midi, parse_address
from livevace.control.tomlfiles import PresetError, error_at, presets_root, read_toml
from livevace.errors import UserError
from livevace.params import Param, ParamError, Prompt, param, parse_prompts

log = logging.getLogger("livevace.osc")

CURVE_K = 4.0
CURVES = ("linear", "exp", "log")
MODES = ("absolute", "toggle", "momentary", "trigger", "bank")
KEYS = {"address", "param", "in", "out", "curve", "invert", "slew", "mode", "value", "index", "arg",
        "send", "send_channel"}
TOP_KEYS = {"name", "description", "bank", "port", "map"}
WILDCARD_CHARS = set("*?[]{}# ,")


def curve(name: str, x: float) -> float:
    if name == "exp":
        return math.expm1(CURVE_K * x) / math.expm1(CURVE_K)
    if name == "log":
        return math.log1p(math.expm1(CURVE_K) * x) / CURVE_K
    return x


def curve_inverse(name: str, y: float) -> float:
    inverse = {"exp": "log", "log": "exp"}.get(name, name)
    return curve(inverse, y)


@dataclass(frozen=True)
class Mapping:
    """One control → one parameter (see the module docstring for the fields)."""

    address: str
    param: str
    mode: str = "absolute"
    lo_in: float = 0.0
    hi_in: float = 1.0
    lo_out: float | None = None
    hi_out: float | None = None
    curve: str = "linear"
    invert: bool = False
    slew: float | None = None
    value: Any = None
    index: int | None = None
    arg: int = 0
    send: tuple[float, float] | None = None
    send_channel: int | None = None

    @property
    def p(self) -> Param:
        return param(self.param)

    def position(self, x: float) -> float:
        """Controller value → 0..1 through the input range and invert (no curve)."""
        t = min(max((x - self.lo_in) / (self.hi_in - self.lo_in), 0.0), 1.0)
        return 1.0 - t if self.invert else t

    def pressed(self, x: float) -> bool:
        return self.position(x) >= 0.5

    def unit(self, x: float) -> float:
        """Controller value → 0..1 after input range, invert and curve."""
        return curve(self.curve, self.position(x))

    def to_param(self, x: float) -> Any:
        """The parameter value an `absolute` control at x asks for (before coercion)."""
        y = self.unit(x)
        p = self.p
        if p.kind == "bool":
            return y >= 0.5
        if p.kind == "enum":
            return p.choices[min(int(y * len(p.choices)), len(p.choices) - 1)]
        if self.lo_out is not None and self.hi_out is not None:
            return self.lo_out + y * (self.hi_out - self.lo_out)
        return p.denormalise(y)

    def to_control(self, value: Any, bank: tuple[tuple[Prompt, ...], ...] = ()) -> float | None:
        """Where the control should sit (in its input range) for a parameter value: feedback."""
        p = self.p
        if self.mode == "bank":
            if self.index is None:
                return None
            y = 1.0 if value == bank[self.index] else 0.0
            return self.lo_in + y * (self.hi_in - self.lo_in)
        if self.mode == "trigger":
            if self.value is None:
                return None
            y = 1.0 if value == self.value else 0.0
        elif p.kind == "bool":
            y = 1.0 if value else 0.0
        elif p.kind == "enum":
            y = p.choices.index(value) / max(1, len(p.choices) - 1)
        elif p.kind in ("float", "int"):
            lo = self.lo_out if self.lo_out is not None else p.min
            hi = self.hi_out if self.hi_out is not None else p.max
            y = min(max((value - lo) / (hi - lo), 0.0), 1.0)
        else:
            return None
        if self.mode == "absolute":
            y = curve_inverse(self.curve, y)
            if self.invert:
                y = 1.0 - y
        return self.lo_in + y * (self.hi_in - self.lo_in)


@dataclass
class Controller:
    """The mappings and prompt bank of one controller file."""

    path: Path
    name: str
    maps: tuple[Mapping, ...]
    bank: tuple[tuple[Prompt, ...], ...] = ()
    mtime: float = 0.0
    port: str | None = None
    """The MIDI ports (by a part of their name) this file's /midi/ controls answer; None: all."""

    def answers(self, source: str | None) -> bool:
        """Whether a message from MIDI port `source` (None: OSC) reaches this file's controls."""
        return source is None or self.port is None or self.port.lower() in source.lower()


def resolve_controller(spec: str) -> Path:
    """A file path, or a name under presets/controllers/ ('touchosc' → touchosc.toml)."""
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return path
    return presets_root() / "controllers" / f"{spec}.toml"


def load_controller(path: Path) -> Controller:
    """Read and check a mapping file; PresetError 'file:line: …' on the first problem."""
    data, where = read_toml(path)
    for key in data:
        if key not in TOP_KEYS:
            raise error_at(path, where.line(key=key) if not isinstance(data[key], dict) else
                           where.line(key), f"unknown key {key!r} (expected {', '.join(sorted(TOP_KEYS))})")
    bank: list[tuple[Prompt, ...]] = []
    raw_bank = data.get("bank", [])
    if not isinstance(raw_bank, list):
        raise error_at(path, where.line(key="bank"), "bank must be a list of prompts")
    for entry in raw_bank:
        try:
            bank.append(parse_prompts(entry, "bank"))
        except ParamError as exc:
            raise error_at(path, where.line(key="bank"), str(exc)) from None
    maps = data.get("map", [])
    if not isinstance(maps, list):
        raise error_at(path, where.line("map"), "use [[map]] tables, one per control")
    out: list[Mapping] = []
    seen: dict[tuple[str, int], int] = {}
    port = data.get("port")
    if port is not None and (not isinstance(port, str) or not port.strip()):
        raise error_at(path, where.line(key="port"), "port must be (a part of) a MIDI port name")
    for i, entry in enumerate(maps):
        def fail(message: str, key: str | None = None, i: int = i) -> PresetError:
            return error_at(path, where.line("map", i, key), message)

        m = parse_mapping(entry, len(bank), fail)
        if (m.address, m.arg) in seen:
            raise fail(f"{m.address} (argument {m.arg}) is already mapped at line "
                       f"{where.line('map', seen[(m.address, m.arg)])}", "address")
        seen[(m.address, m.arg)] = i
        out.append(m)
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise error_at(path, where.line(key="name"), "name must be text")
    return Controller(path, name, tuple(out), tuple(bank), _mtime(path), port)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _number(value: Any, what: str, fail: Callable[..., UserError], key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"{what} must be a finite number", key)
    return float(value)


def _pair(entry: dict, key: str, fail: Callable[..., UserError]) -> tuple[float, float] | None:
    if key not in entry:
        return None
    v = entry[key]
    if not isinstance(v, list) or len(v) != 2:
        raise fail(f"{key} must be [low, high]", key)
    lo, hi = (_number(x, key, fail, key) for x in v)
    if lo == hi:
        raise fail(f"{key}: low and high are equal", key)
    return lo, hi


def parse_mapping(entry: Any, bank_size: int, fail: Callable[..., UserError]) -> Mapping:
    """Check one `[[map]]` table; `fail(message, key)` makes the error raised."""
    if not isinstance(entry, dict):
        raise fail("each [[map]] must be a table")
    unknown = set(entry) - KEYS
    if unknown:
        raise fail(f"unknown key {sorted(unknown)[0]!r} (expected {', '.join(sorted(KEYS))})",
                   sorted(unknown)[0])
    address = entry.get("address")
    if not isinstance(address, str) or not address.startswith("/") or \
            WILDCARD_CHARS & set(address):
        raise fail("address must be an OSC address like /1/fader1 (no wildcards or spaces)",
                   "address")
    if address.startswith("/livevace/") or address == "/livevace":
        raise fail("/livevace/… addresses are the node's own; map your controller's address",
                   "address")
    send, send_channel = _midi_keys(entry, address, fail)
    mode = entry.get("mode", "absolute")
    if mode not in MODES:
        raise fail(f"mode {mode!r} is not one of {', '.join(MODES)}", "mode")
    name = entry.get("param", "prompt" if mode == "bank" else None)
    if name is None:
        raise fail("param is missing (the registry name this control moves)")
    try:
        p = param(str(name))
    except ParamError as exc:
        raise fail(str(exc), "param") from None
    if p.readonly:
        raise fail(f"{name} is read only", "param")
    crv = entry.get("curve", "linear")
    if crv not in CURVES:
        raise fail(f"curve {crv!r} is not one of {', '.join(CURVES)}", "curve")
    invert = entry.get("invert", False)
    if not isinstance(invert, bool):
        raise fail("invert must be true or false", "invert")
    slew = entry.get("slew")
    if slew is not None and _number(slew, "slew", fail, "slew") < 0:
        raise fail("slew must be >= 0 seconds", "slew")
    arg = entry.get("arg", 0)
    if isinstance(arg, bool) or not isinstance(arg, int) or not 0 <= arg < 16:
        raise fail("arg must be an argument position 0..15", "arg")
    lo_in, hi_in = _pair(entry, "in", fail) or (0.0, 1.0)
    out = _pair(entry, "out", fail)
    if out is not None:
        if p.kind not in ("float", "int") or mode != "absolute":
            raise fail("out applies to numeric parameters in absolute mode", "out")
        if not all(p.min <= v <= p.max for v in out):
            raise fail(f"out {list(out)} leaves {name}'s range {p.min:g}..{p.max:g}", "out")
    value, index = entry.get("value"), entry.get("index")
    if value is not None and mode != "trigger":
        raise fail("value applies to mode = \"trigger\"", "value")
    if index is not None and mode != "bank":
        raise fail("index applies to mode = \"bank\"", "index")
    if mode == "absolute" and p.kind not in ("float", "int", "bool", "enum"):
        raise fail(f"{name} ({p.kind}) cannot follow a fader; use mode = \"trigger\" with a value",
                   "mode")
    if mode in ("toggle", "momentary") and p.kind != "bool":
        raise fail(f"mode {mode} needs an on/off parameter; {name} is {p.kind}", "mode")
    if mode == "trigger":
        if value is None and p.kind != "trigger":
            raise fail(f"{name} is not a trigger: give the value a press sets", "mode")
        if value is not None:
            try:
                value = p.coerce_noted(
                    value, lambda line: log.warning("%s", fail(line, "value")))
            except ParamError as exc:
                raise fail(str(exc), "value") from None
    if mode == "bank":
        if name != "prompt":
            raise fail("mode bank selects prompts: param must be prompt", "param")
        if bank_size == 0:
            raise fail("mode bank needs a bank = [...] list of prompts in this file", "mode")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                                  or not 0 <= index < bank_size):
            raise fail(f"index must be 0..{bank_size - 1} (the bank has {bank_size} prompts)",
                       "index")
    return Mapping(address, p.name, mode, lo_in, hi_in, out[0] if out else None,
                   out[1] if out else None, crv, invert, slew, value, index, arg, send,
                   send_channel)


def _midi_keys(entry: dict, address: str,
               fail: Callable[..., UserError]) -> tuple[tuple[float, float] | None, int | None]:
    """Check a /midi/ address and the keys only MIDI controls have: (send, send_channel)."""
    if not is_midi(address):
        for key in ("send", "send_channel"):
            if key in entry:
                raise fail(f"{key} applies to MIDI controls (/midi/… addresses)", key)
        return None, None
    try:
        control = parse_address(address)
    except MidiAddressError as exc:
        raise fail(str(exc), "address") from None
    if entry.get("arg", 0) != 0:
        raise fail("a MIDI control sends one value: leave arg out", "arg")
    send = entry.get("send")
    if send is not None:
        top = RANGE[control.kind]
        if not isinstance(send, list) or len(send) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top for v in send):
            raise fail(f"send must be [off, on] whole numbers 0..{top} for {control.kind}", "send")
        send = (float(send[0]), float(send[1]))
    channel = entry.get("send_channel")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int)
                                or not 1 <= channel <= 16):
        raise fail("send_channel must be a MIDI channel 1..16", "send_channel")
    return send, channel


def mapping_entry(m: Mapping) -> dict[str, Any]:
    """The TOML table of a mapping (defaults left out), as learn mode writes it."""
    entry: dict[str, Any] = {"address": m.address, "param": m.param}
    if m.mode != "absolute":
        entry["mode"] = m.mode
    if (m.lo_in, m.hi_in) != (0.0, 1.0):
        entry["in"] = [m.lo_in, m.hi_in]
    if m.curve != "linear":
        entry["curve"] = m.curve
    if m.invert:
        entry["invert"] = True
    if m.slew is not None:
        entry["slew"] = m.slew
    if m.arg:
        entry["arg"] = m.arg
    if m.send is not None:
        entry["send"] = [int(v) for v in m.send]
    if m.send_channel is not None:
        entry["send_channel"] = m.send_channel
    return entry


def write_learned(path: Path, m: Mapping, replacing: str | None = None) -> None:
    """Add (or replace) the mapping of `m.address` in a mapping file, keeping the rest of
    the file (comments included) as it was; the table of address `replacing` goes too (a
    CC learned as 7-bit that turned out to be a 14-bit fader)."""
    block = "[[map]]\n" + tomli_w.dumps(mapping_entry(m))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'# Controller mappings written by livevace learn mode; edit freely.\n'
                        f'name = "{path.stem}"\n\n{block}', encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    data, where = read_toml(path)
    lines = text.splitlines(keepends=True)
    for i, entry in reversed(list(enumerate(data.get("map", [])))):
        if entry.get("address") in (m.address, replacing) and entry.get("arg", 0) == m.arg:
            start = where.line("map", i) - 1
            n = [k for k, (name, s) in enumerate(where.sections) if s == start][0]
            end = where.sections[n + 1][1] if n + 1 < len(where.sections) else len(lines)
            del lines[start:end]
    text = "".join(lines)
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + "\n" + block, encoding="utf-8")


def report_loaded(c: Controller) -> None:
    """One line per file loaded. A file without mappings (an empty one, say) is valid, the
    start of a learn file, but it maps nothing: a warning, so that an edit emptying a file
    in use cannot drop all its mappings unnoticed."""
    if c.maps:
        log.info("controller %s: %d mappings from %s", c.name, len(c.maps), c.path)
    else:
        log.warning("controller %s: %s has no [[map]] tables, so none of its controls is "
                    "mapped", c.name, c.path)


@dataclass
class ControllerSet:
    """The loaded controller files; a file that fails to (re)load keeps its previous version."""

    controllers: list[Controller] = field(default_factory=list)

    def load(self, paths: Iterable[Path]) -> None:
        """First load: every file must be valid (the CLI reports the first error)."""
        self.controllers = [load_controller(p) for p in paths]

    def reload_changed(self) -> list[Path]:
        """Reload the files whose modification time changed; return those reloaded."""
        done = []
        for i, old in enumerate(self.controllers):
            if _mtime(old.path) != old.mtime:
                done.append(old.path)
                self.reload(i)
        return done

    def reload(self, i: int) -> bool:
        old = self.controllers[i]
        try:
            self.controllers[i] = load_controller(old.path)
        except PresetError as exc:
            old.mtime = _mtime(old.path)  # do not retry until it changes again
            log.warning("%s; keeping the previous mappings of %s", exc, old.name)
            return False
        report_loaded(self.controllers[i])
        return True

    def add_or_reload(self, path: Path) -> None:
        for i, c in enumerate(self.controllers):
            if c.path == path:
                self.reload(i)
                return
        self.controllers.append(load_controller(path))

    def mappings(self) -> list[tuple[Mapping, Controller]]:
        """All mappings; for an address mapped in two files of the same port the later
        file wins."""
        by_key: dict[tuple[str, int, str | None], tuple[Mapping, Controller]] = {}
        for c in self.controllers:
            for m in c.maps:
                by_key[(m.address, m.arg, c.port)] = (m, c)
        return list(by_key.values())
