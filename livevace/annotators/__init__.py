"""Annotators: turn camera frames into the control video VACE follows.

    make_annotator(name, **options) -> Annotator      # name in livevace.params.CONTROLS
    make_person_mask(**options) -> PersonMask         # float32 H×W in [0, 1], 1 = person
    AnnotatorWorker(...)                              # off-thread: submit(frames) -> Future

An annotator is called with an RGB uint8 H×W×3 frame and returns an RGB uint8 H×W×3 control
frame of the same size. Stateful ones (temporal smoothing, optical flow) have `reset()`.
Heavy back-ends (mediapipe, torch) are imported only when their annotator is made.
"""

from __future__ import annotations

import importlib
from typing import Any

from livevace.annotators.base import FrameError, check_frame
from livevace.errors import UserError
from livevace.frames import Annotator
from livevace.params import CONTROLS

_FACTORIES: dict[str, str] = {
    "gray": "livevace.annotators.gray:GrayAnnotator",
    "edges": "livevace.annotators.edges:EdgesAnnotator",
    "scribble": "livevace.annotators.edges:ScribbleAnnotator",
    "flow": "livevace.annotators.flow:FlowAnnotator",
    "pose": "livevace.annotators.pose:PoseAnnotator",
    "depth": "livevace.annotators.depth:DepthAnnotator",
    "none": "livevace.annotators.identity:IdentityAnnotator",
}


class UnknownAnnotatorError(UserError, ValueError):
    """A control name that no annotator implements."""


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_annotator(name: str, **options: Any) -> Annotator:
    """Build the annotator for control `name` (see `livevace.params.CONTROLS`).

    Raises UnknownAnnotatorError for a name it does not know and ModelError (naming
    `livevace models pull`) when an annotator's weights are missing.
    """
    if name not in _FACTORIES:
        raise UnknownAnnotatorError(
            f"unknown control {name!r}: choose one of {', '.join(sorted(_FACTORIES))}")
    return _load(_FACTORIES[name])(**options)


from livevace.annotators.mask import PersonMask, make_person_mask  # noqa: E402  (after make_annotator)
from livevace.annotators.worker import AnnotatorWorker  # noqa: E402

__all__ = ["CONTROLS", "AnnotatorWorker", "FrameError", "PersonMask", "UnknownAnnotatorError",
           "check_frame", "make_annotator", "make_person_mask"]
