"""Camera input through OpenCV (V4L2 on Linux, AVFoundation on macOS, MSMF/DirectShow on
Windows). OpenCV cannot enumerate devices, so `list_cameras` reads sysfs on Linux and
probes indices elsewhere."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2

from livevace.errors import SourceError
from livevace.frames import Frame, now

PROBE_INDICES = 8


@contextmanager
def _opencv_silent() -> Iterator[None]:
    """OpenCV logs a warning, and an error from its Orbbec backend, for every index that
    has no camera: a probe is not a fault, and a failed open is said in our own one line."""
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # 0: silent
    try:
        yield
    finally:
        cv2.setLogLevel(level)


def list_cameras() -> list[tuple[int, str]]:
    """(index, name) of the cameras this machine has."""
    if sys.platform.startswith("linux"):
        found = []
        for dev in sorted(Path("/sys/class/video4linux").glob("video*")):
            index = int(dev.name[5:]) if dev.name[5:].isdigit() else -1
            name = (dev / "name").read_text().strip() if (dev / "name").exists() else dev.name
            if index >= 0 and (dev / "index").exists() and (dev / "index").read_text().strip() == "0":
                found.append((index, name))  # index 0: the capture node, not metadata
        return found
    found = []
    for index in range(PROBE_INDICES):
        with _opencv_silent():
            cap = cv2.VideoCapture(index)
        if cap.isOpened():
            found.append((index, f"camera {index}"))
        cap.release()
    return found


def describe_cameras() -> str:
    cams = list_cameras()
    if not cams:
        return "this machine has no camera OpenCV can open"
    return "cameras here: " + ", ".join(f"camera:{i} ({name})" for i, name in cams)


class CameraSource:
    """Frames as the camera delivers them, converted to RGB and stamped on arrival."""

    def __init__(self, index: int, width: int, height: int, fps: float) -> None:
        self.index = index
        self.name = f"camera:{index}"
        self._want = (width, height, fps)
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        with _opencv_silent():
            cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.index} is not available; {describe_cameras()}")
        width, height, fps = self._want
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog (latency)
        self._cap = cap

    def read(self, timeout: float) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is closed")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise SourceError(f"{self.name} stopped delivering frames")
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), now())

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
