"""Annotators: turn camera frames into the control video VACE follows.

    make_annotator(name, **options) -> Annotator      # name in livevace.params.CONTROLS
    make_person_mask(**options) -> PersonMask         # float32 H×W in [0, 1], 1 = person
    AnnotatorWorker(...)                              # off-thread: submit(frames) -> Future

An annotator is called with an RGB uint8 H×W×3 frame and returns an RGB uint8 H×W×3 control
frame of the same size. Stateful ones (temporal smoothing, optical flow) have `reset()`.
Heavy back-ends (mediapipe, torch) are imported only when their annotator is made.
"""

from __future__ import annotations

from livevace.annotators.base import FrameError, check_frame
from livevace.annotators.factory import UnknownAnnotatorError, make_annotator
from livevace.annotators.mask import PersonMask, make_person_mask
from livevace.annotators.worker import AnnotatorWorker
from livevace.params import CONTROLS

__all__ = ["CONTROLS", "AnnotatorWorker", "FrameError", "PersonMask", "UnknownAnnotatorError",
           "check_frame", "make_annotator", "make_person_mask"]
