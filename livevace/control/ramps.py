"""Gradual parameter changes: slews (over seconds) and crossfades (over chunks).

Both are advanced by `Ramps.tick`, which the node loop calls once per pipeline call before
it snapshots the parameters, so every chunk sees one consistent step of every ramp. Only
continuous values glide (floats and equal-length float lists); everything else jumps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from livevace.params import ParamStore, param


def glides(name: str, start: Any, target: Any) -> bool:
    """Whether a change of `name` from start to target can be interpolated."""
    kind = param(name).kind
    if kind == "float":
        return True
    return kind == "floats" and len(start) == len(target)


def lerp(start: Any, target: Any, t: float) -> Any:
    if isinstance(target, tuple):
        return tuple(a + (b - a) * t for a, b in zip(start, target))
    return start + (target - start) * t


@dataclass
class _Ramp:
    start: Any
    target: Any
    seconds: float = 0.0
    """Slew length (wall clock), or 0 for a chunk-counted fade."""
    began: float = 0.0
    chunks: int = 0
    done: int = 0

    def progress(self, now: float) -> float:
        if self.seconds > 0:
            return min(1.0, (now - self.began) / self.seconds)
        self.done += 1
        return min(1.0, self.done / self.chunks)


class Ramps:
    """Values moving toward targets; at most one ramp per parameter (a new one replaces it)."""

    def __init__(self, store: ParamStore) -> None:
        self._store = store
        self._ramps: dict[str, _Ramp] = {}
        self._lock = store.batch  # one lock order everywhere: the store's, then nothing else

    def slew(self, name: str, target: Any, seconds: float) -> None:
        """Glide to `target` (already coerced) over `seconds` of wall time."""
        self._start(name, target, _Ramp(None, target, seconds=seconds, began=time.monotonic()),
                    seconds > 0)

    def fade(self, name: str, target: Any, chunks: int) -> None:
        """Crossfade to `target` (already coerced) over `chunks` ticks."""
        self._start(name, target, _Ramp(None, target, chunks=chunks), chunks > 0)

    def _start(self, name: str, target: Any, ramp: _Ramp, gradual: bool) -> None:
        with self._lock():
            self._ramps.pop(name, None)
            start = self._store.get(name)
            if gradual and glides(name, start, target) and start != target:
                ramp.start = start
                self._ramps[name] = ramp
            else:
                self._store.set(name, target)

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock():
            steps = {}
            for name, ramp in list(self._ramps.items()):
                t = ramp.progress(now)
                steps[name] = ramp.target if t >= 1.0 else lerp(ramp.start, ramp.target, t)
                if t >= 1.0:
                    del self._ramps[name]
            for name, value in steps.items():  # under the lock: a newer target always wins
                self._store.set(name, value)
