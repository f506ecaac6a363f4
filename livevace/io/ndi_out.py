"""NDI send: what TouchDesigner (NDI In TOP), Resolume, OBS and vMix pick up by name.

The pacer is the node's clock, so the sender is created unclocked (`clock_video=False`):
a clocked sender would pace a second time, and two clocks beating against each other add
up to a frame of latency and jitter. Frames go out as BGRX converted with one SIMD pass
into a reused buffer (NDI compresses them itself); each carries its capture stamp and index
in the frame metadata, so a receiver on the same host can measure glass-to-glass latency.
"""

from __future__ import annotations

import cv2
import numpy as np

from livevace.errors import SinkError
from livevace.frames import Frame
from livevace.io.ndi import ndilib


class NdiSink:
    queue_size = 2

    def __init__(self, sender_name: str) -> None:
        self.sender_name = sender_name
        self.name = f"ndi:{sender_name}"
        self._ndi = None
        self._sender = None
        self._buf: np.ndarray | None = None
        self._video = None

    def open(self, width: int, height: int, fps: float) -> None:
        ndi = ndilib()
        settings = ndi.SendCreate()
        settings.ndi_name = self.sender_name
        settings.clock_video = False
        sender = ndi.send_create(settings)
        if sender is None:
            raise SinkError(f"cannot create the NDI sender {self.sender_name!r}")
        video = ndi.VideoFrameV2()
        video.FourCC = ndi.FOURCC_VIDEO_TYPE_BGRX
        video.frame_rate_N, video.frame_rate_D = int(round(fps * 1000)), 1000
        video.frame_format_type = ndi.FRAME_FORMAT_TYPE_PROGRESSIVE
        self._ndi, self._sender, self._video = ndi, sender, video
        self._buf = np.empty((height, width, 4), np.uint8)

    def write(self, frame: Frame) -> None:
        assert self._ndi is not None and self._buf is not None
        cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGRA, dst=self._buf)
        self._video.data = self._buf
        self._video.metadata = f'<livevace t_capture="{frame.t_capture:.6f}" index="{frame.index}"/>'
        self._ndi.send_send_video_v2(self._sender, self._video)

    @property
    def connections(self) -> int:
        """How many receivers are watching (0 when nobody is)."""
        if self._ndi is None:
            return 0
        return int(self._ndi.send_get_no_connections(self._sender, 0))

    def close(self) -> None:
        if self._ndi is not None and self._sender is not None:
            self._ndi.send_destroy(self._sender)
        self._ndi = self._sender = self._video = self._buf = None
