"""One sink behind its own thread and a bounded drop-oldest queue.

The pacer hands every output frame to every runner without waiting; a slow sink (a
recorder on a busy disk, a stalled network) drops its own oldest frames and never holds up
the loop or the other sinks. The sink's open, write and close all run on its thread (Spout
and Syphon bind GPU contexts to the thread that made them); `start` still waits for the
open so a sink that cannot work fails the start with its one-line reason. A sink that
fails mid-show (or while finishing) is closed and logged once; the show goes on without
it, and the failure stays in sight: `failed_sink_<key>` is 1 in the stats (the status line
and `/livevace/stats/*` show it), `frames_sink_<key>` drops to the frames the sink really
kept (a recording: the frames readable in the file), and `failure()` says it at the stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from livevace.errors import SinkError
from livevace.frames import Frame, Sink, now
from livevace.imaging import fit
from livevace.stats import Stats

log = logging.getLogger("livevace.sink")

OPEN_TIMEOUT = 20.0


class SinkRunner:
    def __init__(self, sink: Sink, key: str, width: int, height: int, fps: float,
                 stats: Stats | None = None) -> None:
        self.sink = sink
        self.key = key
        """Short unique name used in stats keys (ndi, record, record_2…)."""
        self.size = (width, height, fps)
        self.stats = stats or Stats()
        self.capacity = int(getattr(sink, "queue_size", 2))
        self.threaded = not getattr(sink, "main_thread", False)
        self.failed = False
        self.error: Exception | None = None
        self.given = 0
        """Frames handed to the sink's write (the one that failed included)."""
        self.written = 0
        self._queue: deque[tuple[Frame, bool]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._drain_until = 0.0
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._is_open = False
        self.stats.gauge(f"failed_sink_{key}", 0)
        self.stats.gauge(f"frames_sink_{key}", 0)

    @property
    def kept(self) -> int:
        """Frames the sink's output really holds (a recorder says; others: those written)."""
        return int(getattr(self.sink, "kept", self.written))

    def failure(self) -> str | None:
        """One line for the stop summary when the sink failed, else None."""
        if not self.failed:
            return None
        return (f"{self.sink.name} FAILED ({self.error}): it holds {self.kept} of the "
                f"{self.given} frames it was given")

    def _fail(self, exc: Exception, then: str) -> None:
        self.failed, self.error = True, exc
        self.stats.gauge(f"failed_sink_{self.key}", 1)
        log.error("sink %s failed: %s (%s)", self.sink.name, exc, then)

    # --- lifecycle
    def start(self) -> None:
        if not self.threaded:
            self._open()
            return
        self._thread = threading.Thread(target=self._run, name=f"livevace-sink-{self.key}",
                                        daemon=True)
        self._thread.start()
        if not self._opened.wait(OPEN_TIMEOUT):
            raise SinkError(f"{self.sink.name} did not open within {OPEN_TIMEOUT:.0f} s")
        if self._open_error is not None:
            self._thread.join(timeout=1)
            raise self._open_error

    def _open(self) -> None:
        width, height, fps = self.size
        self.sink.open(width, height, fps)
        self._is_open = True

    def close(self, drain: float = 3.0) -> None:
        """Write what is queued (up to `drain` seconds), then close the sink."""
        with self._cond:
            self._stopping = True
            self._drain_until = now() + drain
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=drain + 5)
            if self._thread.is_alive():
                log.warning("sink %s did not close in time", self.sink.name)
            self._thread = None
        else:
            self.pump()
            self._close_sink()

    def _close_sink(self) -> None:
        if self._is_open:
            self._is_open = False
            try:
                self.sink.close()
            except Exception as exc:
                if not self.failed:
                    self._fail(exc, "while closing")
            self.stats.gauge(f"frames_sink_{self.key}", self.kept)

    # --- frames
    def put(self, frame: Frame, fresh: bool = True) -> None:
        """Queue a frame (never blocks); the oldest goes when the queue is full."""
        with self._cond:
            if self._stopping or self.failed:
                return
            self._queue.append((frame, fresh))
            while len(self._queue) > self.capacity:
                self._queue.popleft()
                self.stats.count(f"dropped_sink_{self.key}")
            self.stats.gauge(f"queue_sink_{self.key}", len(self._queue))
            self._cond.notify()

    def pump(self) -> None:
        """Write what is queued now (main-thread sinks: called by the UI loop)."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                item = self._queue.popleft()
            self._write(*item)

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue or (self._stopping and now() > self._drain_until):
                        return
                    item = self._queue.popleft()
                self._write(*item)
        finally:
            self._close_sink()

    def _write(self, frame: Frame, fresh: bool) -> None:
        if self.failed:
            return
        width, height, _ = self.size
        if frame.width != width or frame.height != height:
            frame = Frame(fit(frame.image, width, height), frame.t_capture, frame.index, frame.meta)
        t0 = time.perf_counter()
        self.given += 1
        try:
            self.sink.write(frame)
        except Exception as exc:
            self._fail(exc, "it stops; the show goes on")
            with self._cond:
                self._queue.clear()
            self._close_sink()
            return
        t1 = time.perf_counter()
        self.written += 1
        self.stats.gauge(f"frames_sink_{self.key}", self.written)
        self.stats.timing(f"sink_{self.key}", (t1 - t0) * 1e3)
        if fresh:
            self.stats.latency((now() - frame.t_capture) * 1e3)
