"""Annotating chunks ahead of the generator: control frames and person masks, off the loop.

The pipeline hands each incoming chunk to `Annotation.submit` at once and generates the
previous one meanwhile (`StreamingVace(lookahead=1)`), so pose/depth for chunk n+1 run on the
annotator threads (and the depth model's own CUDA stream) while the DiT denoises chunk n.
With no chunk ahead (`lookahead=0`, the latency setting) the frames of the next chunk are
handed over as they are captured (`early`, from `Capture.take`), so the call that brings the
chunk waits only for the annotation of its last frames; `submit` takes the early jobs of
the chunk's first frames and queues the rest behind them on the same lane (the order a
stateful annotator needs). Submission follows the live `control`, `depth_model` and `mask`
parameters of the call that brought the chunk (the early frames: of the call before; a
control changed in between annotates the whole chunk again); a chunk whose annotation turns
out to be missing when it is generated (control switched on in between) is annotated then,
synchronously.

A control that cannot load (depth weights missing) falls back to edges with one log line
(`AnnotatorWorker`), and the chunk records the annotator that really ran (`Chunk.used`, what
the pipeline's mode line names); a person mask that cannot run is logged once and the chunk
goes on without it.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from livevace.annotators import AnnotatorWorker, make_annotator, make_person_mask
from livevace.frames import Annotator, Frame
from livevace.pipelines.vace.modes import Plan
from livevace.stats import Stats

if TYPE_CHECKING:
    from livevace.annotators.depth import DepthEstimator

log = logging.getLogger("livevace.vace")


@dataclass
class Chunk:
    """Input frames waiting to be generated, with their annotations in flight: per kind
    ("control", "mask") the annotator's name and the future of its frames."""

    frames: list[Frame]
    jobs: dict[str, tuple[str, Future]] = field(default_factory=dict)
    used: dict[str, str | None] = field(default_factory=dict)
    """Per kind, the annotator that annotated the chunk (after any fallback), set before the
    job's future completes."""


@dataclass(frozen=True)
class FrameJob:
    """A frame of a chunk on an annotator's lane (handed over early, or with its chunk): the
    job that holds it, at `offset`."""

    frame: Frame
    name: str
    job: Future
    offset: int


def early_run(early: list[FrameJob], frames: list[Frame], name: str) -> list[FrameJob]:
    """The early jobs of the chunk's first frames, in order, by `name` (frames handed but
    dropped before the chunk was taken are skipped)."""
    start = next((i for i, e in enumerate(early) if e.frame is frames[0]), len(early))
    run = []
    for e, frame in zip(early[start:], frames):
        if e.frame is not frame or e.name != name:
            break
        run.append(e)
    return run


def wanted(plan: Plan) -> dict[str, str | None]:
    """The annotator of each kind the plan needs (None: not needed)."""
    return {"control": plan.annotator, "mask": plan.person_mask}


class Annotation:
    """The annotator workers of one pipeline (made when first needed). `depth_estimator`:
    builds the depth control's network instead of loading the `depth_model` weights (called
    on the builder thread; the benchmark shares one estimator between its pipelines)."""

    def __init__(self, depth_model: str, stats: Callable[[], Stats],
                 depth_estimator: Callable[[], DepthEstimator] | None = None) -> None:
        self.depth_model = depth_model
        self._stats = stats
        self._depth_estimator = depth_estimator
        self._workers: dict[str, AnnotatorWorker] = {}
        self._mask_errors: set[str] = set()
        self._early: dict[str, list[FrameJob]] = {}
        """Per kind, the frames of the next chunk handed over early, in order."""

    def _build_control(self, name: str, **options: Any) -> Annotator:
        if name == "depth":
            options.setdefault("model", self.depth_model)
            if self._depth_estimator is not None:
                options.setdefault("estimator", self._depth_estimator())
        return make_annotator(name, **options)

    def _worker(self, kind: str, name: str) -> AnnotatorWorker:
        if kind == "control":  # a control that cannot load falls back to edges, logged
            return AnnotatorWorker(name, factory=self._build_control)
        return AnnotatorWorker(name, fallback=None, factory=lambda n, **o: make_person_mask(
            inverse=n == "person_inverse", **o))

    def follow(self, plan: Plan, depth_model: str) -> None:
        """Point the workers at what the plan needs (a switch lands on the next submit)."""
        reload = depth_model != self.depth_model
        self.depth_model = depth_model
        for kind, name in wanted(plan).items():
            if name is None:
                continue
            worker = self._workers.get(kind)
            if worker is None:
                self._workers[kind] = self._worker(kind, name)
            elif name != worker.requested or (reload and name == "depth"):
                if reload and name == "depth":
                    log.info("depth_model %s: reloading the depth annotator", depth_model)
                worker.switch(name)
                self._early.pop(kind, None)  # annotated by the annotator switched from

    def early(self, frames: list[Frame], plan: Plan) -> None:
        """Start annotating frames of the next chunk as they are captured (module doc), a
        job per frame: a network meets batches of one (learnt in `prepare`) and of a chunk."""
        for kind, name in wanted(plan).items():
            worker = self._workers.get(kind)
            if name is None or worker is None or worker.requested != name:
                continue
            self._early.setdefault(kind, []).extend(
                FrameJob(f, name, worker.submit([f.image]), 0) for f in frames)

    @property
    def handed(self) -> int:
        """Frames of the next chunk handed over early so far (the most of any kind)."""
        return max((len(e) for e in self._early.values()), default=0)

    def submit(self, frames: list[Frame], plan: Plan, learn: bool = False) -> Chunk:
        """Start annotating a chunk (picking up its frames handed over `early`); `learn`:
        annotators may make their fast path for its shape meanwhile
        (`AnnotatorWorker.submit`; `prepare` only)."""
        chunk = Chunk(frames)
        early, self._early = self._early, {}
        for kind, name in wanted(plan).items():
            if name is not None and kind in self._workers:
                self._start(chunk, kind, name, learn, early_run(early.get(kind, []), frames, name))
        return chunk

    def _start(self, chunk: Chunk, kind: str, name: str, learn: bool = False,
               ready: list[FrameJob] | None = None) -> Future:
        """Annotate the chunk's frames past those `ready` (annotated early) on the kind's
        lane: in one job, or after early ones a job per frame (the batch sizes a network
        has learnt). The chunk's future completes with the lane's last job of them (the lane
        runs its jobs in order, so the others are done by then). The annotate time is the
        chunk's own: from here, when all its frames are in, to done."""
        t0 = time.perf_counter()
        worker = self._workers[kind]
        ready = ready or []
        frames = chunk.frames[len(ready):]
        if ready:
            self._stats().count("annotated_early", len(ready))
            parts = ready + [FrameJob(f, name, worker.submit([f.image], learn), 0) for f in frames]
        else:
            job = worker.submit([f.image for f in frames], learn)
            parts = [FrameJob(f, name, job, i) for i, f in enumerate(frames)]
        last = parts[-1].job if parts else worker.submit([], learn)
        future: Future = Future()

        def done(_: Future) -> None:
            # On the worker's lane, before it takes the next chunk (which may switch the
            # annotator): `active` is this chunk's. Chained, so `result()` sees it set.
            self._stats().timing("annotate", (time.perf_counter() - t0) * 1e3)
            chunk.used[kind] = worker.active
            try:
                value = [part.job.result()[part.offset] for part in parts]
            except Exception as error:  # noqa: BLE001 - the chunk's future carries it
                future.set_exception(error)
            else:
                future.set_result(value)

        last.add_done_callback(done)
        chunk.jobs[kind] = (name, future)
        return future

    def result(self, chunk: Chunk, plan: Plan, kind: str) -> list[np.ndarray] | None:
        """The chunk's frames of `kind` for `plan`: control frames (None: the raw video or no
        control), or person masks (float32 H×W, 1 = regenerate; None: no mask, or the mask
        cannot run, which is logged once)."""
        name = wanted(plan)[kind]
        if name is None:
            return None
        job = chunk.jobs.get(kind)
        if job is None or job[0] != name:  # the plan changed since the chunk was submitted
            self.follow(plan, self.depth_model)
            future = self._start(chunk, kind, name)
        else:
            future = job[1]
        if kind == "control":
            return future.result()
        try:
            return future.result()
        except Exception as exc:  # mediapipe missing or broken: say so once, go on unmasked
            key = f"{type(exc).__name__}: {exc}"
            if key not in self._mask_errors:
                self._mask_errors.add(key)
                log.error("person mask unavailable (%s); generating without it", key)
            return None

    def settle(self) -> None:
        """Wait for the annotation of the frames handed over early."""
        wait([job.job for jobs in self._early.values() for job in jobs])

    def reset(self) -> None:
        """A new session: annotators forget their temporal smoothing."""
        for worker in self._workers.values():
            worker.reset()

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()
