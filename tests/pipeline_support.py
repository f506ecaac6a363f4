"""Shared by the vace pipeline tests: the tiny model set, a clip made by ffmpeg, and running
the real node loop (a real source, the real capture/pacer/sink threads) until it has produced
a number of generated chunks."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from livevace.config import RunConfig
from livevace.frames import Frame
from livevace.io.pattern import PatternSource
from livevace.loop import Node
from livevace.params import ParamStore
from livevace.pipelines.vace.models import ModelSet
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.tiny import tiny_random
from livevace.stats import Stats

SIZE = 32
FPS = 60.0
"""Output rate: twice the sources' 30 fps, so the pacer always drains a burst before the
next one comes and never trims frames the tests count (it holds instead)."""
SOURCE_FPS = 30.0


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    """Tiny tensors: one intra-op thread beats two fighting the annotator threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models() -> ModelSet:
    """The tiny random model set, built once for all pipeline tests."""
    built = tiny_random()
    yield built
    built.close()


def make_clip(path: Path, width: int = 96, height: int = 64, seconds: float = 3.0,
              fps: int = 30) -> Path:
    """A moving ffmpeg test picture (testsrc2) as H.264."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={width}x{height}:rate={fps}", "-t", str(seconds),
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def store_with(**values: Any) -> ParamStore:
    store = ParamStore()
    store.update(values)
    return store


class Collect:
    """An in-memory sink: keeps every fresh frame (held repeats are the same object)."""

    name = "collect"
    queue_size = 256

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.sizes: set[tuple[int, int]] = set()

    def open(self, width: int, height: int, fps: float) -> None:
        self.opened = (width, height, fps)

    def write(self, frame: Frame) -> None:
        if not self.frames or frame is not self.frames[-1]:
            self.frames.append(frame)

    def close(self) -> None:
        pass



class Recorded:
    """The pipeline as the loop sees it, keeping every burst it returns (the pacer may trim
    a burst before the sink sees it, so frame counts per chunk are read here)."""

    def __init__(self, pipeline: StreamingVace) -> None:
        self.pipeline = pipeline
        self.name = pipeline.name
        self.bursts: list[list[Frame]] = []
        self.calls = 0

    @property
    def frames_per_call(self) -> int:
        return self.pipeline.frames_per_call

    def early(self, frames: list[Frame]) -> None:
        self.pipeline.early(frames)

    def __call__(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]:
        out = self.pipeline(frames, params)
        self.calls += 1
        if out:
            self.bursts.append(out)
        return out

    def close(self) -> None:
        self.pipeline.close()


class Script:
    """Stands in for the control service: the loop ticks it before every parameter snapshot,
    and on tick N it applies `changes[N]` to the store (as OSC would, between calls)."""

    def __init__(self, store: ParamStore, changes: dict[int, dict[str, Any]]) -> None:
        self.store, self.changes, self.ticks = store, changes, 0

    def tick(self) -> None:
        self.ticks += 1
        for name, value in self.changes.get(self.ticks, {}).items():
            self.store.set(name, value)


def run_node(pipeline: StreamingVace, store: ParamStore, chunks: int, *,
             source: Any = None, size: tuple[int, int] = (SIZE, SIZE),
             changes: dict[int, dict[str, Any]] | None = None,
             timeout: float = 300.0) -> tuple[list[list[Frame]], Collect, Stats]:
    """Run the node loop until the pipeline has produced `chunks` chunks and the sink has
    shown the last of them (or `timeout` seconds passed: generous, a loaded machine is only
    slower); returns its bursts, the sink and the node's stats."""
    width, height = size
    sink = Collect()
    stats = Stats()
    pipeline.bind_stats(stats)
    recorded = Recorded(pipeline)
    config = RunConfig(width=width, height=height, fps=FPS, sinks=(), preview="off")
    node = Node(config, store, recorded, source or PatternSource(width, height, SOURCE_FPS),
                [sink], stats, control=Script(store, changes or {}))
    node.start()
    try:
        deadline = time.monotonic() + timeout
        while len(recorded.bursts) < chunks and time.monotonic() < deadline:
            time.sleep(0.02)
        last = recorded.bursts[chunks - 1][0].index if len(recorded.bursts) >= chunks else None
        while (last is not None and not any(f.index >= last for f in list(sink.frames))
               and time.monotonic() < deadline):
            time.sleep(0.02)
    finally:
        node.close()
    return recorded.bursts, sink, stats


def images(frames: list[Frame]) -> np.ndarray:
    return np.stack([f.image for f in frames])
