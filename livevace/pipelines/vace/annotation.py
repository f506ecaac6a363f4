"""Annotating chunks ahead of the generator: control frames and person masks, off the loop.

The pipeline hands each incoming chunk to `Annotation.submit` at once and generates the
previous one meanwhile (`StreamingVace(lookahead=1)`), so pose/depth for chunk n+1 run on the
annotator threads (and the depth model's own CUDA stream) while the DiT denoises chunk n.
Submission follows the live `control`, `depth_model` and `mask` parameters of the call that
brought the chunk; a chunk whose annotation turns out to be missing when it is generated
(control switched on in between) is annotated then, synchronously.

A control that cannot load (depth weights missing) falls back to edges with one log line
(`AnnotatorWorker`); a person mask that cannot run is logged once and the chunk goes on
without it.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from livevace.annotators import AnnotatorWorker, make_annotator, make_person_mask
from livevace.frames import Frame
from livevace.pipelines.vace.modes import Plan
from livevace.stats import Stats

log = logging.getLogger("livevace.vace")


@dataclass
class Chunk:
    """Input frames waiting to be generated, with their annotations in flight."""

    frames: list[Frame]
    control: str | None = None
    controls: Future | None = None
    mask: str | None = None
    masks: Future | None = None
    submitted: float = field(default_factory=time.perf_counter)


class Annotation:
    """The annotator workers of one pipeline (made when first needed)."""

    def __init__(self, depth_model: str, stats: Callable[[], Stats]) -> None:
        self.depth_model = depth_model
        self._stats = stats
        self._control: AnnotatorWorker | None = None
        self._mask: AnnotatorWorker | None = None
        self._mask_errors: set[str] = set()

    def _build_control(self, name: str, **options: Any):
        if name == "depth":
            options.setdefault("model", self.depth_model)
        return make_annotator(name, **options)

    def follow(self, plan: Plan, depth_model: str) -> None:
        """Point the workers at what the plan needs (a switch lands on the next submit)."""
        name = plan.annotator
        reload = depth_model != self.depth_model
        self.depth_model = depth_model
        if name is not None:
            if self._control is None:
                self._control = AnnotatorWorker(name, factory=self._build_control)
            elif name != self._control.requested or (reload and name == "depth"):
                if reload and name == "depth":
                    log.info("depth_model %s: reloading the depth annotator", depth_model)
                self._control.switch(name)
        if plan.person_mask is not None:
            if self._mask is None:
                self._mask = AnnotatorWorker(plan.person_mask, fallback=None,
                                             factory=lambda n, **o: make_person_mask(
                                                 inverse=n == "person_inverse", **o))
            elif plan.person_mask != self._mask.requested:
                self._mask.switch(plan.person_mask)

    def submit(self, frames: list[Frame], plan: Plan) -> Chunk:
        chunk = Chunk(frames)
        images = [f.image for f in frames]
        if plan.annotator is not None and self._control is not None:
            chunk.control, chunk.controls = plan.annotator, self._timed(self._control.submit(images))
        if plan.person_mask is not None and self._mask is not None:
            chunk.mask, chunk.masks = plan.person_mask, self._timed(self._mask.submit(images))
        return chunk

    def _timed(self, future: Future) -> Future:
        t0 = time.perf_counter()
        future.add_done_callback(
            lambda _: self._stats().timing("annotate", (time.perf_counter() - t0) * 1e3))
        return future

    def controls(self, chunk: Chunk, plan: Plan) -> list[np.ndarray] | None:
        """The chunk's control frames for `plan` (None: the raw video or no control)."""
        if plan.annotator is None:
            return None
        if chunk.control != plan.annotator:
            self.follow(plan, self.depth_model)
            assert self._control is not None
            chunk.control, chunk.controls = plan.annotator, self._timed(self._control.submit(
                [f.image for f in chunk.frames]))
        assert chunk.controls is not None
        return chunk.controls.result()

    def masks(self, chunk: Chunk, plan: Plan) -> list[np.ndarray] | None:
        """The chunk's person masks (float32 H×W, 1 = regenerate), or None."""
        if plan.person_mask is None:
            return None
        if chunk.mask != plan.person_mask:
            self.follow(plan, self.depth_model)
            assert self._mask is not None
            chunk.mask, chunk.masks = plan.person_mask, self._timed(self._mask.submit(
                [f.image for f in chunk.frames]))
        assert chunk.masks is not None
        try:
            return chunk.masks.result()
        except Exception as exc:  # mediapipe missing or broken: say so once, go on unmasked
            key = f"{type(exc).__name__}: {exc}"
            if key not in self._mask_errors:
                self._mask_errors.add(key)
                log.error("person mask unavailable (%s); generating without it", key)
            return None

    def reset(self) -> None:
        """A new stream: annotators forget their temporal smoothing."""
        for worker in (self._control, self._mask):
            if worker is not None:
                worker.reset()

    def close(self) -> None:
        for worker in (self._control, self._mask):
            if worker is not None:
                worker.close()
        self._control = self._mask = None
