"""Tempo: Ableton Link (aalink) or MIDI clock, and beat-quantised prompt and scene changes.

With `--link`, the node joins the Link session (with `--midi-clock NAME` it follows that
port's MIDI clock instead: livevace.control.midiclock); `quantize = beat | bar` then holds prompt
and scene changes until the next beat or bar line, applied at the first tick after it
(the pipeline reads parameters once per chunk, so that is the earliest a change can show).
The beat phase within the bar is published as the read-only `beat_phase` parameter and
`tempo` follows (and, with Link, sets) the session tempo. A clock that is not running (MIDI
clock after Stop) holds nothing: changes apply at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from typing import Any, Callable, Protocol

from livevace.errors import UserError
from livevace.params import ParamStore

log = logging.getLogger("livevace.osc")


class BeatClock(Protocol):
    """What the quantiser reads of a tempo source."""

    @property
    def running(self) -> bool: ...
    @property
    def beat(self) -> float: ...
    @property
    def quantum(self) -> float: ...
    tempo: float

    def close(self) -> None: ...


class Clock:
    """A beat clock: Ableton Link when available."""

    running = True
    """A Link session always runs."""

    def __init__(self, bpm: float, quantum: float = 4.0) -> None:
        try:
            import aalink
        except ImportError:
            raise UserError("--link needs the aalink package: pip install aalink "
                            "(or run without --link)") from None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link", daemon=True)
        self._thread.start()

        async def make() -> Any:
            return aalink.Link(bpm)

        self.link = asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout=5)
        self.link.quantum = quantum
        self.link.enabled = True

    @property
    def beat(self) -> float:
        return float(self.link.beat)

    @property
    def quantum(self) -> float:
        return float(self.link.quantum)

    @property
    def tempo(self) -> float:
        return float(self.link.tempo)

    @tempo.setter
    def tempo(self, bpm: float) -> None:
        self.link.tempo = bpm

    @property
    def peers(self) -> int:
        return int(self.link.num_peers)

    def close(self) -> None:
        self.link.enabled = False
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)


class Quantiser:
    """Holds prompt and scene changes until the next beat or bar (by `quantize`)."""

    def __init__(self, store: ParamStore, clock: BeatClock | None) -> None:
        self.store = store
        self.clock = clock
        self._pending: dict[str, tuple[float, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._warned = False
        if clock is not None:
            store.subscribe(self._changed)
            store.set("tempo", clock.tempo)

    def _changed(self, name: str, value: Any) -> None:
        if name == "tempo" and self.clock is not None and abs(self.clock.tempo - value) > 1e-6:
            self.clock.tempo = value

    def defer(self, name: str, apply: Callable[[], None]) -> None:
        """Apply now, or at the next beat/bar line; a newer change of `name` replaces a
        waiting one."""
        mode = self.store.get("quantize")
        if mode == "off" or self.clock is None or not self.clock.running:
            if mode != "off" and self.clock is None and not self._warned:
                self._warned = True
                log.warning("quantize=%s needs a tempo source: start with --link or "
                            "--midi-clock NAME", mode)
            apply()
            return
        step = 1.0 if mode == "beat" else self.clock.quantum
        due = math.floor(self.clock.beat / step + 1.0) * step
        with self._lock:
            self._pending[name] = (due, apply)

    def tick(self) -> None:
        if self.clock is None:
            return
        beat = self.clock.beat
        self.store.set("beat_phase", (beat % self.clock.quantum) / self.clock.quantum, force=True)
        tempo = self.clock.tempo
        if abs(tempo - self.store.get("tempo")) > 1e-6:
            self.store.set("tempo", tempo)
        with self._lock:
            due = [(n, a) for n, (b, a) in self._pending.items()
                   if b <= beat or not self.clock.running]
            for name, _ in due:
                del self._pending[name]
        for _, apply in due:
            apply()

    @property
    def waiting(self) -> list[str]:
        with self._lock:
            return list(self._pending)
