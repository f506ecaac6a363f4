"""The node: source → capture thread → loop thread (pipeline) → output stage → pacer → one
thread per sink.

The loop thread is the only one that runs the pipeline (the GPU's thread, later). Once per
call it asks the pipeline how many input frames it wants, takes the newest that many from
the capture queue (a pipeline with `Foresight` is handed them as they come, while the take
waits for the rest), ticks the control service, snapshots the live parameters (triggers are
consumed into the snapshot), runs the pipeline and hands the burst on: through the output
stage (`livevace.output`: interpolation to `output_fps`, upscaling to `output_size`, on its
own thread; straight through while both are off) to the pacer. The sinks open at the output
format the parameters give at the start; a live `output_fps` changes the pacer's rate (NDI
and Spout follow; a recording keeps its rate), a live `output_size` is not made: the stage
makes every frame at the size the sinks opened at, and says so once. The loop never waits on
a sink, and a source's trouble reaches it only as slate frames, which skip the pipeline.
`pause` stops the calls; the pacer then holds the last picture. Every frame the pacer emits
also goes to the taps (the control page's preview), which only keep a reference and return
at once.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable, Protocol, Sequence

from livevace.config import RunConfig
from livevace.errors import UserError
from livevace.frames import Foresight, Frame, Pipeline, Sink, Source, now
from livevace.io import make_sink, make_source, parse_sink, parse_source
from livevace.io.capture import Capture, is_slate
from livevace.io.sinkrunner import SinkRunner
from livevace.output.settings import OutputSettings
from livevace.output.stage import OutputStage
from livevace.pacing import Pacer
from livevace.params import REGISTRY, ParamStore
from livevace.stats import Stats

log = logging.getLogger("livevace.loop")

TRIGGERS = tuple(p.name for p in REGISTRY if p.kind == "trigger")
TAKE_TIMEOUT = 0.1
SWITCH_INTERVAL_S = 0.0005
"""How long a Python thread may hold the GIL while another waits, while a node runs. The
pacer's clock thread must wake within a fraction of a frame period; Python's default (5 ms)
is a third of a 60 fps period, and the node's other threads (the pipeline's host work, the
output stage, the sinks) kept it waiting that long often enough to cost frames."""

Tap = Callable[[Frame, bool], None]
"""Sees every output frame and whether it is fresh; must return at once (never blocks)."""


class Ticker(Protocol):
    """What the loop needs of the control service."""

    def tick(self) -> None: ...


def sink_keys(sinks: list[Sink]) -> list[str]:
    """Short unique stats names: ndi, record, record_2…"""
    keys: list[str] = []
    for sink in sinks:
        base = sink.name.split(":", 1)[0]
        key, n = base, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


class Node:
    def __init__(self, config: RunConfig, store: ParamStore, pipeline: Pipeline, source: Source,
                 sinks: list[Sink], stats: Stats | None = None, control: Ticker | None = None,
                 taps: Sequence[Tap] = ()) -> None:
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.stats = stats or Stats()
        self.control = control
        w, h, fps = config.width, config.height, config.fps
        self.capture = Capture(source, w, h, fps, self.stats, no_signal=config.no_signal)  # type: ignore[arg-type]
        out = OutputSettings.of(store.snapshot(), w, h)
        self.out_width, self.out_height = out.size or (w, h)
        self.out_fps = out.rate or fps
        """The sinks' format, from output_size / output_fps at the start (module doc)."""
        self.runners = [SinkRunner(s, k, self.out_width, self.out_height, self.out_fps, self.stats)
                        for s, k in zip(sinks, sink_keys(sinks))]
        self.taps = tuple(taps)
        self.pacer = Pacer(self.out_fps, self._emit, self.stats, max_frames=config.max_frames)
        self.output = OutputStage(self.pacer.push, self.stats,
                                  size=(self.out_width, self.out_height), fps=fps)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deadline = float("inf")
        self._errors: dict[str, int] = {}
        self._closed = False
        self._switch_interval: float | None = None
        """Python's GIL switch interval before `start` (restored by `close`)."""

    @classmethod
    def from_config(cls, config: RunConfig, store: ParamStore, pipeline: Pipeline,
                    stats: Stats | None = None, control: Ticker | None = None,
                    taps: Sequence[Tap] = ()) -> "Node":
        source = make_source(parse_source(config.source), config.width, config.height, config.fps,
                             config.ndi_extra_ips)
        sinks = [make_sink(parse_sink(spec)) for spec in config.sinks]
        if config.preview != "off" and not any(s.name == "preview" for s in sinks):
            from livevace.io.preview import PreviewSink, has_display

            if config.preview == "on" or has_display():
                sinks.append(PreviewSink())
        return cls(config, store, pipeline, source, sinks, stats, control, taps)

    # --- lifecycle
    def start(self) -> None:
        """Open the source and every sink (raising the first one-line error), then run."""
        started: list[SinkRunner] = []
        try:
            self.capture.start()
            for runner in self.runners:
                runner.start()
                started.append(runner)
        except BaseException:
            for runner in started:
                runner.close(drain=0)
            self.capture.stop()
            raise
        self._prepare_output()
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        self.pacer.start()
        if self.config.duration is not None:
            self._deadline = now() + self.config.duration
        self._thread = threading.Thread(target=self._run, name="livevace-loop", daemon=True)
        self._thread.start()
        log.info("running: %s -> %s -> %s at %dx%d %g fps", self.capture.source.name,
                 self.pipeline.name, ", ".join(r.sink.name for r in self.runners),
                 self.config.width, self.config.height, self.config.fps)
        if (self.out_width, self.out_height, self.out_fps) != (
                self.config.width, self.config.height, self.config.fps):
            log.info("output at %dx%d %g fps (output_size, output_fps)", self.out_width,
                     self.out_height, self.out_fps)

    def _prepare_output(self) -> None:
        """The output stage's networks loaded (and on a GPU compiled) before the show, for the
        pipeline's bursts (`OutputStage.prepare`): mid-show a compile would stop it."""
        steady = getattr(self.pipeline, "steady_frames_per_call", self.pipeline.frames_per_call)
        bursts = {max(1, int(self.pipeline.frames_per_call)), max(1, int(steady))}
        seconds = self.output.prepare(sorted(bursts), (self.config.width, self.config.height),
                                      self.store.snapshot())
        if seconds > 1.0:
            log.info("output path prepared in %.0f s (%s)", seconds, self.output.upscaling)

    def stop(self) -> None:
        """Ask the node to stop (safe from signal handlers and any thread)."""
        self._stop.set()

    @property
    def finished(self) -> bool:
        return (self._stop.is_set() or self.pacer.done.is_set() or now() >= self._deadline
                or any(getattr(r.sink, "quit_requested", False) for r in self.runners))

    def pump(self) -> None:
        """Main-thread duties: write to main-thread sinks (the preview window)."""
        for runner in self.runners:
            if not runner.threaded:
                runner.pump()

    def wait(self, timeout: float | None = None) -> bool:
        """Block (pumping main-thread sinks) until finished or `timeout`; True when finished."""
        end = now() + (timeout if timeout is not None else float("inf"))
        while not self.finished:
            if now() >= end:
                return False
            self.pump()
            self._stop.wait(0.005 if any(not r.threaded for r in self.runners) else 0.05)
        return True

    def failures(self) -> list[str]:
        """One line per sink that failed, with what its output really holds (after close)."""
        return [line for line in (r.failure() for r in self.runners) if line]

    def close(self) -> None:
        """Stop everything in order and leave finished files behind: loop, capture, pacer,
        then each sink drains its queue and closes, then the pipeline."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("the pipeline did not return within 10 s; closing around it")
        self.capture.stop()
        self.output.stop()
        self.pacer.stop()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
        for runner in self.runners:
            runner.close()
        try:
            self.pipeline.close()
        except Exception as exc:
            log.error("closing pipeline %s: %s", self.pipeline.name, exc)

    # --- threads
    def _emit(self, frame: Frame, fresh: bool) -> None:
        for runner in self.runners:
            runner.put(frame, fresh)
        for tap in self.taps:
            tap(frame, fresh)

    def _tick(self) -> None:
        """Tick the control service; a fault there is logged and the show goes on with the
        parameters as they stand (an uncaught one would end the loop thread: a frozen show)."""
        if self.control is None:
            return
        try:
            self.control.tick()
        except Exception as exc:
            self._report("control", exc, "the parameters stay as they are")

    def _params(self) -> dict[str, Any]:
        self._tick()
        params = self.store.snapshot()
        for name in TRIGGERS:
            params[name] = self.store.take_trigger(name)
        return params

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.store.get("pause"):
                self._tick()
                self._stop.wait(0.02)
                continue
            n = max(1, int(self.pipeline.frames_per_call))
            early = self._early if isinstance(self.pipeline, Foresight) else None
            frames = self.capture.take(n, TAKE_TIMEOUT, early)
            if not frames:
                continue
            if is_slate(frames[0]):
                self.output.submit(frames)
                continue
            params = self._params()
            self._follow_output_rate(params)
            t0 = time.perf_counter()
            try:
                out = self.pipeline(frames, params)
            except Exception as exc:  # the show goes on: hold the picture, log, try again
                self._report(f"pipeline {self.pipeline.name}", exc, "holding the picture")
                self.stats.count("pipeline_errors")
                continue
            self.stats.timing("pipeline", (time.perf_counter() - t0) * 1e3)
            self.stats.event("fps_pipeline", len(out))  # slates pass the pacer too: not counted
            self.output.submit(out, params)

    def _early(self, frames: list[Frame]) -> None:
        """Hand the pipeline frames of its next call as they come (`Foresight`); a fault
        there only costs the head start: the call does the work itself."""
        try:
            self.pipeline.early(frames)  # type: ignore[attr-defined]
        except Exception as exc:
            self._report(f"pipeline {self.pipeline.name} (frames ahead)", exc,
                         "the call does their work")

    def _follow_output_rate(self, params: dict[str, Any]) -> None:
        """A live `output_fps` sets the pacer's rate (0: the node's own)."""
        rate = float(params.get("output_fps") or self.config.fps)
        if rate != self.pacer.fps:
            self.pacer.set_fps(rate)

    def _report(self, part: str, exc: Exception, then: str) -> None:
        """Log a fault of `part` once, then every 100th repeat (a failing call repeats at
        the frame rate; the log must stay readable)."""
        key = f"{part}: {type(exc).__name__}: {exc}"
        seen = self._errors.get(key, 0)
        self._errors[key] = seen + 1
        if seen == 0:
            if isinstance(exc, UserError):
                log.error("%s: %s (%s)", part, exc, then)
            else:
                log.exception("%s failed (%s)", part, then)
        elif (seen + 1) % 100 == 0:
            log.error("%s: the same error %d times: %s: %s", part, seen + 1,
                      type(exc).__name__, exc)
