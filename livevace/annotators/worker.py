"""Annotators off the loop's GPU thread: submit a chunk of frames now, collect it later.

    worker = AnnotatorWorker("pose")
    future = worker.submit(frames)        # returns at once
    ...                                   # the GPU denoises the previous chunk meanwhile
    controls = future.result()            # list of control frames, same order

Chunks run in submission order on one lane thread, so stateful annotators (smoothing,
flow's previous frame, MediaPipe tracking) see frames in order; stateless ones spread the
frames of a chunk over a thread pool (OpenCV releases the GIL); GPU ones (`batch`) take the
whole chunk at once on their own CUDA stream. `switch` starts building the new annotator
at once on a builder thread and the next submitted chunk uses it (waiting for the build if
it is not done), so a live control change lands on a chunk boundary.

The show must go on: an annotator that cannot be built (weights missing or broken, a backend
that fails to start) or that fails while it runs is replaced by `fallback`, with one log
line saying so, and the chunk is annotated by the fallback. Without a fallback (person
masks) the error reaches the chunk's future — the same error for every chunk until the next
`switch`, so the caller can say it once. A bad frame (`UserError`) fails its chunk only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from livevace.annotators.factory import make_annotator
from livevace.errors import UserError, describe

log = logging.getLogger("livevace.annotators")

Factory = Callable[..., Any]


class AnnotatorWorker:
    """One control signal, computed in the background chunk by chunk.

    factory: builds an annotator from (name, **options) — `make_annotator`, or e.g.
    `lambda name, **o: make_person_mask(**o)` for masks; fallback: the control used when
    the requested one cannot load or fails (see the module doc), None to let the error
    through to the chunk's future; threads: pool size for stateless annotators.
    """

    def __init__(self, control: str = "none", *, factory: Factory = make_annotator,
                 fallback: str | None = "edges", threads: int = 2, **options: Any) -> None:
        self._factory = factory
        self._fallback = fallback
        self._lane = ThreadPoolExecutor(1, thread_name_prefix="annotator-lane")
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="annotator-build")
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="annotator")
        self._lock = threading.Lock()
        self._annotator: Any = None
        self._broken: Exception | None = None
        """Why there is no annotator (its build failed and there is no fallback)."""
        self._pending: Future | None = None
        self._reset = False
        self.requested = control
        self.active: str | None = None
        """The control actually running (differs from `requested` after a fallback)."""
        self.switch(control, **options)

    def switch(self, control: str, **options: Any) -> None:
        """Use `control` from the next submitted chunk on (building starts now)."""
        with self._lock:
            self.requested = control
            superseded, self._pending = self._pending, self._builder.submit(self._build, control, options)
        if superseded is not None:  # switched again before a chunk used it: release it when built
            superseded.add_done_callback(self._discard)

    def reset(self) -> None:
        """Forget temporal state (scene change) before the next submitted chunk."""
        with self._lock:
            self._reset = True

    def submit(self, frames: Sequence[np.ndarray], learn: bool = False) -> Future:
        """Queue a chunk; the future yields one control frame per input frame, in order.
        `learn`: the annotator may make its fast path for this chunk's shape meanwhile
        (compile, capture a CUDA graph: seconds; `prepare` only).

        Frames must stay unmodified until the future is done.
        """
        with self._lock:
            pending, self._pending = self._pending, None
            reset, self._reset = self._reset, False
        return self._lane.submit(self._run, list(frames), pending, reset, learn)

    def close(self) -> None:
        """Finish queued chunks, then stop the threads and release the annotator."""
        self._lane.shutdown(wait=True)
        self._builder.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        self._retire(self._annotator)
        self._annotator = None

    def __enter__(self) -> "AnnotatorWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- lane and builder threads

    def _build(self, control: str, options: dict[str, Any]) -> tuple[str, Any]:
        try:
            return control, self._factory(control, **options)
        except Exception as err:  # noqa: BLE001 - any failure to start falls back
            if self._fallback is None or self._fallback == control:
                raise
            log.warning("control %s unavailable (%s); falling back to %s",
                        control, describe(err), self._fallback)
            return self._fallback, self._factory(self._fallback)

    def _run(self, frames: list[np.ndarray], pending: Future | None, reset: bool,
             learn: bool = False) -> list[np.ndarray]:
        if pending is not None:
            self._retire(self._annotator)
            self._annotator = self.active = self._broken = None
            try:
                self.active, self._annotator = pending.result()
            except Exception as err:
                self._broken = err
        if self._broken is not None:  # (its traceback dropped, so it does not grow per chunk)
            raise self._broken.with_traceback(None)
        if reset and hasattr(self._annotator, "reset"):
            self._annotator.reset()
        learning = getattr(self._annotator, "learning", None) if learn else None
        try:
            with learning() if learning is not None else contextlib.nullcontext():
                return self._annotate(frames)
        except UserError:
            raise  # a bad frame: its chunk only
        except Exception as err:
            if self._fallback is None or self.active == self._fallback:
                raise
            log.error("control %s failed (%s); falling back to %s",
                      self.active, describe(err), self._fallback)
            self._retire(self._annotator)
            self.active, self._annotator = self._fallback, self._factory(self._fallback)
            return self._annotate(frames)

    def _annotate(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        annotator = self._annotator
        if not frames:
            return []
        if hasattr(annotator, "batch"):
            return list(annotator.batch(frames))
        if getattr(annotator, "stateless", False) and len(frames) > 1:
            return list(self._pool.map(annotator, frames))
        return [annotator(f) for f in frames]

    @classmethod
    def _discard(cls, built: Future) -> None:
        if built.exception() is None:
            cls._retire(built.result()[1])

    @staticmethod
    def _retire(annotator: Any) -> None:
        close = getattr(annotator, "close", None)
        if close is not None:
            close()
