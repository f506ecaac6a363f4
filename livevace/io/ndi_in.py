"""NDI receive: by name through discovery (`ndi:Name`) or directly (`ndi:HOST:PORT`).

A source that is not there yet is not an error: `read` keeps returning None (the capture
thread shows the slate) and looks the name up again every RESOLVE_EVERY seconds. NDI
receivers do not reconnect to a sender that restarted (it comes back on a new port), so a
receiver by name that loses its sender is let go at once and the name looked up afresh; by
address the receiver is kept: it reconnects by itself when the sender is back there.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from livevace.errors import SourceError
from livevace.frames import Frame, now
from livevace.io.ndi import DEFAULT_EXTRA_IPS, Discovery, ndilib

log = logging.getLogger("livevace.ndi")

RESOLVE_EVERY = 0.5


class NdiSource:
    def __init__(self, target: str, *, address: bool = False,
                 extra_ips: tuple[str, ...] = DEFAULT_EXTRA_IPS) -> None:
        self.target = target
        self.address = address
        self.extra_ips = extra_ips
        self.name = f"ndi:{target}"
        self._ndi = None
        self._recv = None
        self._next_resolve = 0.0
        self._connected = False

    def open(self) -> None:
        self._ndi = ndilib()
        self._connect(wait=0.5)

    def _connect(self, wait: float) -> None:
        ndi = self._ndi
        source = ndi.Source()
        if self.address:
            source.url_address = self.target
        else:
            found = Discovery.shared(self.extra_ips).resolve(self.target, wait=wait)
            self._next_resolve = time.monotonic() + RESOLVE_EVERY
            if found is None:
                return
            source.ndi_name = found.name
            if found.url:
                source.url_address = found.url
            log.info("NDI source %r found at %s", found.name, found.url or "(mDNS)")
        settings = ndi.RecvCreateV3()
        settings.source_to_connect_to = source
        settings.color_format = ndi.RECV_COLOR_FORMAT_RGBX_RGBA
        settings.bandwidth = ndi.RECV_BANDWIDTH_HIGHEST
        settings.ndi_recv_name = "livevace"
        recv = ndi.recv_create_v3(settings)
        if recv is None:
            raise SourceError(f"cannot create an NDI receiver for {self.target!r}")
        self._recv, self._connected = recv, False

    def read(self, timeout: float) -> Frame | None:
        ndi = self._ndi
        if ndi is None:
            raise SourceError(f"{self.name} is closed")
        if self._recv is None:
            if time.monotonic() >= self._next_resolve:
                self._connect(wait=min(timeout, 0.25))
            if self._recv is None:
                time.sleep(max(0.0, min(timeout, self._next_resolve - time.monotonic())))
                return None
        kind, video, _, _ = ndi.recv_capture_v2(self._recv, max(1, int(timeout * 1000)))
        if kind == ndi.FRAME_TYPE_VIDEO:
            try:
                fps = video.frame_rate_N / video.frame_rate_D if video.frame_rate_D else 0.0
                data = np.asarray(video.data)[:, : video.xres]
                code = cv2.COLOR_RGBA2RGB if data.shape[2] == 4 else None
                if code is None:
                    raise SourceError(f"NDI sent an unexpected format {video.FourCC}")
                image = cv2.cvtColor(data, code)
            finally:
                ndi.recv_free_video_v2(self._recv, video)
            self._connected = True
            return Frame(image, now(), meta={"fps": fps})  # the sender's stated rate
        if kind == ndi.FRAME_TYPE_ERROR:
            raise SourceError(f"NDI connection to {self.target!r} lost")
        if not self.address:
            self._let_go_when_gone()
        return None

    def _let_go_when_gone(self) -> None:
        """Drop a receiver whose sender went away, so the next read looks the name up."""
        assert self._ndi is not None and self._recv is not None
        connected = self._ndi.recv_get_no_connections(self._recv) > 0
        if self._connected and not connected:
            log.info("NDI source %r went away; looking for it again", self.target)
            self._ndi.recv_destroy(self._recv)
            self._recv, self._next_resolve = None, 0.0
        self._connected = connected

    def close(self) -> None:
        if self._recv is not None and self._ndi is not None:
            self._ndi.recv_destroy(self._recv)
        self._recv = None
        self._ndi = None
