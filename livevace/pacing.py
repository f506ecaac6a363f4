"""The output pacer: bursts of generated frames in, one steady frame every 1/fps out.

A generator returns frames in bursts (12 at once every ~0.4 s); sinks and VJ hosts want an
even stream. The pacer runs its own clock thread and, at every output slot, emits:

- the next queued frame, spaced exactly one period after the previous emission when it was
  already waiting (a burst plays out evenly);
- a frame that arrives live (after the previous emission) as soon as it comes, up to a
  quarter period early, so a steady source passes with no added latency and the output
  phase follows the input instead of drifting against it;
- the last frame again ("held") when nothing came by the slot plus a grace of half a
  period; consecutive holds keep the exact period, so output never stops or slows; a late
  frame that comes after a hold follows it half a period later (not a full one: it is
  already late).

When the queue does not empty for two burst intervals the producer is ahead: the frames
that stood in the queue all that time are dropped (oldest first), so a faster source (a
60 fps camera into 30 fps output) cannot build up latency; a hard cap bounds the queue
whatever happens. Output intervals stay within [0.5, 1.5] periods.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

from livevace.frames import Frame, now
from livevace.stats import Stats

log = logging.getLogger("livevace.pacer")

Emit = Callable[[Frame, bool], None]
"""Receives every output frame and whether it is fresh (False: a held repeat)."""

EARLY = 0.25
"""Fraction of a period a live frame may come early (lets the phase follow the input)."""
GRACE = 0.5
"""Fraction of a period the pacer waits past a slot before it holds."""
AFTER_HOLD = 0.5
"""Fraction of a period after a hold before a late frame may follow it."""
LATE_WAKE = 0.5
"""Fraction of a period the clock thread may wake late and still keep the grid: in a busy
node it waits for the GIL (5 ms switch interval, a third of a 60 fps period), and a grid that
followed each late wake-up would lose those milliseconds on every one — a steady 60 fps
producer came out at 56–59 fps. Later than this, the grid restarts from now."""


class Pacer:
    """Steady output at `fps` from bursty input; `push` never blocks."""

    def __init__(self, fps: float, emit: Emit, stats: Stats | None = None, *,
                 max_frames: int | None = None, trim_window: float = 1.0,
                 max_queue: int = 64) -> None:
        self.period = 1.0 / fps
        self.emit = emit
        self.stats = stats or Stats()
        self.max_frames = max_frames
        self.trim_window = trim_window
        self.max_queue = max_queue
        self.done = threading.Event()
        """Set when `max_frames` frames have been emitted."""
        self._queue: deque[tuple[Frame, float]] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._last_frame: Frame | None = None
        self._last_t = 0.0  # the slot of the last emission (the grid)
        self._last_emit = 0.0  # when it actually went out
        self._last_was_hold = False
        self._emitted = 0
        self._min_depth = 0
        self._min_since = 0.0
        self._last_push = 0.0
        self._push_gap = self.period  # running mean of the time between bursts
        self._burst = 1  # frames in the latest burst

    # --- producer side
    def push(self, frames: list[Frame]) -> None:
        """Queue a burst (called by the loop after each pipeline call)."""
        if not frames:
            return
        t = now()
        with self._cond:
            if self._last_push:
                self._push_gap += 0.2 * (t - self._last_push - self._push_gap)
            else:  # until a second burst says otherwise, assume the producer is on rate
                self._push_gap = len(frames) * self.period
            self._last_push = t
            self._burst = len(frames)
            self._queue.extend((f, t) for f in frames)
            while len(self._queue) > self.max_queue:
                self._queue.popleft()
                self.stats.count("dropped_pacer")
            self.stats.gauge("queue_pacer", len(self._queue))
            self._cond.notify()

    def set_fps(self, fps: float) -> None:
        """Change the output rate (a live `output_fps`); the next slot follows it."""
        with self._cond:
            self.period = 1.0 / fps
            self._cond.notify()

    @property
    def fps(self) -> float:
        return 1.0 / self.period

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    # --- clock thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="livevace-pacer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _wait_until(self, t: float, *, for_frame: bool) -> None:
        """Sleep (lock held, released while waiting) until `t`, a stop, or — with
        `for_frame` — a queued frame."""
        while not self._stopped and not (for_frame and self._queue):
            left = t - now()
            if left <= 0:
                return
            self._cond.wait(min(left, 1.0))

    def _run(self) -> None:
        while True:
            with self._cond:
                picked = self._next()
                if picked is None:
                    return
                frame, fresh = picked
            self.emit(frame, fresh)
            self._emitted += 1
            if self.max_frames is not None and self._emitted >= self.max_frames:
                self.done.set()
                return

    def _next(self) -> tuple[Frame, bool] | None:
        """Choose what the next slot shows and wait for its time (lock held)."""
        if self._last_frame is None:
            self._wait_until(float("inf"), for_frame=True)
            if self._stopped:
                return None
            return self._take(now(), now())
        slot = self._last_t + self.period
        hold_at = slot if self._last_was_hold else slot + GRACE * self.period
        self._wait_until(hold_at, for_frame=True)
        if self._stopped:
            return None
        if not self._queue:
            t = now()
            self.stats.count("held")
            self._record_emit(t, self._on_grid(hold_at, t))
            self._last_was_hold = True
            return self._last_frame, False
        _, arrived = self._queue[0]
        live = arrived > self._last_t
        earliest = slot
        if live and self._last_was_hold:  # late, after a repeat: show it soon, not doubled up
            earliest = self._last_emit + AFTER_HOLD * self.period
        elif live:
            earliest = max(slot - EARLY * self.period,
                           self._last_emit + (1 - EARLY) * self.period)
        self._wait_until(earliest, for_frame=False)
        if self._stopped:
            return None
        # The frame's slot: `earliest` when it waited for it, its arrival when it came late
        # (the phase follows the input) — not when this thread happened to wake.
        t = now()
        return self._take(t, self._on_grid(max(earliest, arrived), t))

    def _on_grid(self, due: float, t: float) -> float:
        """The slot an emission at `t` that was due at `due` fills (see `LATE_WAKE`)."""
        return due if t - due < LATE_WAKE * self.period else t

    def _take(self, t: float, slot: float) -> tuple[Frame, bool]:
        frame, _ = self._queue.popleft()
        self._trim(t)
        self._record_emit(t, slot)
        self._last_frame = frame
        self._last_was_hold = False
        self.stats.gauge("queue_pacer", len(self._queue))
        return frame, True

    def _record_emit(self, t: float, slot: float) -> None:
        if self._last_frame is not None:
            self.stats.jitter((t - self._last_emit - self.period) * 1e3)
        self._last_emit = t
        self._last_t = slot
        self.stats.count("frames_out")
        self.stats.event("fps_out")

    def _trim(self, t: float) -> None:
        """Drop the standing backlog when the queue has not emptied for two burst
        intervals (at most `trim_window` seconds, at least one burst's play-out): longer than any on-rate producer keeps
        frames queued, short enough that a faster source adds little latency."""
        depth = len(self._queue)
        playout = (self._burst + 1) * self.period  # a burst stands this long by itself
        window = max(playout, min(self.trim_window, max(2 * self._push_gap, 2 * self.period)))
        if depth == 0 or t - self._min_since > window:
            if depth > 0 and self._min_depth > 0:
                standing = min(self._min_depth, depth)
                for _ in range(standing):
                    self._queue.popleft()
                self.stats.count("dropped_pacer", standing)
                log.debug("pacer ahead: dropped the %d oldest of %d frames", standing, depth)
            self._min_depth = len(self._queue)
            self._min_since = t
        else:
            self._min_depth = min(self._min_depth, depth)
