"""Controller mappings at run time: routes for the router, feedback to the controls,
hot reload of edited files, and learn mode.

Learn mode: `/livevace/learn <param> [mode]` arms it; the next message to any address
outside /livevace/ becomes a mapping of that address to the parameter, written into the
learn file (kept as the user wrote it, one `[[map]]` table added) and active at once.
Any OSC sender can do that, so the learn file is never a shipped one (`learn_target`); it is
loaded at start when it exists, so what was learned yesterday works today.

A 14-bit fader sends each position as CC n (0..31, the MSB) followed by CC n + 32 (the
LSB). Learn maps the MSB at once, as `/midi/<ch>/cc/<n>`; when the next message from the
same MIDI port is that CC's LSB on the same channel, the mapping becomes
`/midi/<ch>/cc14/<n>` (the file's cc table replaced by a cc14 one). Any other message from
that port first (a 7-bit fader sends CC n again) leaves it a 7-bit CC.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from livevace.control.mapping import (Controller, ControllerSet, Mapping, parse_mapping,
                                      report_loaded, write_learned)
from livevace.control.midimsg import MidiControl, is_midi, parse_address
from livevace.control.patterns import has_wildcards
from livevace.control.ratelog import shorten
from livevace.control.router import Route, Router, encode
from livevace.control.tomlfiles import PresetError, presets_root, shipped, user_dir
from livevace.control.replies import Replies
from livevace.errors import UserError
from livevace.params import ParamError, ParamStore, param

log = logging.getLogger("livevace.osc")

RELOAD_EVERY = 1.0
"""Seconds between checks of the mapping files for edits."""
LEARNED = "learned.toml"
"""The learn file in the user's controller folder, unless one of the user's is named."""


def control_value(address: str, args: list[Any], arg: int) -> float:
    """The number a control sent in argument `arg` (no arguments: a press, 1.0)."""
    if not args:
        return 1.0
    if arg >= len(args):
        raise ParamError(f"{address}: no argument {arg} (got {len(args)})")
    v = args[arg]
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    raise ParamError(f"{address}: {str(v)[:40]!r} is not a control value")


def learned(address: str, name: str, mode: str) -> Mapping:
    """The mapping learn mode writes, checked by the rules of a mapping file: a table the
    loader refused would break the file for the next start."""
    return parse_mapping({"address": address, "param": name, "mode": mode}, 0,
                         lambda message, key=None: ParamError(f"learn: {message}"))


def learn_target(paths: list[Path], given: Path | None) -> Path:
    """Where learn mode saves: `given` (--learn-file), else the first controller file when
    it is the user's own, else learned.toml in the user's controller folder
    ($LIVEVACE_CONTROLLERS_DIR). UserError when `given` is a shipped file."""
    if given is not None:
        if shipped(given):
            raise UserError(f"--learn-file {given}: learn mode never writes into the shipped "
                            f"presets ({presets_root()}); name a file of your own, or leave "
                            f"the option out to save in {user_dir('controllers') / LEARNED}")
        return given
    if paths and not shipped(paths[0]):
        return paths[0]
    return user_dir("controllers") / LEARNED


class Controllers:
    """The loaded mappings wired into a router."""

    def __init__(self, store: ParamStore, router: Router, paths: list[Path],
                 learn_file: Path) -> None:
        self.store = store
        self.router = router
        self.set = ControllerSet()
        extra = learn_file.is_file() and learn_file.resolve() not in {p.resolve() for p in paths}
        self.set.load([*paths, learn_file] if extra else paths)
        self.learn_file = learn_file
        self.learning: tuple[str, str, Replies] | None = None
        self._pairing: tuple[Mapping, str, Replies] | None = None
        """A CC 0..31 just learned, the MIDI port it came from and the learn reply: while
        set, the port's next message says whether it is a 14-bit fader (`paired`)."""
        self._bank_pos: dict[str, int] = {}
        self.cc14: frozenset[tuple[int, int]] = frozenset()
        """(channel, MSB) of the 14-bit MIDI controls mapped: the MIDI input pairs them."""
        self._checked = time.monotonic()
        router.intercept = self._intercept
        router.add("/livevace/learn", self._learn_route)
        router.add("/livevace/learn/cancel", self._cancel_route)
        self.rewire()
        for c in self.set.controllers:
            report_loaded(c)

    # --- routes ---------------------------------------------------------------------------
    def rewire(self) -> None:
        by_address: dict[str, list[tuple[Mapping, Controller]]] = {}
        for m, c in self.set.mappings():
            by_address.setdefault(m.address, []).append((m, c))
        self.cc14 = frozenset((control.channel, control.number) for control in
                              (parse_address(a) for a in by_address if is_midi(a))
                              if control.kind == "cc14")
        self.router.set_controller_routes({a: self._route(ms) for a, ms in by_address.items()})

    def _route(self, maps: list[tuple[Mapping, Controller]]) -> Route:
        def route(address: str, args: list[Any], reply: Replies) -> None:
            for m, c in maps:
                if c.answers(reply.source):
                    self.apply(m, c, control_value(address, args, m.arg))

        return route

    def apply(self, m: Mapping, c: Controller, x: float) -> None:
        """What a control at x does to its parameter, by the mapping's mode."""
        write = self.router.write
        if m.mode == "absolute":
            write(m.param, m.to_param(x), slew=m.slew)
        elif m.mode == "momentary":
            write(m.param, m.pressed(x))
        elif not m.pressed(x) and not (m.mode == "bank" and m.index is None):
            return
        elif m.mode == "toggle":
            write(m.param, not self.store.get(m.param))
        elif m.mode == "trigger":
            write(m.param, True if m.value is None else m.value)
        elif m.index is not None:
            write("prompt", c.bank[m.index])
        else:  # a fader scanning the bank: only a new entry changes the prompt
            i = min(int(m.unit(x) * len(c.bank)), len(c.bank) - 1)
            if self._bank_pos.get(m.address) != i:
                self._bank_pos[m.address] = i
                write("prompt", c.bank[i])

    def feedback(self, name: str, value: Any) -> list[tuple[str, list[Any]]]:
        """OSC messages that put the controls mapped to `name` where the value now is."""
        touched: dict[str, list[tuple[Mapping, Controller]]] = {}
        all_maps = [(m, c) for m, c in self.set.mappings() if not is_midi(m.address)]
        for m, c in all_maps:
            if m.param == name:
                touched.setdefault(m.address, [])
        if not touched:
            return []
        for m, c in all_maps:
            if m.address in touched:
                touched[m.address].append((m, c))
        out = []
        for address, maps in touched.items():
            args: list[Any] = [None] * (max(m.arg for m, _ in maps) + 1)
            for m, c in maps:
                current = value if m.param == name else self.store.get(m.param)
                args[m.arg] = m.to_control(current, c.bank)
            if all(a is not None for a in args):
                out.append((address, [float(a) for a in args]))
        return out

    def midi_positions(self, name: str | None = None,
                       value: Any = None) -> list[tuple[Mapping, Controller, float]]:
        """Where the MIDI controls mapped to `name` should sit (in their input range) now
        that it is `value`; every MIDI control with a position when `name` is None (a
        controller plugged in is shown the whole state)."""
        out = []
        for m, c in self.set.mappings():
            if is_midi(m.address) and (name is None or m.param == name):
                pos = m.to_control(self.store.get(m.param) if name is None else value, c.bank)
                if pos is not None:
                    out.append((m, c, pos))
        return out

    # --- hot reload ----------------------------------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        if now - self._checked >= RELOAD_EVERY:
            self._checked = now
            with self.store.batch():  # learn mode changes the same files from the OSC thread
                if self.set.reload_changed():
                    self.rewire()

    # --- learn mode ----------------------------------------------------------------------
    def _learn_route(self, address: str, args: list[Any], reply: Replies) -> None:
        if not args or not isinstance(args[0], str):
            raise ParamError("/livevace/learn: give the parameter name, e.g. /livevace/learn "
                             "noise_scale")
        p = param(args[0])
        mode = str(args[1]) if len(args) > 1 else ("trigger" if p.kind == "trigger" else "absolute")
        if mode == "bank":
            raise ParamError("learn: mode bank needs a prompt bank: map it in a file")
        learned("/learn", p.name, mode)  # refused now, not after the control moved
        self.learning = (p.name, mode, reply)
        self._pairing = None
        log.info("learn: move a control to map it to %s", p.name)

    def _cancel_route(self, address: str, args: list[Any], reply: Replies) -> None:
        if self.learning:
            log.info("learn: cancelled")
        self.learning = None
        self._pairing = None

    def _intercept(self, address: str, args: list[Any], source: str | None) -> bool:
        """Catch the next control moved while learning; the message then applies as mapped."""
        if self.learning is None or has_wildcards(address) or not address.startswith("/"):
            return False
        name, mode, reply = self.learning
        try:
            m = learned(address, name, mode)
        except ParamError as exc:  # an address no file could hold: wait for another control
            log.warning("%s", exc)
            return False
        self.learning = None
        if not self._save(m, reply):
            return True
        control = parse_address(address) if is_midi(address) else None
        if source is not None and control is not None and control.kind == "cc" \
                and control.number < 32:
            self._pairing = (m, source, reply)
        return False

    def paired(self, address: str, source: str) -> bool:
        """Whether a MIDI message from port `source` is the LSB of the CC just learned from
        that port (its first message since): then the mapping becomes the 14-bit control
        and the message is used up. Any message from that port ends the wait."""
        if self._pairing is None or self._pairing[1] != source:
            return False
        m, _, reply = self._pairing
        self._pairing = None
        msb = parse_address(m.address)
        if address != MidiControl("cc", msb.channel, msb.number + 32).address:
            return False
        cc14 = MidiControl("cc14", msb.channel, msb.number).address
        self._save(learned(cc14, m.param, m.mode), reply, replacing=m.address)
        return True

    def _save(self, m: Mapping, reply: Replies, replacing: str | None = None) -> bool:
        """Write a learned mapping into the learn file and use it now; whether it worked."""
        with self.store.batch():  # the loop thread reloads edited files under the same lock
            try:
                write_learned(self.learn_file, m, replacing)
                self.set.add_or_reload(self.learn_file)
            except (PresetError, OSError) as exc:
                log.warning("learn: cannot write %s (%s)", self.learn_file, exc)
                return False
            self.rewire()
        log.info("learn: %s → %s (saved in %s)", shorten(m.address), m.param, self.learn_file)
        reply(encode("/livevace/learn/done", [m.address, m.param]))
        reply.send()  # the learn message was answered long ago: this goes now
        return True
