"""Preview window (OpenCV HighGUI) for checking the output without a host application.

GUI toolkits want one thread (macOS insists on the main one), so this sink has no thread
of its own: `livevace run` pumps it from the main thread (`main_thread = True`). Esc or q
in the window asks the node to stop; closing the window just stops the preview.
"""

from __future__ import annotations

import os
import sys

import cv2

from livevace.errors import SinkError
from livevace.frames import Frame


def has_display() -> bool:
    """Whether a window can appear (Linux needs X11 or Wayland; others always have one)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class PreviewSink:
    name = "preview"
    queue_size = 1
    main_thread = True

    def __init__(self, title: str = "livevace") -> None:
        self.title = title
        self.quit_requested = False
        self._open = False

    def open(self, width: int, height: int, fps: float) -> None:
        if not has_display():
            raise SinkError("preview needs a display (none here: DISPLAY is not set); "
                            "watch the output over ndi or record it instead")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            cv2.resizeWindow(self.title, width, height)
        except cv2.error as exc:
            raise SinkError(f"preview window cannot open ({exc.err}); use ndi instead") from None
        self._open = True

    def write(self, frame: Frame) -> None:
        if not self._open:
            return
        cv2.imshow(self.title, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        if key in (27, ord("q")):
            self.quit_requested = True
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
