"""Pose control: MediaPipe landmarks, smoothed over time, drawn as an OpenPose-style map."""

from __future__ import annotations

import cv2
import numpy as np

from livevace.annotators.base import check_frame
from livevace.annotators.mediapipe_backends import Landmarks, open_pose_backend
from livevace.annotators.pose_render import render
from livevace.annotators.smoothing import TrackSmoother

MIN_DETECT_SIDE = 32
"""Below this the detectors see nothing useful (and some crash): such frames map to black."""


class PoseAnnotator:
    """Coloured skeletons on black, one per person; black when nobody is in frame.

    people: how many to track (more than one needs the Tasks model file); hands, face:
    draw them too; smoothing: One-Euro filter the landmarks (jitter is what VACE copies
    most visibly); detect_size: scale the longest side down to this many pixels before
    detection (MediaPipe crops and resizes to 256 px anyway, so this mostly saves the
    conversion of large frames); fps: the nominal frame rate the filters assume.
    """

    name = "pose"
    stateless = False

    def __init__(self, people: int = 1, hands: bool = False, face: bool = False,
                 model: str = "full", backend: str = "auto", smoothing: bool = True,
                 min_cutoff: float = 1.5, beta: float = 5.0, fps: float = 30.0,
                 detect_size: int | None = 384, min_visibility: float = 0.5,
                 thickness: int | None = None) -> None:
        self.backend = open_pose_backend(backend, max(1, int(people)), hands, face, model)
        self.smoothing = smoothing
        self._filters = [TrackSmoother(min_cutoff, beta) for _ in range(3)]
        self.dt = 1.0 / fps
        self.detect_size = detect_size
        self.min_visibility = min_visibility
        self.thickness = thickness
        self._frame = 0

    def landmarks(self, image: np.ndarray) -> Landmarks:
        """This frame's (smoothed) landmarks, normalised to the frame."""
        image = check_frame(image)
        h, w = image.shape[:2]
        self._frame += 1
        if min(h, w) < MIN_DETECT_SIDE:
            return Landmarks()
        if self.detect_size and max(h, w) > self.detect_size:
            s = self.detect_size / max(h, w)
            image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                               interpolation=cv2.INTER_AREA)
        found = self.backend(image, int(self._frame * self.dt * 1000))
        if self.smoothing:
            bodies, hands, faces = self._filters
            found = Landmarks(bodies(found.bodies, self.dt), hands(found.hands, self.dt),
                              faces(found.faces, self.dt))
        return found

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return render(self.landmarks(image), h, w, self.thickness, self.min_visibility)

    def reset(self) -> None:
        """Forget tracking and filter state (a new scene or source)."""
        self.backend.reset()
        for f in self._filters:
            f.reset()

    def close(self) -> None:
        self.backend.close()
