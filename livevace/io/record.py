"""Recorder: the paced output to an H.264 .mp4 (PyAV), one file per run.

The file is a fragmented MP4 (a fragment per keyframe, one keyframe a second, each flushed
to disk as it completes): if the process is killed outright, everything up to the last
fragment still plays. A normal stop
(Ctrl-C, SIGTERM, --max-frames, --duration) drains the queue, flushes the encoder and
closes the file properly. An existing file is never overwritten: the next free name
(`show-1.mp4`, `show-2.mp4`…) is used and logged; `%Y%m%d-%H%M%S`-style fields expand.
"""

from __future__ import annotations

import logging
import time
from fractions import Fraction
from pathlib import Path

import av

from livevace.errors import SinkError
from livevace.frames import Frame

log = logging.getLogger("livevace.record")

CODECS = ("libx264", "h264", "mpeg4")


def free_path(template: str) -> Path:
    path = Path(time.strftime(template)).expanduser()
    if path.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        path = path.with_name(path.name + ".mp4")
    n = 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


class RecordSink:
    queue_size = 60  # a second or two of slack for encoder hiccups; recording should not drop

    def __init__(self, template: str) -> None:
        self.template = template
        self.name = f"record:{template}"
        self.path: Path | None = None
        self._container = None
        self._stream = None
        self._n = 0

    def open(self, width: int, height: int, fps: float) -> None:
        path = free_path(self.template)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(path), "w", options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"})
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(f"cannot write {str(path)!r}: {exc}") from None
        rate = Fraction(fps).limit_denominator(1001)
        stream = None
        for codec in CODECS:
            try:
                stream = container.add_stream(codec, rate=rate)
                break
            except (av.FFmpegError, ValueError):
                continue
        if stream is None:
            container.close()
            raise SinkError("this PyAV build has no H.264 or MPEG-4 encoder; reinstall av")
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1) / rate
        gop = max(1, int(round(fps)))
        stream.codec_context.gop_size = gop
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "veryfast", "crf": "18", "tune": "zerolatency",
                              "x264-params": f"keyint={gop}:min-keyint={gop}"}
        self._container, self._stream, self.path, self._n = container, stream, path, 0
        if str(path) != time.strftime(self.template):
            log.info("recording to %s (the name asked for exists)", path)
        else:
            log.info("recording to %s", path)

    def write(self, frame: Frame) -> None:
        assert self._stream is not None and self._container is not None
        vf = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        vf.pts = self._n
        self._n += 1
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            log.info("recording finished: %s (%d frames)", self.path, self._n)
            self._container = self._stream = None
