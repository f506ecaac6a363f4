"""Per-stage timing of a chunk (annotate, encode, dit, decode) for the node's stats.

GPU work is asynchronous, so a host clock around a stage measures launch time. On CUDA each
stage records a pair of events (allocated once) and the durations are read after the chunk's
one unavoidable sync (the copy of the output frames to the host): accurate, and no extra
sync that would stop work from overlapping. On the CPU it is the wall clock.

Work queued on another CUDA stream and consumed later (the VACE context encoded ahead on the
lane) is measured as a `Span` (its own event pair, on whichever CUDA stream is current) and
handed to the timer with `add` when the chunk that uses it is generated; by the chunk's
report the main stream has waited for it, so reading it never blocks.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch

from livevace.stats import Stats


class Span:
    """One piece of work's duration, read when it is known to be finished."""

    def __init__(self, cuda: bool) -> None:
        self._events = ((torch.cuda.Event(enable_timing=True),
                         torch.cuda.Event(enable_timing=True)) if cuda else None)
        self._wall = 0.0

    @contextmanager
    def measure(self) -> Iterator["Span"]:
        if self._events is None:
            t0 = time.perf_counter()
            yield self
            self._wall = (time.perf_counter() - t0) * 1e3
            return
        self._events[0].record()
        yield self
        self._events[1].record()

    def ms(self) -> float:
        if self._events is None:
            return self._wall
        start, end = self._events
        end.synchronize()
        return start.elapsed_time(end)


class StageTimer:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._events: dict[str, tuple[torch.cuda.Event, torch.cuda.Event]] = {}
        self._ms: dict[str, float] = {}
        self._used: list[str] = []
        self._spans: list[tuple[str, Span]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.cuda:
            t0 = time.perf_counter()
            yield
            self._ms[name] = self._ms.get(name, 0.0) + (time.perf_counter() - t0) * 1e3
            return
        if name not in self._events:
            self._events[name] = (torch.cuda.Event(enable_timing=True),
                                  torch.cuda.Event(enable_timing=True))
        start, end = self._events[name]
        start.record()
        yield
        end.record()
        self._used.append(name)

    def span(self) -> Span:
        """A new span on this timer's device (use `with span.measure():`)."""
        return Span(self.cuda)

    def add(self, name: str, span: Span) -> None:
        """Count `span` into stage `name` of the current chunk."""
        self._spans.append((name, span))

    def report(self, stats: Stats) -> dict[str, float]:
        """Milliseconds per stage of the chunk (call after the chunk's host sync), recorded
        into `stats` as `stage_<name>_ms`."""
        for name in self._used:
            start, end = self._events[name]
            end.synchronize()
            self._ms[name] = self._ms.get(name, 0.0) + start.elapsed_time(end)
        for name, span in self._spans:
            self._ms[name] = self._ms.get(name, 0.0) + span.ms()
        out, self._ms, self._used, self._spans = self._ms, {}, [], []
        for name, ms in out.items():
            stats.timing(name, ms)
        return out
