"""Live node statistics: what the status line prints and what OSC feedback echoes.

Every part of the node writes here from its own thread (capture, loop, pacer, sinks);
`Stats.snapshot()` returns one flat `dict[str, float]` so any consumer (terminal status,
OSC `/livevace/stats/<key>`, benchmarks) can read it without knowing the node's shape.

Keys of `snapshot()` (rates and timings over the last `window` seconds, counters since start):

- `uptime_s`                 seconds since the node started
- `fps_in`                   real frames per second from the source (slates excluded)
- `fps_pipeline`             frames per second coming out of the pipeline
- `fps_out`                  frames per second the pacer emits (held repeats included)
- `latency_p50_ms`, `latency_p95_ms`, `latency_p99_ms`
                             glass-to-glass: capture stamp → a sink finished writing the frame
                             (fresh frames only; a held repeat is not a new measurement)
- `stage_<name>_ms`          mean time of one step: `stage_pipeline_ms` (one pipeline call),
                             `stage_sink_<sink>_ms` (one write), `stage_capture_ms` (fit/convert);
                             the vace pipeline adds `stage_annotate_ms`, `stage_annotate_wait_ms`,
                             `stage_cache_ms`, `stage_encode_ms`, `stage_dit_ms`, `stage_decode_ms`
- `queue_capture`, `queue_pacer`, `queue_sink_<sink>`   current depths of the bounded queues
- `dropped_capture`, `dropped_pacer`, `dropped_sink_<sink>`   frames dropped there (counters)
- `dropped`                  all drops together
- `held`                     output ticks that repeated the last frame (generation was late)
- `pipeline_errors`          pipeline calls that raised (the picture held; logged once each)
- `frames_in`, `frames_out`  counters
- `no_signal`                1 while the source is silent and the slate is shown, else 0
- `failed_sink_<sink>`       1 once that sink has failed (it stopped; the show goes on), else 0
- `frames_sink_<sink>`       frames the sink wrote; once it failed or closed, the frames its
                             output really holds (a recording: those readable in the file)
- `pacer_jitter_ms`          p95 of |output interval − frame period|
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Sequence

from livevace.frames import now

LATENCY_SAMPLES = 2048
"""Latency samples kept for the percentiles (about half a minute at 60 fps)."""


def percentile(sorted_xs: Sequence[float], q: float) -> float:
    """The sample nearest the `q` quantile of sorted samples (0 when there are none); the
    benchmarks' Timing uses the same rule, so live stats and bench tables agree."""
    if not sorted_xs:
        return 0.0
    return sorted_xs[min(len(sorted_xs) - 1, int(round(q * (len(sorted_xs) - 1))))]


class Stats:
    """Thread-safe counters, rates, timings, gauges and latency samples."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._t0 = now()
        self._counters: dict[str, float] = defaultdict(float)
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._timings: dict[str, deque[tuple[float, float]]] = defaultdict(deque)
        self._gauges: dict[str, float] = {}
        self._latency: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._jitter: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter (frames_in, held, dropped_*…)."""
        with self._lock:
            self._counters[name] += n

    def event(self, rate: str, n: int = 1) -> None:
        """Record n events now for the rate `rate` (e.g. fps_in)."""
        t = now()
        with self._lock:
            q = self._events[rate]
            q.extend([t] * n)
            self._trim(q, t)

    def timing(self, stage: str, ms: float) -> None:
        """Record how long one step of `stage` took."""
        t = now()
        with self._lock:
            q = self._timings[stage]
            q.append((t, ms))
            while q and q[0][0] < t - self.window:
                q.popleft()

    def gauge(self, name: str, value: float) -> None:
        """Set a current value (queue depth, no_signal)."""
        with self._lock:
            self._gauges[name] = float(value)

    def latency(self, ms: float) -> None:
        with self._lock:
            self._latency.append(ms)

    def jitter(self, ms: float) -> None:
        with self._lock:
            self._jitter.append(abs(ms))

    def latencies(self) -> list[float]:
        """All kept latency samples (benchmarks read the full distribution)."""
        with self._lock:
            return list(self._latency)

    def _trim(self, q: deque[float], t: float) -> None:
        while q and q[0] < t - self.window:
            q.popleft()

    def snapshot(self) -> dict[str, float]:
        t = now()
        with self._lock:
            out: dict[str, float] = {"uptime_s": t - self._t0}
            span = min(self.window, max(t - self._t0, 1e-3))
            for rate in ("fps_in", "fps_pipeline", "fps_out"):
                q = self._events[rate]
                self._trim(q, t)
                out[rate] = len(q) / span
            lat = sorted(self._latency)
            out["latency_p50_ms"] = percentile(lat, 0.50)
            out["latency_p95_ms"] = percentile(lat, 0.95)
            out["latency_p99_ms"] = percentile(lat, 0.99)
            out["pacer_jitter_ms"] = percentile(sorted(self._jitter), 0.95)
            for stage, q in self._timings.items():
                while q and q[0][0] < t - self.window:
                    q.popleft()
                out[f"stage_{stage}_ms"] = sum(ms for _, ms in q) / len(q) if q else 0.0
            out.update(self._gauges)
            for name in ("frames_in", "frames_out", "held", "dropped_capture", "dropped_pacer"):
                out[name] = self._counters.get(name, 0.0)
            out.update(self._counters)
            out["dropped"] = sum(v for k, v in self._counters.items() if k.startswith("dropped_"))
            out.setdefault("no_signal", 0.0)
        return out


def status_line(s: dict[str, float]) -> str:
    """The one-line terminal status a VJ watches."""
    slate = "  NO SIGNAL" if s.get("no_signal") else ""
    failed = [k.removeprefix("failed_sink_") for k, v in s.items()
              if k.startswith("failed_sink_") and v]
    failures = f"  FAILED: {', '.join(failed)}" if failed else ""
    return (f"in {s['fps_in']:5.1f} fps  out {s['fps_out']:5.1f} fps  "
            f"latency p50 {s['latency_p50_ms']:5.1f} ms p95 {s['latency_p95_ms']:5.1f} ms  "
            f"pipeline {s.get('stage_pipeline_ms', 0.0):5.1f} ms  "
            f"held {int(s['held'])}  dropped {int(s['dropped'])}{slate}{failures}")


__all__ = ["Stats", "percentile", "status_line"]
