"""A chunk's VACE context, planned on the host: the one place that turns a chunk's frames,
annotations, regions and keyframes into a `ContextJob` — whether that job is then encoded in
line, when the chunk is generated, or ahead, while the DiT runs the chunk before (the lane
decides, see `ahead.ContextLane`).

A chunk is trimmed to the frames its session needs (`cut`: the oldest go when the chunk size
fell since the chunk was taken). The region to regenerate is the person masks, the mask image
and the outpaint border together; keyframes due are written into the kept part. The input
frames are fitted to the generation size only where the context uses them (raw-video control,
a region, keyframes): stacking them is host time at a chunk boundary, while the GPU waits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from livevace.frames import Frame
from livevace.pipelines.vace.annotation import Annotation, Chunk
from livevace.pipelines.vace.geometry import border_mask, fit_frames, outpaint_rect, place
from livevace.pipelines.vace.images import ImageCache
from livevace.pipelines.vace.modes import Plan
from livevace.pipelines.vace.references import References
from livevace.pipelines.vace.settings import ChunkSettings
from livevace.stats import Stats

if TYPE_CHECKING:
    from livevace.pipelines.vace.session import GenerationSession


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
class Inputs:
    """A chunk trimmed to the frames its session takes, with their annotations."""

    cut: int
    frames: list[Frame]
    images: list[np.ndarray]
    controls: list[np.ndarray] | None
    masks: list[np.ndarray] | None


class ContextPlanner:
    """Plans the contexts of one pipeline at its generation size (see module doc)."""

    def __init__(self, width: int, height: int, images: ImageCache, references: References,
                 annotation: Annotation, stats: Callable[[], Stats]) -> None:
        self.width, self.height = width, height
        self.images, self.references, self.annotation = images, references, annotation
        self._stats = stats

    @staticmethod
    def cut(session: GenerationSession, chunk: Chunk) -> int:
        """Oldest frames of `chunk` the session does not take (negative: too few frames)."""
        return len(chunk.frames) - session.frames_needed

    def inputs(self, chunk: Chunk, cut: int, plan: Plan, wait: str) -> Inputs:
        """The chunk's frames from `cut` on with their annotations, waited for (the wait timed
        into the stats as `wait`)."""
        t0 = time.perf_counter()
        controls = self.annotation.result(chunk, plan, "control")
        masks = self.annotation.result(chunk, plan, "mask")
        self._stats().timing(wait, (time.perf_counter() - t0) * 1e3)
        frames = chunk.frames[cut:]
        return Inputs(cut, frames, [f.image for f in frames],
                      None if controls is None else controls[cut:],
                      None if masks is None else masks[cut:])

    def job(self, session: GenerationSession, inputs: Inputs, plan: Plan,
            settings: ChunkSettings, due: set[str]) -> ContextJob | None:
        """The chunk's context inputs on the host (None: no context), with the keyframes
        `due` now (the pipeline clears them once the chunk is generated)."""
        w, h, images = self.width, self.height, inputs.images
        region = self._region(inputs.masks, plan, len(images))
        rect = outpaint_rect(plan.outpaint, w, h) if plan.outpaint else None
        if rect is not None:
            region = np.maximum(place(region, rect) if region is not None else 0.0,
                                border_mask(rect, w, h)[None])
        keyframes = {k: self.images.rgb(path, f"{k} frame image")
                     for k, path in settings.keyframes.items() if k in due and path}
        keyframes = {k: v for k, v in keyframes.items() if v is not None}
        raw = (fit_frames(images, w, h)
               if plan.control == "none" or region is not None or keyframes else None)
        video = raw if plan.control == "none" else (
            fit_frames(inputs.controls, w, h) if inputs.controls is not None else None)
        if rect is not None:
            raw = place(raw, rect)
            video = None if video is None else place(video, rect)
        if not (video is not None or region is not None or keyframes
                or self.references.latents is not None):
            return None
        if keyframes:
            region = np.ones((len(images), h, w), np.float32) if region is None else region.copy()
            raw = raw.copy()
            for k, image in keyframes.items():
                at = 0 if k == "first" else -1
                raw[at], region[at] = image, 0.0
        return ContextJob((1, 3, len(images), h, w), session.chunks, session.first, video,
                          None if region is None else raw, region)

    def _region(self, masks: list[np.ndarray] | None, plan: Plan,
                frames: int) -> np.ndarray | None:
        """[T, H, W] float32, 1 = regenerate: the person masks and the mask image together."""
        w, h = self.width, self.height
        parts = []
        if masks is not None:
            parts.append(fit_frames(masks, w, h).astype(np.float32))
        if plan.mask_image:
            image = self.images.mask(plan.mask_image, "mask image")
            if image is not None:
                parts.append(np.broadcast_to(image, (frames, h, w)))
        if not parts:
            return None
        return np.maximum.reduce(parts) if len(parts) > 1 else np.array(parts[0], np.float32)
