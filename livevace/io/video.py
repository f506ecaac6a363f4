"""Video file input (PyAV): decoded at the file's own rate and looped for ever, so a clip
can stand in for a camera during rehearsal."""

from __future__ import annotations

import os
from typing import Iterator

import av

from livevace.errors import SourceError
from livevace.frames import Frame, now
from livevace.io.clock import sleep_until


def _check_file(path: str) -> None:
    """Say what a path that cannot be a video file is, before FFmpeg gets it (a folder
    reads as 'not found' to FFmpeg, and /dev/zero would be read for ever)."""
    if os.path.isdir(path):
        raise SourceError(f"video {path!r} is a folder: give a video file in it, e.g. "
                          f"video:{os.path.join(path, 'clip.mp4')}")
    if not os.path.exists(path):
        raise SourceError(f"video {path!r} does not exist")
    if not os.path.isfile(path):
        raise SourceError(f"cannot read video {path!r}: it is a device or other special "
                          "file, not a video file (give a file such as clip.mp4)")


class VideoSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"video:{path}"
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._pending: av.VideoFrame | None = None
        self._period = 1 / 30
        self._origin = 0.0  # wall time of the current pass's t = 0
        self._last_due = 0.0

    def open(self) -> None:
        _check_file(self.path)
        try:
            container = av.open(self.path)
        except av.InvalidDataError:
            raise SourceError(f"cannot read video {self.path!r}: it is not a video file FFmpeg "
                              "can decode") from None
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot read video {self.path!r}: {exc}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.path!r} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self._period = 1 / float(rate) if rate else 1 / 30
        self._container = container
        self._restart(now())
        try:
            self._pending = self._decode()
        except SourceError:
            self.close()
            raise
        if self._pending is None:
            self.close()
            raise SourceError(f"{self.path!r} holds no decodable video frame")

    def _restart(self, origin: float) -> None:
        assert self._container is not None
        self._container.seek(0)
        self._frames = self._container.decode(video=0)
        self._origin = origin
        self._first: float | None = None

    def _decode(self) -> av.VideoFrame | None:
        assert self._frames is not None
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"video {self.path!r} stopped decoding: {exc}") from None

    def _due(self, frame: av.VideoFrame) -> float:
        t = frame.time if frame.time is not None else 0.0
        if self._first is None:
            self._first = t
        return self._origin + (t - self._first)

    def read(self, timeout: float) -> Frame | None:
        if self._container is None:
            raise SourceError(f"{self.name} is closed")
        if self._pending is None:
            self._pending = self._decode()
            if self._pending is None:  # end of file: loop, one frame after the last one
                self._restart(self._last_due + self._period)
                self._pending = self._decode()
                if self._pending is None:
                    raise SourceError(f"video {self.path!r} yields no frames")
        due = self._due(self._pending)
        late = sleep_until(due, timeout)
        if late is None:
            return None
        if late > 1.0:  # stalled (machine busy): resume from here rather than race
            self._origin += late
            due += late
        image = self._pending.to_ndarray(format="rgb24")
        self._pending = None
        self._last_due = due
        return Frame(image, now())

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None
            self._pending = None
