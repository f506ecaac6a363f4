"""Recorder: the paced output to an H.264 .mp4 (PyAV), one file per run.

The file is a fragmented MP4 (a fragment per keyframe, one keyframe a second, each flushed
to disk as it completes): if the process is killed outright, everything up to the last
fragment still plays. A normal stop
(Ctrl-C, SIGTERM, --max-frames, --duration) drains the queue, flushes the encoder and
closes the file properly. An existing file is never overwritten: the next free name
(`show-1.mp4`, `show-2.mp4`…) is used and logged; `%Y%m%d-%H%M%S`-style fields expand.

A write that fails (the disk is full) tears the fragment being written. The recorder writes
the file itself (`DiskFile`: PyAV's own file I/O loses an error in its final flush, so a
disk that filled while the file was finished looked like a normal stop), knows where the
last whole fragment ended (the muxer writes a fragment out when the next keyframe comes),
cuts the torn tail off and says how many of the frames it was given the file really holds
(`kept`): every one of them plays.
"""

from __future__ import annotations

import errno
import logging
import os
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


class DiskFile:
    """The recording's file, as PyAV writes it: each write whole or an error, and the first
    error kept (PyAV forgets one in its final flush)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)  # PyAV picks the container format from it
        self._raw = open(path, "xb", buffering=0)
        self.error: OSError | None = None

    @property
    def size(self) -> int:
        return os.fstat(self._raw.fileno()).st_size

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                n = self._raw.write(view)
                if not n:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
                view = view[n:]
        except OSError as exc:
            self.error = self.error or exc
            raise
        return len(data)

    def cut(self, size: int) -> None:
        self._raw.truncate(size)

    @property
    def closed(self) -> bool:  # PyAV looks before it writes a trailer at garbage collection
        return self._raw.closed

    def close(self) -> None:
        self._raw.close()


class RecordSink:
    queue_size = 60  # a second or two of slack for encoder hiccups; recording should not drop

    def __init__(self, template: str) -> None:
        self.template = template
        self.name = f"record:{template}"
        self.path: Path | None = None
        self._file: DiskFile | None = None
        self._container = None
        self._stream = None
        self._n = 0
        self._muxed = 0
        self._whole_bytes = 0
        self.kept = 0
        """Frames in whole fragments on disk: what a player reads back, even after a failure."""
        self.error: Exception | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        path = free_path(self.template)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = DiskFile(path)
        except OSError as exc:
            raise SinkError(f"cannot write {str(path)!r}: {exc}") from None
        try:
            container = av.open(file, "w", options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"})
        except (OSError, ValueError, av.FFmpegError) as exc:
            file.close()
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
            file.close()
            raise SinkError("this PyAV build has no H.264 or MPEG-4 encoder; reinstall av")
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1) / rate
        gop = max(1, int(round(fps)))
        stream.codec_context.gop_size = gop
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "veryfast", "crf": "18", "tune": "zerolatency",
                              "x264-params": f"keyint={gop}:min-keyint={gop}"}
        self._file, self._container, self._stream, self.path = file, container, stream, path
        if str(path) != time.strftime(self.template):
            log.info("recording to %s (the name asked for exists)", path)
        else:
            log.info("recording to %s", path)

    def write(self, frame: Frame) -> None:
        assert self._stream is not None and self._container is not None
        vf = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        vf.pts = self._n
        self._n += 1
        try:
            for packet in self._stream.encode(vf):
                self._mux(packet)
        except Exception as exc:
            self.error = exc
            raise

    def _mux(self, packet: av.Packet) -> None:
        assert self._file is not None and self._container is not None
        keyframe = packet.is_keyframe
        self._container.mux(packet)
        if keyframe:  # the fragment before it is now on disk, whole (flush_packets)
            self.kept, self._whole_bytes = self._muxed, self._file.size
        self._muxed += 1

    def close(self) -> None:
        """Finish the file; after a failed write, cut it back to its last whole fragment
        (raising SinkError when the failure is new: the disk filled while finishing)."""
        if self._container is None or self._file is None:
            return
        failed_before = self.error is not None
        try:
            if not failed_before:
                for packet in self._stream.encode(None):
                    self._mux(packet)
        except (OSError, av.FFmpegError) as exc:
            self.error = exc
        try:
            self._container.close()
        except (OSError, av.FFmpegError) as exc:
            self.error = self.error or exc
        self.error = self.error or self._file.error
        try:
            if self.error is not None:
                self._file.cut(self._whole_bytes)  # a torn fragment is noise to a player
        finally:
            self._file.close()
            self._container = self._stream = self._file = None
        if self.error is None:
            self.kept = self._muxed
            log.info("recording finished: %s (%d frames)", self.path, self.kept)
            return
        log.error("recording FAILED: %s holds %d of the %d frames given (up to its last whole "
                  "fragment): %s", self.path, self.kept, self._n, self.error)
        if not failed_before:
            raise SinkError(f"cannot finish {str(self.path)!r}: {self.error}")
