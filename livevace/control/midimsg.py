"""MIDI messages as controller addresses, so a MIDI control is mapped like an OSC one.

A mapping file names a MIDI control by an address under /midi/ (channels 1..16):

    /midi/<ch>/note/<n>     a button or pad: note on is 1.0 (any velocity), note off 0.0
    /midi/<ch>/cc/<n>       a knob or fader: value / 127
    /midi/<ch>/cc14/<n>     a 14-bit knob or fader: CC n (0..31) is the MSB, CC n+32 the LSB;
                            (MSB · 128 + LSB) / 16383
    /midi/<ch>/bend         pitch bend (motor faders of Mackie-style surfaces): 0..1

Values arrive normalised to 0..1, the default input range of a mapping, so a MIDI mapping
needs no `in`. A 14-bit pair is only read as one control where a mapping names it (CC n+32
is otherwise a control of its own); a new MSB keeps the last LSB, so a controller that sends
only the MSB for coarse moves still lands where it points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import mido

KINDS = ("note", "cc", "cc14", "bend")
RANGE = {"note": 127, "cc": 127, "cc14": 16383, "bend": 16383}
"""The largest raw value of each kind (the smallest is 0; pitch bend is offset by 8192)."""
ADDRESS = re.compile(r"^/midi/(\d{1,2})/(note|cc14|cc|bend)(?:/(\d{1,3}))?$")


class MidiAddressError(ValueError):
    """An address under /midi/ that names no MIDI control."""


@dataclass(frozen=True)
class MidiControl:
    kind: str
    channel: int
    """1..16, as controllers and their manuals count."""
    number: int = 0

    @property
    def address(self) -> str:
        tail = "" if self.kind == "bend" else f"/{self.number}"
        return f"/midi/{self.channel}/{self.kind}{tail}"

    def messages(self, raw: int) -> list[mido.Message]:
        """What sets this control (LED, motor fader) to `raw` (0..RANGE[kind], clamped)."""
        raw = min(max(int(raw), 0), RANGE[self.kind])
        ch = self.channel - 1
        if self.kind == "note":
            return [mido.Message("note_on", channel=ch, note=self.number, velocity=raw)]
        if self.kind == "cc":
            return [mido.Message("control_change", channel=ch, control=self.number, value=raw)]
        if self.kind == "cc14":
            return [mido.Message("control_change", channel=ch, control=self.number, value=raw >> 7),
                    mido.Message("control_change", channel=ch, control=self.number + 32,
                                 value=raw & 0x7F)]
        return [mido.Message("pitchwheel", channel=ch, pitch=raw - 8192)]


def is_midi(address: str) -> bool:
    return address == "/midi" or address.startswith("/midi/")


def parse_address(address: str) -> MidiControl:
    """The MIDI control of a /midi/ address; MidiAddressError says what is wrong."""
    m = ADDRESS.match(address)
    if not m:
        raise MidiAddressError(f"{address}: a MIDI address is /midi/<channel>/note/<n>, "
                               "/midi/<channel>/cc/<n>, /midi/<channel>/cc14/<n> or "
                               "/midi/<channel>/bend")
    channel, kind, number = int(m.group(1)), m.group(2), m.group(3)
    if not 1 <= channel <= 16:
        raise MidiAddressError(f"{address}: MIDI channels are 1..16")
    if (kind == "bend") != (number is None):
        raise MidiAddressError(f"{address}: " + ("pitch bend has no number" if kind == "bend"
                                                 else f"{kind} needs a number"))
    n = int(number or 0)
    top = 31 if kind == "cc14" else 127
    if not 0 <= n <= top:
        raise MidiAddressError(f"{address}: {kind} numbers are 0..{top}"
                               + (" (the MSB; its LSB is n + 32)" if kind == "cc14" else ""))
    return MidiControl(kind, channel, n)


class Decoder:
    """Channel messages of one port → (address, value 0..1); keeps the 14-bit halves."""

    def __init__(self) -> None:
        self.pairs: frozenset[tuple[int, int]] = frozenset()
        """(channel, MSB number) of the 14-bit controls the mappings name."""
        self._msb: dict[tuple[int, int], int] = {}
        self._lsb: dict[tuple[int, int], int] = {}

    def decode(self, msg: mido.Message) -> tuple[str, float] | None:
        """The control a message moves and where it now is; None for anything else
        (clock, sysex, aftertouch… are not controls)."""
        kind = msg.type
        if kind in ("note_on", "note_off"):
            on = kind == "note_on" and msg.velocity > 0
            return MidiControl("note", msg.channel + 1, msg.note).address, 1.0 if on else 0.0
        if kind == "pitchwheel":
            return MidiControl("bend", msg.channel + 1).address, (msg.pitch + 8192) / 16383
        if kind != "control_change":
            return None
        ch, n = msg.channel + 1, msg.control
        if (ch, n) in self.pairs:
            self._msb[(ch, n)] = msg.value
        elif 32 <= n < 64 and (ch, n - 32) in self.pairs:
            n -= 32
            self._lsb[(ch, n)] = msg.value
        else:
            return MidiControl("cc", ch, n).address, msg.value / 127
        raw = (self._msb.get((ch, n), 0) << 7) | self._lsb.get((ch, n), 0)
        return MidiControl("cc14", ch, n).address, raw / 16383
