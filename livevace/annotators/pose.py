"""Pose control: MediaPipe landmarks, smoothed over time, drawn as an OpenPose-style map."""

from __future__ import annotations

import logging
import math
import time
from typing import Sequence

import cv2
import numpy as np

from livevace.annotators.base import check_frame
from livevace.annotators.mediapipe_backends import Landmarks, open_pose_backend
from livevace.annotators.pose_render import render
from livevace.annotators.smoothing import TrackSmoother, interpolate_sets

Tracked = tuple[Landmarks, list[list[int]]]
"""Landmarks with the track id of every body, hand and face."""

log = logging.getLogger("livevace.annotators")

MIN_DETECT_SIDE = 32
"""Below this the detectors see nothing useful (and some crash): such frames map to black."""


class PoseAnnotator:
    """Coloured skeletons on black, one per person; black when nobody is in frame.

    people: how many to track (more than one needs the Tasks model file); hands, face:
    draw them too; smoothing: One-Euro filter the landmarks (jitter is what VACE copies
    most visibly); detect_size: scale the longest side down to this many pixels before
    detection (MediaPipe crops and resizes to 256 px anyway; this saves converting large
    frames); fps: the nominal frame rate the filters assume; stride: in `batch` (a chunk),
    run the detector on every stride-th frame and the last, and interpolate the landmarks
    of the frames between (2 halves the cost; motion within 1/15 s is close to linear).
    """

    name = "pose"
    stateless = False
    note_every = 10.0
    """Seconds at least between two "no person" lines (someone at the frame's edge flickers
    in and out of detection; the terminal must not flicker with them)."""

    def __init__(self, people: int = 1, hands: bool = False, face: bool = False,
                 model: str = "full", backend: str = "auto", smoothing: bool = True,
                 min_cutoff: float = 1.5, beta: float = 5.0, fps: float = 30.0,
                 detect_size: int | None = 384, min_visibility: float = 0.5,
                 thickness: int | None = None, stride: int = 2) -> None:
        self.backend = open_pose_backend(backend, max(1, int(people)), hands, face, model)
        self.smoothing = smoothing
        self._filters = [TrackSmoother(min_cutoff, beta) for _ in range(3)]
        self.dt = 1.0 / fps
        self.detect_size = detect_size
        self.min_visibility = min_visibility
        self.thickness = thickness
        self.stride = max(1, int(stride))
        self._frame = 0
        self._last_key: tuple[int, Tracked] | None = None
        self._person = True  # so that a first picture with nobody in it is said too
        self._noted = -math.inf

    def landmarks(self, image: np.ndarray) -> Landmarks:
        """This frame's (smoothed) landmarks, normalised to the frame."""
        self._frame += 1
        self._last_key = None
        return self._track(self._detect(image), 1)[0]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return render(self.landmarks(image), h, w, self.thickness, self.min_visibility)

    def batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """A chunk in order, detecting on key frames only (see `stride`)."""
        n = len(frames)
        if n == 0:
            return []
        keys = sorted(set(range(self.stride - 1, n, self.stride)) | {n - 1})
        start, found, last = self._frame, {}, -1
        for k in keys:
            self._frame = start + k + 1
            found[k] = self._track(self._detect(frames[k]), k - last)
            last = k
        self._frame = start + n
        out = []
        before = self._last_key  # (index relative to this chunk, tracked landmarks) or None
        for i, frame in enumerate(frames):
            key = next(k for k in keys if k >= i)
            marks = found[key][0]
            if i < key and before is not None:
                marks = _interpolate(before[1], found[key], (i - before[0]) / (key - before[0]))
            if i == key:
                before = (i, found[i])
            h, w = frame.shape[:2]
            out.append(render(marks, h, w, self.thickness, self.min_visibility))
        self._last_key = (keys[-1] - n, found[keys[-1]])
        return out

    def reset(self) -> None:
        """Forget tracking and filter state (a new scene or source)."""
        self.backend.reset()
        for f in self._filters:
            f.reset()
        self._last_key = None

    def close(self) -> None:
        self.backend.close()

    # --- detection and tracking

    def _detect(self, image: np.ndarray) -> Landmarks:
        image = check_frame(image)
        h, w = image.shape[:2]
        if min(h, w) < MIN_DETECT_SIDE:
            return self._noted_people(Landmarks())
        if self.detect_size and max(h, w) > self.detect_size:
            s = self.detect_size / max(h, w)
            image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                               interpolation=cv2.INTER_AREA)
        return self._noted_people(self.backend(image, int(self._frame * self.dt * 1000)))

    def _noted_people(self, found: Landmarks) -> Landmarks:
        """Say when the picture holds nobody (the map turns black, which looks like a
        fault): once each time people leave, at most once per `note_every` seconds."""
        if found.bodies:
            self._person = True
        elif self._person:
            self._person = False
            now = time.monotonic()
            if now - self._noted >= self.note_every:
                self._noted = now
                log.info("pose: no person found in the picture; the pose map stays black "
                         "until someone is in frame")
        return found

    def _track(self, found: Landmarks, frames: int) -> Tracked:
        """Smooth (when on) and label each set with its track id, `frames` after the last."""
        dt = self.dt * max(1, frames)
        parts = (found.bodies, found.hands, found.faces)
        if self.smoothing:
            parts = tuple(f(p, dt) for f, p in zip(self._filters, parts))
            ids = [list(f.ids) for f in self._filters]
        else:
            ids = [list(range(len(p))) for p in parts]
        return Landmarks(*parts), ids


def _interpolate(a: Tracked, b: Tracked, f: float) -> Landmarks:
    (marks_a, ids_a), (marks_b, ids_b) = a, b
    parts = zip((marks_a.bodies, marks_a.hands, marks_a.faces), ids_a,
                (marks_b.bodies, marks_b.hands, marks_b.faces), ids_b)
    return Landmarks(*(interpolate_sets(x, xi, y, yi, f) for x, xi, y, yi in parts))
