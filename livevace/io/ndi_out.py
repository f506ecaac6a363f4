"""NDI send: what TouchDesigner (NDI In TOP), Resolume, OBS and vMix pick up by name.

The pacer is the node's clock, so the sender is created unclocked (`clock_video=False`):
a clocked sender would pace a second time, and two clocks beating against each other add
up to a frame of latency and jitter. Frames go out as BGRX, converted with one SIMD pass
into one of two reused buffers and sent asynchronously: NDI compresses a frame on its own
thread while the next one is prepared, and releases a buffer when the next send returns,
so the double buffer is never written while NDI reads it. Each frame carries its capture
stamp and index in the frame metadata, so a receiver on the same host can measure
glass-to-glass latency.
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
        self._frames: list[tuple[object, np.ndarray]] = []
        self._n = 0

    def open(self, width: int, height: int, fps: float) -> None:
        ndi = ndilib()
        settings = ndi.SendCreate()
        settings.ndi_name = self.sender_name
        settings.clock_video = False
        sender = ndi.send_create(settings)
        if sender is None:
            raise SinkError(f"cannot create the NDI sender {self.sender_name!r}: another node "
                            "or program on this machine may be sending under that name; give "
                            f"this one its own (--sink ndi:{self.sender_name}-2)")
        frames = []
        for _ in range(2):
            video = ndi.VideoFrameV2()
            video.FourCC = ndi.FOURCC_VIDEO_TYPE_BGRX
            video.frame_rate_N, video.frame_rate_D = int(round(fps * 1000)), 1000
            video.frame_format_type = ndi.FRAME_FORMAT_TYPE_PROGRESSIVE
            frames.append((video, np.empty((height, width, 4), np.uint8)))
        self._ndi, self._sender, self._frames, self._n = ndi, sender, frames, 0

    def write(self, frame: Frame) -> None:
        assert self._ndi is not None
        video, buf = self._frames[self._n % 2]
        self._n += 1
        cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGRA, dst=buf)
        video.data = buf
        video.metadata = f'<livevace t_capture="{frame.t_capture:.6f}" index="{frame.index}"/>'
        self._ndi.send_send_video_async_v2(self._sender, video)

    @property
    def connections(self) -> int:
        """How many receivers are watching (0 when nobody is)."""
        if self._ndi is None:
            return 0
        return int(self._ndi.send_get_no_connections(self._sender, 0))

    def close(self) -> None:
        if self._ndi is not None and self._sender is not None:
            self._ndi.send_send_video_async_v2(self._sender, None)  # NDI lets go of our buffers
            self._ndi.send_destroy(self._sender)
        self._ndi = self._sender = None
        self._frames = []
