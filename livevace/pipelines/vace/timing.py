"""Per-stage timing of a chunk (annotate, encode, dit, decode) for the node's stats.

GPU work is asynchronous, so a host clock around a stage measures launch time. On CUDA each
stage records a pair of events (allocated once) and the durations are read after the chunk's
one unavoidable sync (the copy of the output frames to the host): accurate, and no extra
sync that would stop work from overlapping. On the CPU it is the wall clock.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch

from livevace.stats import Stats


class StageTimer:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._events: dict[str, tuple[torch.cuda.Event, torch.cuda.Event]] = {}
        self._ms: dict[str, float] = {}
        self._used: list[str] = []

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

    def report(self, stats: Stats) -> dict[str, float]:
        """Milliseconds per stage of the chunk (call after the chunk's host sync), recorded
        into `stats` as `stage_<name>_ms`."""
        for name in self._used:
            start, end = self._events[name]
            end.synchronize()
            self._ms[name] = self._ms.get(name, 0.0) + start.elapsed_time(end)
        out, self._ms, self._used = self._ms, {}, []
        for name, ms in out.items():
            stats.timing(name, ms)
        return out
