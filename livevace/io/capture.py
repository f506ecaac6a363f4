"""The capture thread: one Source read in its own thread, frames fitted to the output size
into a small drop-oldest queue the loop takes from.

It keeps the show going when the source does not: while the source is silent it shows the
"no signal" slate (or, with `no_signal="hold"`, sends nothing so the pacer holds the last
picture), reopens a source that failed or stayed silent, and says so once in the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Literal

from livevace.errors import SourceError
from livevace.frames import Frame, Source, now
from livevace.imaging import fit
from livevace.io.slate import Slate
from livevace.stats import Stats

log = logging.getLogger("livevace.capture")

NoSignal = Literal["slate", "hold"]


def is_slate(frame: Frame) -> bool:
    return bool(frame.meta.get("slate"))


class Capture:
    def __init__(self, source: Source, width: int, height: int, fps: float,
                 stats: Stats | None = None, *, no_signal: NoSignal = "slate",
                 no_signal_after: float = 0.5, reopen_after: float = 2.0,
                 capacity: int = 4) -> None:
        self.source = source
        self.width, self.height, self.period = width, height, 1.0 / fps
        self.stats = stats or Stats()
        self.no_signal = no_signal
        self.no_signal_after = no_signal_after
        self.reopen_after = reopen_after
        self.capacity = capacity
        """Most frames queued; `take` raises it to twice what the pipeline asks for."""
        self._slate = Slate(width, height, source.name)
        self._queue: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._is_open = False
        self._count = 0
        self._handed = -1
        """The index of the newest frame handed to a take's `early` (never handed twice,
        also when a take times out and the next one waits on)."""

    def start(self) -> None:
        """Open the source here (so a missing camera or unreadable file fails the start
        with its one-line reason), then read it in the capture thread."""
        self.source.open()
        self._is_open = True
        self._thread = threading.Thread(target=self._run, name="livevace-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                log.warning("%s did not stop within 5 s", self.source.name)
            self._thread = None
        self._close_source()

    def _close_source(self) -> None:
        if self._is_open:
            self._is_open = False
            try:
                self.source.close()
            except Exception as exc:  # a backend failing on close must not stop shutdown
                log.warning("closing %s: %s", self.source.name, exc)

    def _reopen(self) -> bool:
        self._close_source()
        try:
            self.source.open()
        except SourceError as exc:
            log.debug("reopening %s failed: %s", self.source.name, exc)
            return False
        self._is_open = True
        return True

    def _run(self) -> None:
        last_real = now()
        next_slate = next_reopen = 0.0
        lost = missing = False
        while not self._stop.is_set():
            frame = None
            if self._is_open:
                try:
                    frame = self.source.read(timeout=self.period)
                except Exception as exc:  # SourceError, or a backend fault: same cure
                    if not lost:
                        log.warning("source %s lost: %s; showing %s, reconnecting",
                                    self.source.name, exc, self.no_signal)
                        lost = True
                    self._close_source()
                    next_reopen = now() + 1.0
            t = now()
            if frame is not None:
                if lost or missing:
                    log.info("source %s is back", self.source.name)
                    lost = missing = False
                last_real = t
                self._push(self._fit(frame))
                self.stats.gauge("no_signal", 0)
                continue
            silent = t - last_real
            if not self._is_open or (silent > self.reopen_after and t >= next_reopen):
                if t >= next_reopen:
                    next_reopen = t + (self.reopen_after if self._is_open else 1.0)
                    self._reopen()
                if not self._is_open:
                    self._stop.wait(min(self.period, 0.05))
            if silent > self.no_signal_after:
                if not (missing or lost):
                    log.warning("no signal from %s: showing %s", self.source.name, self.no_signal)
                missing = True
                self.stats.gauge("no_signal", 1)
                if self.no_signal == "slate" and t >= next_slate:
                    next_slate = max(next_slate + self.period, t - self.period)
                    self._push(Frame(self._slate.render(silent), t, meta={"slate": True}))

    def _fit(self, frame: Frame) -> Frame:
        t0 = time.perf_counter()
        image = fit(frame.image, self.width, self.height)
        self.stats.timing("capture", (time.perf_counter() - t0) * 1e3)
        self.stats.event("fps_in")
        self.stats.count("frames_in")
        index, self._count = self._count, self._count + 1  # input frames numbered from 0
        if image is frame.image and frame.index == index:
            return frame
        return Frame(image, frame.t_capture, index, frame.meta)

    def _push(self, frame: Frame) -> None:
        with self._cond:
            self._queue.append(frame)
            self._drop(max(0, len(self._queue) - self.capacity))
            self.stats.gauge("queue_capture", len(self._queue))
            self._cond.notify_all()

    def take(self, n: int, timeout: float,
             early: Callable[[list[Frame]], None] | None = None) -> list[Frame]:
        """The newest `n` consecutive frames, or one slate frame while there is no signal;
        [] on timeout.

        Older frames are dropped: when the pipeline falls behind, a live node shows the
        present, not a backlog. Real frames a slate overtook are stale and dropped too.
        `early` is handed, in order and once each, the frames that will be taken while the
        call still waits for the rest (`Foresight`): work on them starts as they come. It
        is called under the queue's lock, so it must only queue work.
        """
        deadline = now() + timeout
        with self._cond:
            self.capacity = max(4, 2 * n)
            while True:
                slate_at = next((i for i, f in enumerate(self._queue) if is_slate(f)), None)
                if slate_at == 0:
                    return [self._queue.popleft()]
                real = len(self._queue) if slate_at is None else slate_at
                if slate_at is not None and real < n:
                    self._drop(real)
                    continue
                if real >= n:
                    self._drop(real - n)
                    taken = [self._queue.popleft() for _ in range(n)]
                    self.stats.gauge("queue_capture", len(self._queue))
                    return taken
                if early is not None:
                    fresh = [f for f in self._queue if f.index > self._handed]
                    if fresh:
                        self._handed = fresh[-1].index
                        early(fresh)
                left = deadline - now()
                if left <= 0 or self._stop.is_set():
                    return []
                self._cond.wait(left)

    def _drop(self, k: int) -> None:
        for _ in range(k):
            self._queue.popleft()
        if k:
            self.stats.count("dropped_capture", k)
