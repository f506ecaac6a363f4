"""The live preview of the output for the browser page: the newest frame, as JPEG on demand.

`put` is a tap on the pacer's output (the node calls it with every frame it emits): it keeps
a reference to the newest fresh frame and nothing else, so the show never waits for a
browser. The page's MJPEG stream asks for `jpeg()` at its own pace, from a worker thread;
a frame is encoded once however many browsers watch, scaled down to `max_width` so a phone
on Wi-Fi keeps up, and frames that came in between are simply never encoded.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from livevace.frames import Frame

MAX_WIDTH = 640
QUALITY = 80


class Preview:
    """The newest output frame and its JPEG."""

    def __init__(self, max_width: int = MAX_WIDTH, quality: int = QUALITY) -> None:
        self.max_width = max_width
        self.quality = quality
        self.seq = 0
        """Fresh frames seen so far (a viewer compares it with the last it showed)."""
        self._frame: Frame | None = None
        self._jpeg: tuple[int, bytes] | None = None
        self._lock = threading.Lock()

    def put(self, frame: Frame, fresh: bool) -> None:
        """The tap: called by the node's output thread for every frame it emits."""
        if fresh:
            self._frame = frame
            self.seq += 1

    def jpeg(self) -> tuple[int, bytes] | None:
        """(seq, JPEG bytes) of the newest frame, None before the first; blocks while it
        encodes, so call it off the event loop."""
        with self._lock:
            seq, frame = self.seq, self._frame
            if frame is None:
                return None
            if self._jpeg is None or self._jpeg[0] != seq:
                self._jpeg = seq, encode_jpeg(frame.image, self.max_width, self.quality)
            return self._jpeg


def encode_jpeg(rgb: np.ndarray, max_width: int, quality: int) -> bytes:
    h, w = rgb.shape[:2]
    if w > max_width:
        rgb = cv2.resize(rgb, (max_width, max(2, round(h * max_width / w))),
                         interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()
