"""Temporal steadiness for control videos: One-Euro filters, track matching, scene cuts.

A control video that jitters makes VACE redraw what should stay put. Landmarks get a
One-Euro filter (smooth when still, little lag when moving fast: Casiez et al., CHI 2012);
dense maps (depth, masks) get an exponential average that restarts on a scene cut, so a
cut is not smeared over several frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """One-Euro filter over arrays of any (fixed) shape, element by element.

    `min_cutoff` (Hz) sets the smoothing when still; `beta` how fast the cutoff rises with
    speed (units of the signal per second); `d_cutoff` smooths the speed estimate.
    """

    min_cutoff: float = 1.5
    beta: float = 5.0
    d_cutoff: float = 1.0
    _x: np.ndarray | None = field(default=None, repr=False)
    _dx: np.ndarray | None = field(default=None, repr=False)

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape or dt <= 0:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()

    def reset(self) -> None:
        self._x = self._dx = None


@dataclass
class TrackSmoother:
    """Smooths several point sets per frame (people, hands, faces), each with its own filter.

    Sets are matched to the previous frame's by nearest centroid (greedy), so two dancers do
    not swap filters; a set further than `max_jump` (normalised units) from every track
    starts a new one, and tracks not seen this frame are dropped. `ids` holds the track id
    of each set of the last call (stable across frames for the same person).
    """

    min_cutoff: float = 1.5
    beta: float = 5.0
    max_jump: float = 0.25
    ids: list[int] = field(default_factory=list)
    _tracks: list[tuple[np.ndarray, OneEuroFilter, int]] = field(default_factory=list, repr=False)
    _next_id: int = field(default=0, repr=False)

    def __call__(self, sets: list[np.ndarray], dt: float) -> list[np.ndarray]:
        centres = [s[:, :2].mean(axis=0) for s in sets]
        pairs: list[tuple[float, int, int]] = sorted(
            (float(np.linalg.norm(c - track[0])), i, t)
            for i, c in enumerate(centres) for t, track in enumerate(self._tracks))
        chosen: dict[int, int] = {}
        used: set[int] = set()
        for dist, i, t in pairs:
            if dist <= self.max_jump and i not in chosen and t not in used:
                chosen[i] = t
                used.add(t)
        tracks, out = [], []
        for i, points in enumerate(sets):
            if i in chosen:
                _, filt, track_id = self._tracks[chosen[i]]
            else:
                filt, track_id = OneEuroFilter(self.min_cutoff, self.beta), self._next_id
                self._next_id += 1
            smooth = points.astype(np.float64).copy()
            smooth[:, :2] = filt(points[:, :2], dt)
            tracks.append((centres[i], filt, track_id))
            out.append(smooth)
        self._tracks = tracks
        self.ids = [t[2] for t in tracks]
        return out

    def reset(self) -> None:
        self._tracks = []
        self.ids = []


def interpolate_sets(a: list[np.ndarray], a_ids: list[int], b: list[np.ndarray], b_ids: list[int],
                     f: float) -> list[np.ndarray]:
    """Point sets a fraction `f` of the way from frame a to frame b: the same track in both
    is interpolated linearly; one seen in a only shows for the first half, one in b only
    for the second."""
    by_id = dict(zip(a_ids, a))
    out = [((1 - f) * by_id[i] + f * p) if i in by_id else p for i, p in zip(b_ids, b) if i in by_id or f >= 0.5]
    if f < 0.5:
        out += [p for i, p in zip(a_ids, a) if i not in set(b_ids)]
    return out


@dataclass
class SceneCutDetector:
    """Flags a cut when a small grey thumbnail changes by more than `threshold` (0..1)."""

    threshold: float = 0.18
    size: tuple[int, int] = (32, 18)
    _last: np.ndarray | None = field(default=None, repr=False)

    def __call__(self, image: np.ndarray) -> bool:
        grey = cv2.cvtColor(cv2.resize(image, self.size, interpolation=cv2.INTER_AREA),
                            cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        last, self._last = self._last, grey
        return last is None or float(np.abs(grey - last).mean()) > self.threshold

    def reset(self) -> None:
        self._last = None


@dataclass
class ExponentialAverage:
    """Exponential moving average of float maps: out = a·previous + (1 − a)·new.

    `amount` 0 passes frames through; a reset (scene cut, size change) restarts from the
    new frame.
    """

    amount: float = 0.5
    _state: np.ndarray | None = field(default=None, repr=False)

    def __call__(self, x: np.ndarray, restart: bool = False) -> np.ndarray:
        if restart or self._state is None or self._state.shape != x.shape:
            self._state = x.astype(np.float32, copy=True)
        else:
            self._state = self.amount * self._state + (1.0 - self.amount) * x
        return self._state

    def reset(self) -> None:
        self._state = None
