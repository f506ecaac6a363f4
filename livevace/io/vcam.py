"""Virtual camera (pyvirtualcam): the output as a webcam for Zoom, OBS, browsers.
Backends: OBS Virtual Camera on Windows and macOS, v4l2loopback on Linux."""

from __future__ import annotations

import sys

from livevace.errors import SinkError
from livevace.frames import Frame

HOW = {
    "linux": "load v4l2loopback first (sudo modprobe v4l2loopback exclusive_caps=1 "
             "card_label=livevace)",
    "win32": "install OBS Studio (28+) and start its Virtual Camera once",
    "darwin": "install OBS Studio (28+) and start its Virtual Camera once",
}


class VcamSink:
    name = "vcam"
    queue_size = 2

    def __init__(self) -> None:
        self._cam = None

    def open(self, width: int, height: int, fps: float) -> None:
        how = next((v for k, v in HOW.items() if sys.platform.startswith(k)), "")
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise SinkError(f"vcam needs pyvirtualcam ({exc}); reinstall livevace, or use ndi") from None
        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no backend"
            raise SinkError(f"no virtual camera device ({reason}): {how}; or use ndi") from None

    def write(self, frame: Frame) -> None:
        self._cam.send(frame.image)

    def close(self) -> None:
        if self._cam is not None:
            self._cam.close()
            self._cam = None
