"""What flows through the node: frames with their capture time, and the small protocols
that sources, annotators, pipelines and sinks implement. The loop knows only these."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from livevace.errors import SinkError, SourceError  # noqa: F401  (re-exported for io/)


def now() -> float:
    """The node's one clock: monotonic seconds (capture → sink latency is measured on it)."""
    return time.monotonic()


@dataclass(frozen=True, slots=True)
class Frame:
    """One picture: uint8 RGB, H×W×3, stamped when it was captured.

    `t_capture` is carried unchanged from the source to every sink so glass-to-glass latency
    can be measured; generated frames inherit the stamp of the input they came from.
    """

    image: np.ndarray
    t_capture: float
    index: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@runtime_checkable
class Source(Protocol):
    """Produces frames. `read` blocks up to `timeout` seconds and returns None when no
    frame came (the capture thread then shows a slate or holds); raising SourceError means
    the source is gone and the capture thread will try to reopen it."""

    name: str

    def open(self) -> None: ...

    def read(self, timeout: float) -> Frame | None: ...

    def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Consumes frames at the paced output rate, in its own thread."""

    name: str

    def open(self, width: int, height: int, fps: float) -> None: ...

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Annotator(Protocol):
    """Turns an RGB frame into a control frame (RGB uint8, same size) for VACE."""

    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Pipeline(Protocol):
    """Turns a group of input frames into a burst of output frames.

    `frames_per_call` is how many input frames one call consumes (1 for passthrough, 4 or
    12 for the generator); it may change between calls (chunk size is a live parameter).
    A pipeline whose first call differs from the rest also says `steady_frames_per_call`
    (optional). `params` is the registry snapshot taken for this call.
    """

    name: str
    frames_per_call: int

    def __call__(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]: ...

    def close(self) -> None: ...


@runtime_checkable
class Foresight(Protocol):
    """A pipeline that starts on its next call's frames as they are captured (`Capture.take`
    hands them over while it waits for the rest), so the call waits only for the work on its
    last frames. `early` only queues work: it runs on the loop's thread, between calls."""

    def early(self, frames: list[Frame]) -> None: ...
