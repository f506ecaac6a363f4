"""Where a chunk's VACE context is encoded: ahead, on the lane while the DiT runs the chunk
before, or in line when the chunk is generated (`ContextLane`).

With `lookahead=1` the pipeline holds chunk n+1's input (and soon its control frames) while
it generates chunk n. Right after launching chunk n's DiT and decode it asks the lane whether
chunk n+1 is wanted ahead (`ContextLane.wants`: overlap on, not encoded ahead already); if so
it waits for chunk n+1's annotations (the GPU is busy meanwhile), plans its context on the
host (`planner`: a `ContextJob`) and the lane queues the encode (`ContextLane.ahead`). When
the chunk's turn comes the lane checks that the encode still describes what the chunk would
be encoded from now (`key`: the same session at the same chunk, the same input frames and
trim, the same plan less the parts that do not reach the context, the same references
present and keyframes due). A change landing in between — a control or mask switch, a
keyframe, a reset, a chunk-size switch — fails the check: the encode is rolled back
(`ContextEncoder.rollback`) and the chunk's job is planned again and encoded in line, with
the parameters it is generated with — as every chunk is with overlap off. Either way the
pictures are exactly those of the serial order (tests/test_pipeline_speed_overlap.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from livevace.pipelines.vace.annotation import Chunk
from livevace.pipelines.vace.lane import Lane
from livevace.pipelines.vace.modes import Plan
from livevace.pipelines.vace.planner import ContextJob
from livevace.pipelines.vace.staging import Staging
from livevace.pipelines.vace.timing import Span, StageTimer
from livevace.stats import Stats

if TYPE_CHECKING:
    from livevace.pipelines.vace.session import GenerationSession


@dataclass
class Encoded:
    context: torch.Tensor
    span: Span
    """The encode's own time (on the lane)."""
    done: torch.cuda.Event | None
    """What the main CUDA stream waits for before reading `context` (None: inline)."""
    timed: bool = False
    """`span` is already counted (work done inline is timed in the call that did it)."""


@dataclass
class Ahead:
    """A context encoded ahead, for the chunk `key` names."""

    key: tuple
    session: "GenerationSession"
    chunk: Chunk
    """Held, so that the ids in `key` stay unique while it lives."""
    encoded: Encoded


def key(session: "GenerationSession", chunk: Chunk, cut: int, plan: Plan, references: bool,
        due: set[str]) -> tuple:
    """What a chunk's context depends on besides its frames' contents (see module doc)."""
    context_plan = dataclasses.replace(plan, noise_scale=0.0, references=())
    return (id(session), session.chunks, id(chunk), cut, context_plan, references,
            frozenset(due))


class ContextLane:
    """Runs the context jobs on the lane (see module doc), and holds the one encoded ahead
    until its chunk's turn. `overlap` off: every job runs in line."""

    def __init__(self, lane: Lane, staging: Staging, timer: StageTimer,
                 stats: Callable[[], Stats], overlap: bool) -> None:
        self.lane, self.staging, self.timer = lane, staging, timer
        self._stats = stats
        self.overlap = overlap
        self.held: Ahead | None = None

    def wants(self, chunk: Chunk) -> bool:
        """Whether `chunk`'s context is to be encoded ahead now: overlap on, and not encoded
        ahead already (one held for another chunk is rolled back)."""
        if not self.overlap:
            return False
        if self.held is not None:
            if self.held.chunk is chunk:
                return False
            self.held.session.context.rollback()
            self.held = None
            self._stats().count("encode_ahead_discarded")
        return True

    def ahead(self, key: tuple, session: "GenerationSession", chunk: Chunk,
              job: ContextJob) -> None:
        """Encode `job` speculatively for the chunk `key` names, and hold it."""
        session.context.speculate()
        encoded = self._encode(session, job)
        if not self.lane.separate:  # done inline, in this call: timed with it
            self.timer.add("encode", encoded.span)
            encoded.timed = True
        self.held = Ahead(key, session, chunk, encoded)

    def take(self, wanted: tuple) -> Encoded | None:
        """The context encoded ahead if it was for `wanted` (kept); otherwise None, and any
        held one is rolled back."""
        held, self.held = self.held, None
        if held is None:
            return None
        if held.key == wanted:
            held.session.context.commit()
            self._stats().count("encode_ahead_used")
            return held.encoded
        held.session.context.rollback()
        self._stats().count("encode_ahead_discarded")
        return None

    def inline(self, session: "GenerationSession", job: ContextJob) -> Encoded:
        """Encode `job` now, for the chunk being generated."""
        return self._encode(session, job)

    def context(self, encoded: Encoded) -> torch.Tensor:
        """The context, once the current CUDA stream may read it (a GPU-side wait for the lane,
        timed as `encode_wait`); its encode time counted into the chunk's `encode`."""
        if not encoded.timed:
            self.timer.add("encode", encoded.span)
        if encoded.done is not None:
            with self.timer.stage("encode_wait"):
                self.lane.join(encoded.done)
        return encoded.context

    def clear(self) -> None:
        self.held = None

    def _encode(self, session: "GenerationSession", job: ContextJob) -> Encoded:
        """Queue the job's uploads and encode on the lane (inline without one)."""
        staging = self.staging
        with self.lane.work():
            span = self.timer.span()
            with span.measure():
                context = session.context.encode(
                    job.shape, job.chunk, job.first,
                    video=None if job.video is None else staging.pixels("video", job.video),
                    source=None if job.source is None else staging.pixels("source", job.source),
                    mask=None if job.mask is None else staging.values("mask", job.mask))
            done = self.lane.done()
        return Encoded(context, span, done)
