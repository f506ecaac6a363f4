"""MIDI clock in: a tempo source beside Ableton Link (`--midi-clock NAME`).

A DJ mixer, a drum machine or a DAW sends 24 timing clocks (0xF8) a beat, and Start (0xFA),
Stop (0xFC), Continue (0xFB) and Song Position Pointer. The beat counts the clocks since
Start (the first clock after Start is beat 0), so a bar line falls where the sender's does;
between two clocks it moves on at the tempo, never past the next clock. The tempo is the
mean clock interval over the last two beats, so the jitter of single clocks (USB, a loaded
machine) averages out, and a clock after a long gap starts a new measurement instead of
dragging the tempo down. While the sender is stopped, the clock is not running and
quantised changes apply at once (a stopped show must not hold a prompt change forever).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

PPQN = 24
"""MIDI clocks per quarter note (beat)."""
WINDOW = 2 * PPQN
"""Clock intervals the tempo is the mean of."""
GAP = 1.0
"""Seconds without a clock after which the next one starts a new tempo measurement."""
MIN_BPM, MAX_BPM = 20.0, 400.0
"""Tempos outside this range are noise (a burst of clocks, a stall), not a tempo."""


class MidiClock:
    """A beat clock that follows MIDI clock; the interface of tempo.Clock."""

    def __init__(self, bpm: float, quantum: float = 4.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._tempo = bpm
        self._quantum = quantum
        self._ticks = 0
        self._last = 0.0
        self._times: deque[float] = deque(maxlen=WINDOW + 1)
        self._running = False

    # --- what the sender says --------------------------------------------------------------
    def clock(self, sent: float | None = None) -> None:
        """One timing clock; `sent` is when it was sent on the MIDI system's time line
        (rtmidi's timestamps), for the tempo (default: now)."""
        now = self._now()
        sent = now if sent is None else sent
        with self._lock:
            if self._times and not 0 <= sent - self._times[-1] <= GAP:
                self._times.clear()
            self._times.append(sent)
            if len(self._times) > PPQN // 2:
                bpm = 60.0 / (PPQN * (self._times[-1] - self._times[0]) / (len(self._times) - 1))
                if MIN_BPM <= bpm <= MAX_BPM:
                    self._tempo = round(bpm, 1)
            if self._running:
                self._ticks += 1
                self._last = now

    def start(self) -> None:
        with self._lock:
            self._ticks, self._running = -1, True
            self._last = self._now()

    def stop(self) -> None:
        with self._lock:
            self._running = False

    def resume(self) -> None:
        """Continue (0xFB): run on from where Stop left the position."""
        with self._lock:
            self._running = True
            self._last = self._now()

    def song_position(self, sixteenths: int) -> None:
        """Song Position Pointer: the position in sixteenth notes (6 clocks each)."""
        with self._lock:
            self._ticks = sixteenths * PPQN // 4

    # --- what the quantiser reads ----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def beat(self) -> float:
        with self._lock:
            ticks = max(self._ticks, 0)
            if not self._running or self._ticks < 0:
                return ticks / PPQN
            ahead = (self._now() - self._last) * self._tempo / 60.0 * PPQN
            return (ticks + min(ahead, 0.99)) / PPQN  # never past the clock still to come

    @property
    def quantum(self) -> float:
        return self._quantum

    @property
    def tempo(self) -> float:
        return self._tempo

    @tempo.setter
    def tempo(self, bpm: float) -> None:
        """The sender sets the tempo: a written tempo lasts until its next clock."""

    @property
    def peers(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing to close: the MIDI port belongs to the MIDI service."""
