"""Frames handed to the annotators as they are captured (`Foresight`, lookahead 0): the
capture hands each frame of the next take over once, in order, before the take returns; the
pipeline's pictures are those of plain calls, also with a stateful control (optical flow),
a partial head start, a frame dropped in between and a control changed in between; the real
node hands the frames over at lookahead 0 and not at lookahead 1."""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from livevace.config import RunConfig
from livevace.frames import Frame, now
from livevace.io.capture import Capture
from livevace.loop import Node
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.stats import Stats
from pipeline_support import (SIZE, Collect, Recorded, images, models, one_thread,  # noqa: F401
                              store_with)
from polling import until
from test_pipeline_vace import clip

FLOW = dict(control="flow", chunk_frames=1)


class Fed:
    """A source that gives exactly the frames the test puts in, when it puts them."""

    name = "fed"

    def __init__(self) -> None:
        self.frames: queue.Queue[Frame] = queue.Queue()

    def open(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        pass


def picture(i: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), i * 10 % 256, np.uint8)


def test_a_take_hands_its_frames_over_as_they_come() -> None:
    source, stats = Fed(), Stats()
    capture = Capture(source, SIZE, SIZE, 30.0, stats, no_signal="hold")
    capture.start()
    handed: list[list[Frame]] = []
    try:
        source.frames.put(Frame(picture(0), now(), 0))
        until(lambda: stats.snapshot().get("frames_in") == 1, "frame 0 captured")
        assert capture.take(4, 0.01, handed.append) == []  # timed out: the loop asks again
        with ThreadPoolExecutor(1) as pool:
            taken = pool.submit(capture.take, 4, 60.0, handed.append)
            for i in range(1, 4):
                source.frames.put(Frame(picture(i), now(), i))
                if i < 3:
                    until(lambda: sum(map(len, handed)) == i + 1, f"frame {i} handed over")
            frames = taken.result()
    finally:
        capture.stop()
    assert [f.index for f in frames] == [0, 1, 2, 3]
    # One hand-over per frame while the takes waited, each a frame of the take, in order and
    # once (the second take does not hand frame 0 again); the last frame completes the take.
    assert [[f.index for f in batch] for batch in handed] == [[0], [1], [2]]
    assert all(h[0] is f for h, f in zip(handed, frames))


def run(models, chunks: list[list[Frame]], heads: dict[int, list[list[Frame]]],  # noqa: F811
        settings: dict, changes: dict[int, dict] | None = None
        ) -> tuple[list[np.ndarray], StreamingVace]:
    """Pictures per call; before call i the pipeline is handed `heads[i]` early, batch by
    batch, and `changes[i]` lands."""
    store = store_with(**settings)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
    outs = []
    for i, frames in enumerate(chunks):
        for name, value in (changes or {}).get(i, {}).items():
            store.set(name, value)
        for batch in heads.get(i, []):
            pipeline.early(batch)
        outs.append(images(pipeline(frames, store.snapshot())))
    pipeline.close()
    return outs, pipeline


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y)
                                    for x, y in zip(a, b))


def test_frames_annotated_early_give_the_pictures_of_plain_calls(models) -> None:  # noqa: F811
    chunks = clip(5, chunk=1)
    heads = {1: [chunks[1][:2], chunks[1][2:3]],  # the frames come in twos and ones
             2: [[f] for f in chunks[2]],  # all four early: the call queues nothing more
             3: [chunks[3][:3]]}  # handed under flow, but the call brings edges
    changes = {3: {"control": "edges"}}
    plain, _ = run(models, chunks, {}, FLOW, changes)
    early, pipeline = run(models, chunks, heads, FLOW, changes)
    # Optical flow reads each frame against the one before: every frame was seen once, in
    # order. Used early: 3 + 4 frames; those handed to the control switched from, none.
    assert same(plain, early)
    assert pipeline.stats.snapshot()["annotated_early"] == 7


def test_a_frame_handed_over_then_dropped_is_skipped(models) -> None:  # noqa: F811
    """The take dropped it (the pipeline fell behind): the chunk uses the early work of its
    own frames only. (A stateful control has seen the dropped frame, a real frame of the
    input: its next frame is read against it.)"""
    chunks = clip(3, chunk=1)
    stale = Frame(picture(99), 0.0, 999)
    settings = dict(control="edges", chunk_frames=1)
    plain, _ = run(models, chunks, {}, settings)
    early, pipeline = run(models, chunks, {1: [[stale], chunks[1][:2]]}, settings)
    assert same(plain, early)
    assert pipeline.stats.snapshot()["annotated_early"] == 2


def handed_after_a_call(models, lookahead: int, frames: int) -> StreamingVace:  # noqa: F811
    """A pipeline after its first call, handed `frames` frames of its second early."""
    store = store_with(**FLOW)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=lookahead)
    chunks = clip(2, chunk=1)
    pipeline(chunks[0], store.snapshot())
    pipeline.early(chunks[1][:frames])
    return pipeline


def test_no_frames_are_taken_early_with_a_chunk_annotated_ahead(models) -> None:  # noqa: F811
    pipeline = handed_after_a_call(models, lookahead=1, frames=2)
    assert pipeline.annotation.handed == 0
    pipeline.close()


def test_settle_waits_for_the_frames_handed_over(models) -> None:  # noqa: F811
    """(Before a model switch prepares on the same GPU.)"""
    pipeline = handed_after_a_call(models, lookahead=0, frames=3)
    pipeline.settle()
    jobs = [job.job for jobs in pipeline.annotation._early.values() for job in jobs]
    assert len(jobs) == 3 and all(job.done() for job in jobs)
    pipeline.close()


@pytest.mark.parametrize("lookahead", [0, 1])
def test_the_node_hands_frames_over_at_lookahead_0(models, lookahead: int) -> None:  # noqa: F811
    """Frames come one by one; before the last frame of each chunk the node has handed the
    first three over (lookahead 0), or none (lookahead 1)."""
    store = store_with(**FLOW)
    pipeline = Recorded(StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=lookahead))
    source, sink = Fed(), Collect()
    config = RunConfig(width=SIZE, height=SIZE, fps=60.0, sinks=(), preview="off",
                       no_signal="hold")
    node = Node(config, store, pipeline, source, [sink])
    pipeline.pipeline.bind_stats(node.stats)
    annotation = pipeline.pipeline.annotation
    node.start()
    frames = iter(f for chunk in clip(5, chunk=1) for f in chunk)
    try:
        source.frames.put(next(frames))  # the first call takes one frame
        for call in range(1, 5):
            until(lambda: pipeline.calls == call, f"call {call - 1} made")
            for k in range(3):
                source.frames.put(next(frames))
                if lookahead == 0:
                    until(lambda: annotation.handed == k + 1, f"frame {k} handed over")
            assert annotation.handed == (3 if lookahead == 0 else 0)
            source.frames.put(next(frames))
        until(lambda: pipeline.calls == 5, "the last call made")
    finally:
        node.stop()
        node.close()
    assert sum(map(len, pipeline.bursts)) == 1 + 4 * (4 - lookahead)  # every chunk came out
    assert node.stats.snapshot().get("annotated_early", 0) == (3 * 4 if lookahead == 0 else 0)
