"""Person mask for inpainting: MediaPipe selfie segmentation, steadied over time.

Returns float32 H×W in [0, 1], 1 = person (or, with `inverse`, 1 = background), the
shape VACE's mask path wants (the pipeline binarises at 0.5 and reshapes it).
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from livevace.store import annotator_files as weights
from livevace.annotators.base import check_frame
from livevace.annotators.mediapipe_backends import (WARM_UP, _mediapipe, bundled_model,
                                                    quiet_native_start)
from livevace.annotators.smoothing import ExponentialAverage, SceneCutDetector
from livevace.errors import ModelError

log = logging.getLogger("livevace.annotators")


class _SolutionsSegmenter:
    def __init__(self, landscape: bool) -> None:
        mp = _mediapipe()
        with quiet_native_start():
            self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(
                model_selection=1 if landscape else 0)
            self._seg.process(WARM_UP)
        self.description = (f"mediapipe solutions (bundled selfie segmentation, "
                            f"{'landscape 144×256' if landscape else 'general 256×256'})")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self._seg.process(image).segmentation_mask

    def close(self) -> None:
        self._seg.close()


class _TasksSegmenter:
    def __init__(self, model: Any) -> None:
        mp = _mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        with quiet_native_start():
            self._seg = vision.ImageSegmenter.create_from_options(vision.ImageSegmenterOptions(
                base_options=BaseOptions(model_asset_path=str(model)),
                running_mode=vision.RunningMode.IMAGE, output_confidence_masks=True,
                output_category_mask=False))
            self(WARM_UP)
        self.description = f"mediapipe tasks ({model.name})"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        masks = self._seg.segment(self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                                                 data=image)).confidence_masks
        if len(masks) == 1:  # one-class selfie model: the channel is the person
            return masks[0].numpy_view()
        return 1.0 - masks[0].numpy_view()  # multiclass: channel 0 is the background

    def close(self) -> None:
        self._seg.close()


class PersonMask:
    """Call with an RGB uint8 frame; get float32 H×W in [0, 1] (1 = person).

    inverse: 1 = background instead; smoothing: weight of the previous mask in a running
    average (0 = none) that restarts on a scene cut; feather: Gaussian blur sigma in
    pixels to soften the edge; landscape: the faster 144×256 bundled model;
    backend: auto | solutions | tasks (tasks reads `selfie_segmenter.tflite` from the
    models directory).
    """

    name = "person_mask"
    stateless = False

    def __init__(self, inverse: bool = False, smoothing: float = 0.5, feather: float = 0.0,
                 landscape: bool = True, backend: str = "auto") -> None:
        self.inverse = inverse
        self.feather = float(feather)
        self._average = ExponentialAverage(float(min(max(smoothing, 0.0), 0.95)))
        self._cuts = SceneCutDetector()
        bundled = bundled_model("selfie_segmentation/selfie_segmentation_landscape.tflite")
        if backend not in ("auto", "solutions", "tasks"):
            raise ModelError(f"mask backend must be auto, solutions or tasks, not {backend!r}")
        if backend == "tasks" or (backend == "auto" and bundled is None):
            folder = weights.SELFIE_SEGMENTER.require()
            self._segment: Any = _TasksSegmenter(folder / weights.SELFIE_SEGMENTER.files[0])
        else:
            if bundled is None:
                raise ModelError("this mediapipe has no bundled selfie segmentation: install "
                                 f"mediapipe==0.10.21 or run `livevace models pull "
                                 f"{weights.SELFIE_SEGMENTER.key}`")
            self._segment = _SolutionsSegmenter(landscape)
        log.info("person mask: %s", self._segment.description)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = check_frame(image)
        h, w = image.shape[:2]
        if min(h, w) < 8:
            mask = np.zeros((h, w), np.float32)
        else:
            mask = np.asarray(self._segment(image), np.float32)
            if mask.shape != (h, w):
                mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        mask = self._average(mask, restart=self._cuts(image)) if min(h, w) >= 8 else mask
        if self.feather > 0:
            mask = cv2.GaussianBlur(mask, (0, 0), self.feather)
        mask = np.clip(mask, 0.0, 1.0)
        return (1.0 - mask) if self.inverse else mask.copy()

    def reset(self) -> None:
        self._average.reset()
        self._cuts.reset()

    def close(self) -> None:
        self._segment.close()


def make_person_mask(**options: Any) -> PersonMask:
    """The person mask the pipeline uses for `mask=person` / `person_inverse`."""
    return PersonMask(**options)
