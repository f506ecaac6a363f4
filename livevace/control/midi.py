"""MIDI controllers direct (`--midi NAME`, `--midi-clock NAME`) through python-rtmidi.

A MIDI message from a controller becomes a /midi/… address with a value 0..1
(livevace.control.midimsg) and goes through the router like an OSC message: the same
mapping files, curves, toggles, triggers, slews, learn mode and live reload. Feedback rides
the same path as OSC feedback: every change the store accepts is turned into the positions
of the mapped controls (Controllers.midi_positions) and sent back to the controller, as
note velocities (LEDs), CCs or pitch bend (motor faders); a controller that (re)connects is
sent the whole state.

Ports are matched by name: the exact port name, else the first whose name contains NAME
(case-insensitive); the node's own ports never match. A background thread looks at the
port names once a second: a controller unplugged mid-show is one log line, and it is
opened again when it comes back. Nothing here blocks the node loop. Incoming messages wait
in rtmidi's queue and a reader thread of ours takes them: rtmidi's own threads never call
into Python, so closing a port (which waits for them) cannot wait on the interpreter lock.
Malformed bytes cost at most a rate-limited log line.

The MIDI system is rtmidi's default (ALSA on Linux, CoreMIDI, Windows MM); the api part of
$MIDO_BACKEND picks another, e.g. `mido.backends.rtmidi/UNIX_JACK` for JACK.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import mido

from livevace.control.controllers import Controllers
from livevace.control.mapping import Mapping
from livevace.control.midiclock import MidiClock
from livevace.control.midimsg import RANGE, Decoder, MidiControl, parse_address
from livevace.control.ratelog import BurstLog, shorten
from livevace.control.replies import Replies
from livevace.control.router import Router
from livevace.errors import UserError
from livevace.params import ParamStore

log = logging.getLogger("livevace.midi")

CLIENT = "livevace"
"""The node's MIDI client name; its own ports are never taken for a controller's."""
OWN_PORT = re.compile(rf"^{CLIENT}(-\d+)?:")
POLL_EVERY = 1.0
"""Seconds between looks at the port names (plugging in, unplugging)."""
READ_IDLE = 0.001
"""Seconds the reader sleeps when no input has a message (the latency it adds at most)."""


def _rtmidi() -> Any:
    try:
        import rtmidi
    except ImportError:
        raise UserError("MIDI needs the python-rtmidi package: pip install python-rtmidi") from None
    return rtmidi


def rtmidi_api() -> int:
    """The MIDI system: the api part of $MIDO_BACKEND ('mido.backends.rtmidi/UNIX_JACK'),
    else rtmidi's default."""
    rtmidi = _rtmidi()
    backend = os.environ.get("MIDO_BACKEND", "")
    name = backend.split("/", 1)[1] if "/" in backend else ""
    if not name:
        return rtmidi.API_UNSPECIFIED
    api = getattr(rtmidi, f"API_{name.upper()}", None)
    if api is None or api not in rtmidi.get_compiled_api():
        known = ", ".join(rtmidi.get_api_name(a).upper() for a in rtmidi.get_compiled_api())
        raise UserError(f"MIDO_BACKEND={backend}: this python-rtmidi has no MIDI API {name!r} "
                        f"(it has {known})")
    return api


def open_client(kind: str, api: int) -> Any:
    """An rtmidi MidiIn or MidiOut client; UserError when the MIDI system is not there."""
    rtmidi = _rtmidi()
    try:
        return (rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut)(rtapi=api, name=CLIENT)
    except rtmidi.RtMidiError as exc:
        raise UserError(f"MIDI is not available here ({exc}); on Linux it needs the ALSA "
                        "sequencer (/dev/snd/seq) or a JACK server with "
                        "MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK") from None


def pick(names: list[str], wanted: str) -> str | None:
    """The port `wanted` names: exact, else the first containing it (case-insensitive)."""
    names = [n for n in names if not OWN_PORT.match(n)]
    if wanted in names:
        return wanted
    return next((n for n in names if wanted.lower() in n.lower()), None)


@dataclass
class Device:
    """One --midi (or --midi-clock) NAME and the ports open for it."""

    spec: str
    control: bool
    """Its notes and CCs move parameters, and feedback goes to it."""
    clock: bool
    """Its MIDI clock drives the tempo."""
    input_name: str | None = None
    output_name: str | None = None
    midi_in: Any = None
    midi_out: Any = None
    decoder: Decoder = field(default_factory=Decoder)
    missing_said: bool = False
    show_state: bool = False
    """Its output is new: the next scan sends it the whole state (a connection is not
    carrying messages yet in the moment it is made)."""
    absent: int = 0
    """Scans in a row that did not list its open input (one may miss a port that another
    client is registering: only two in a row mean unplugged)."""
    stamp: float = 0.0
    """The MIDI system's time of the last message (the sum of rtmidi's deltas): clocks are
    timed by when they were sent, not by when a busy thread got to them."""


class Midi:
    """The MIDI ports of the node: input to the router, feedback out, clock, hot plugging."""

    def __init__(self, store: ParamStore, router: Router, controllers: Controllers,
                 control: list[str], clock_port: str | None, clock: MidiClock | None) -> None:
        self.store = store
        self.router = router
        self.controllers = controllers
        self.clock = clock
        self.burst = BurstLog(log, window=10.0)
        self.api = rtmidi_api()
        self._probe_in = open_client("in", self.api)
        self._probe_out = open_client("out", self.api)
        self._out_lock = threading.Lock()
        """Held while an output is used or released: the store's listeners send from any
        thread, and an rtmidi port must not be deleted under a send."""
        self._in_lock = threading.Lock()
        """Held while the reader takes messages from the inputs or an input is released."""
        self._ports_lock = threading.Lock()
        """Held while ports open or close (a scan, the shutdown): never two at once."""
        self.devices = [Device(spec, True, spec == clock_port) for spec in dict.fromkeys(control)]
        if clock_port is not None and clock_port not in control:
            self.devices.append(Device(clock_port, False, True))
        self._stop = threading.Event()
        self.scan()
        self._unsubscribe = store.subscribe(self._changed)
        self._thread = threading.Thread(target=self._watch, name="midi-ports", daemon=True)
        self._thread.start()
        self._reader = threading.Thread(target=self._read, name="midi-in", daemon=True)
        self._reader.start()

    # --- ports -------------------------------------------------------------------------------
    def scan(self) -> None:
        """Open what has appeared, close what has gone; one log line per change."""
        with self._ports_lock:
            if not self._stop.is_set():
                self._scan()

    def _scan(self) -> None:
        try:
            inputs, outputs = self._probe_in.get_ports(), self._probe_out.get_ports()
        except Exception as exc:  # the MIDI system itself went away (a JACK server stopped)
            self.burst.warning("list", f"MIDI ports cannot be listed ({exc})")
            return
        for d in self.devices:
            d.absent = d.absent + 1 if d.midi_in is not None and d.input_name not in inputs else 0
            if d.absent >= 2:
                gone = d.input_name
                self._close(d)
                d.missing_said = True  # the one line: no "waiting for it" after this
                log.warning("MIDI: %s unplugged; it is picked up again when it is back", gone)
            if d.absent or d.midi_in is None and not self._open_input(d, inputs):
                continue
            if d.midi_out is not None and d.output_name not in outputs:
                self._close_output(d)
            if d.show_state and d.midi_out is not None:
                d.show_state = False
                self._send(self.controllers.midi_positions(), only=d)
            # a device's output may show up after its input: looked for until it is there
            if d.control and d.midi_out is None:
                d.show_state = self._open_output(d, outputs)

    def _open_input(self, d: Device, inputs: list[str]) -> bool:
        """Open a device's input when it is there; whether it is open."""
        name = pick(inputs, d.spec)
        if name is None:
            if not d.missing_said:
                d.missing_said = True
                log.warning("MIDI: no input port matches %r yet (`livevace midi list` shows "
                            "them); waiting for it", d.spec)
            return False
        try:
            port = open_client("in", self.api)
            port.ignore_types(sysex=True, timing=not d.clock, active_sense=True)
            port.open_port(inputs.index(name), f"in {shorten(d.spec, 24)}")
            with self._in_lock:
                d.midi_in, d.input_name = port, name
        except Exception as exc:  # UserError, RtMidiError: the port vanished as we opened it
            self._close(d)
            self.burst.warning(f"open {d.spec}", f"MIDI: cannot open {name} ({exc})")
            return False
        log.info("MIDI: %s%s", name, " (clock)" if d.clock else "")
        d.missing_said = False
        return True

    def _open_output(self, d: Device, outputs: list[str]) -> bool:
        """Open the port feedback goes to, when there is one; whether it is open."""
        name = pick(outputs, d.spec)
        if name is None:
            return False
        try:
            port = open_client("out", self.api)
            port.open_port(outputs.index(name), f"out {shorten(d.spec, 24)}")
        except Exception as exc:
            self.burst.warning(f"open out {d.spec}", f"MIDI: cannot open {name} ({exc})")
            return False
        with self._out_lock:
            d.midi_out, d.output_name = port, name
        log.info("MIDI: feedback to %s", name)
        return True

    def _close_output(self, d: Device) -> None:
        with self._out_lock:
            _release(d.midi_out)
            d.midi_out = d.output_name = None

    def _close(self, d: Device) -> None:
        with self._in_lock:
            _release(d.midi_in)
            d.midi_in = d.input_name = None
        self._close_output(d)
        if d.clock and self.clock is not None:
            self.clock.stop()  # a clock that vanished holds no quantised change

    def _watch(self) -> None:
        while not self._stop.wait(POLL_EVERY):
            self.scan()

    # --- input -------------------------------------------------------------------------------
    def _read(self) -> None:
        """The reader thread: take what the inputs hold, then act on it outside the lock
        (acting writes parameters, whose listeners send feedback)."""
        while not self._stop.is_set():
            got: list[tuple[Device, str, list[int], float]] = []
            with self._in_lock:
                for d in self.devices:
                    while d.midi_in is not None and len(got) < 256:
                        event = d.midi_in.get_message()
                        if event is None:
                            break
                        got.append((d, d.input_name, *event))
            for d, port, data, delta in got:
                self._received(d, port, data, delta)
            if not got:
                time.sleep(READ_IDLE)

    def _received(self, d: Device, port: str, data: list[int], delta: float) -> None:
        """One message from a device's input `port`; never raises."""
        d.stamp += delta
        try:
            msg = mido.Message.from_bytes(data)
        except Exception:  # mido raises ValueError, and IndexError for some short messages
            self.burst.warning(f"bad {d.spec}", f"MIDI: malformed bytes from {port} "
                               f"ignored ({shorten(' '.join(f'{b:02X}' for b in data), 48)})")
            return
        if d.clock and self.clock is not None and self._clock_message(msg, d.stamp):
            return
        if not d.control:
            return
        d.decoder.pairs = self.controllers.cc14
        moved = d.decoder.decode(msg)
        if moved is None:
            log.debug("MIDI: %s from %s ignored", msg.type, port)
            return
        address, value = moved
        if self.controllers.paired(address, port):
            return  # the LSB that made the CC just learned a 14-bit fader
        if self.controllers.learning is None and not self.router.knows(address):
            return  # an unmapped knob: the normal case on a big controller, not worth a line
        self.router.dispatch(address, [value], Replies(lambda data: None, source=port))

    def _clock_message(self, msg: Any, stamp: float) -> bool:
        clock = self.clock
        actions: dict[str, Callable[[], None]] = {
            "clock": lambda: clock.clock(stamp), "start": clock.start, "stop": clock.stop,
            "continue": clock.resume}
        if msg.type in actions:
            actions[msg.type]()
            return True
        if msg.type == "songpos":
            clock.song_position(msg.pos)
            return True
        return False

    # --- feedback ----------------------------------------------------------------------------
    def _changed(self, name: str, value: Any) -> None:
        self._send(self.controllers.midi_positions(name, value))

    def _send(self, positions: list[tuple[Mapping, Any, float]], only: Device | None = None) -> None:
        if not positions:
            return
        with self._out_lock:
            for d in self.devices if only is None else [only]:
                if d.midi_out is None:
                    continue
                for m, c, pos in positions:
                    if c.answers(d.input_name):
                        for msg in feedback_messages(m, pos):
                            try:
                                d.midi_out.send_message(msg.bytes())
                            except Exception as exc:  # unplugged between two scans
                                self.burst.warning(f"send {d.spec}", f"MIDI: feedback to "
                                                   f"{d.output_name} failed ({exc})")
                                break

    def close(self) -> None:
        self._unsubscribe()
        self._stop.set()
        self._reader.join(timeout=1.0)
        if not self._ports_lock.acquire(timeout=5.0):  # a scan stuck in the MIDI system
            log.warning("MIDI: the ports are left to the end of the process")
            return
        try:
            for d in self.devices:
                self._close(d)
            for probe in (self._probe_in, self._probe_out):
                _release(probe)
        finally:
            self._ports_lock.release()


def _release(port: Any) -> None:
    """Close and free an rtmidi client (of a vanished device too: then nothing is left)."""
    if port is None:
        return
    try:
        port.close_port()
        port.delete()
    except Exception:
        pass


def feedback_messages(m: Mapping, pos: float) -> list[Any]:
    """The messages that set a MIDI control to `pos` (in the mapping's input range): its
    `send` values (LED colours) or the kind's full range, on its `send_channel`."""
    control = parse_address(m.address)
    t = min(max((pos - m.lo_in) / (m.hi_in - m.lo_in), 0.0), 1.0)
    lo, hi = m.send if m.send is not None else (0.0, float(RANGE[control.kind]))
    if m.send_channel is not None:
        control = MidiControl(control.kind, m.send_channel, control.number)
    return control.messages(round(lo + t * (hi - lo)))


def port_names() -> tuple[list[str], list[str]]:
    """(inputs, outputs) of the MIDI system, the node's own left out."""
    api = rtmidi_api()
    names = []
    for kind in ("in", "out"):
        client = open_client(kind, api)
        names.append([n for n in client.get_ports() if not OWN_PORT.match(n)])
        client.delete()
    return names[0], names[1]
