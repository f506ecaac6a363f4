"""Syphon (macOS GPU texture sharing) through syphon-python's Metal server: what
Resolume, MadMapper, VDMX and TouchDesigner on a Mac read. Frames are copied into one
reused RGBA Metal texture and published."""

from __future__ import annotations

import cv2
import numpy as np

from livevace.frames import Frame
from livevace.io.platform import import_backend


class SyphonSink:
    queue_size = 2

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        self.name = f"syphon:{server_name}"
        self._server = None
        self._texture = None
        self._copy = None
        self._rgba: np.ndarray | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        syphon = import_backend("syphon", "syphon", "syphon-python")
        numpy_utils = import_backend("syphon", "syphon.utils.numpy", "syphon-python")
        raw_utils = import_backend("syphon", "syphon.utils.raw", "syphon-python")
        self._server = syphon.SyphonMetalServer(self.server_name)
        self._texture = raw_utils.create_mtl_texture(self._server.device, width, height)
        self._copy = numpy_utils.copy_image_to_mtl_texture
        self._rgba = np.empty((height, width, 4), np.uint8)

    def write(self, frame: Frame) -> None:
        cv2.cvtColor(frame.image, cv2.COLOR_RGB2RGBA, dst=self._rgba)
        self._copy(self._rgba, self._texture)
        self._server.publish_frame_texture(self._texture)

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = self._texture = None
