"""The VACE context of the next chunk, encoded on the lane while the DiT runs the current one.

With `lookahead=1` the pipeline holds chunk n+1's input (and soon its control frames) while
it generates chunk n. Right after launching chunk n's DiT and decode it waits for chunk n+1's
annotations (the GPU is busy meanwhile), builds its context inputs on the host
(`ContextJob`) and queues the encode on the lane (`encode`). The next call checks that the
encode still describes what the chunk would be encoded from now (`key`: the same stream at
the same chunk, the same input frames and trim, the same plan less the parts that do not
reach the context, the same references present and keyframes due). A change landing in
between — a control or mask switch, a keyframe, a reset, a chunk-size switch — fails the
check: the encode is rolled back (`ContextEncoder.rollback`) and the chunk is encoded
in-line as before, with the parameters it is generated with. Either way the pictures are
exactly those of the serial order (tests/test_pipeline_speed_overlap.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from livevace.pipelines.vace.annotation import Chunk
from livevace.pipelines.vace.lane import Lane
from livevace.pipelines.vace.modes import Plan
from livevace.pipelines.vace.staging import Staging
from livevace.pipelines.vace.timing import Span, StageTimer

if TYPE_CHECKING:
    from livevace.pipelines.vace.stream import GenerationStream


@dataclass
class ContextJob:
    """A chunk's context inputs on the host (see `ContextEncoder.encode` for their meaning)."""

    shape: tuple[int, ...]
    chunk: int
    first: bool
    video: np.ndarray | None
    """uint8 [T, H, W, 3] or None (zeros)."""
    source: np.ndarray | None
    mask: np.ndarray | None
    """float32 [T, H, W], 1 = generate, or None."""


@dataclass
class Encoded:
    context: torch.Tensor
    span: Span
    """The encode's own time (on the lane)."""
    done: torch.cuda.Event | None
    """What the main stream waits for before reading `context` (None: inline)."""
    timed: bool = False
    """`span` is already counted (work done inline is timed in the call that did it)."""


@dataclass
class Ahead:
    """A context encoded ahead, for the chunk `key` names."""

    key: tuple
    stream: "GenerationStream"
    chunk: Chunk
    """Held, so that the ids in `key` stay unique while it lives."""
    encoded: Encoded


def key(stream: "GenerationStream", chunk: Chunk, cut: int, plan: Plan, references: bool,
        due: set[str]) -> tuple:
    """What a chunk's context depends on besides its frames' contents (see module doc)."""
    context_plan = dataclasses.replace(plan, noise_scale=0.0, references=())
    return (id(stream), stream.chunks, id(chunk), cut, context_plan, references,
            frozenset(due))


def encode(lane: Lane, staging: Staging, timer: StageTimer, stream: "GenerationStream",
           job: ContextJob) -> Encoded:
    """Queue the job's uploads and encode on the lane (inline without one)."""
    with lane.work():
        span = timer.span()
        with span.measure():
            context = stream.context.encode(
                job.shape, job.chunk, job.first,
                video=None if job.video is None else staging.pixels("video", job.video),
                source=None if job.source is None else staging.pixels("source", job.source),
                mask=None if job.mask is None else staging.values("mask", job.mask))
        done = lane.done()
    return Encoded(context, span, done)


def fits(ahead: Ahead | None, wanted: tuple) -> Ahead | None:
    """`ahead` if it was encoded for `wanted`; otherwise rolls it back and returns None."""
    if ahead is None:
        return None
    if ahead.key == wanted:
        ahead.stream.context.commit()
        return ahead
    ahead.stream.context.rollback()
    return None
