"""Edge controls: Canny with thresholds taken from each frame's median, and a soft scribble.

Fixed Canny thresholds break when the lighting changes on stage; thresholds around the
median brightness (the usual 'auto Canny') adapt per frame. The scribble variant draws
thicker, softer strokes from a blurred, downscaled picture: what VACE's scribble task
(hand-drawn guides) expects, and more forgiving than hard edges.
"""

from __future__ import annotations

import cv2
import numpy as np

from livevace.annotators.base import check_frame, grey_to_rgb, luma


def auto_canny_thresholds(gray: np.ndarray, sigma: float = 0.33) -> tuple[float, float]:
    """(low, high) Canny thresholds at (1 ∓ sigma) × the median brightness."""
    median = float(np.median(gray))
    low = max(0.0, (1.0 - sigma) * median)
    high = min(255.0, (1.0 + sigma) * median)
    return low, max(high, low + 1.0)


class EdgesAnnotator:
    """Hard white edges on black (Canny, automatic thresholds)."""

    name = "edges"
    stateless = True

    def __init__(self, sigma: float = 0.33, blur: int = 5) -> None:
        self.sigma = float(sigma)
        self.blur = int(blur) | 1  # Gaussian kernels are odd

    def __call__(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.GaussianBlur(luma(check_frame(image)), (self.blur, self.blur), 0)
        low, high = auto_canny_thresholds(gray, self.sigma)
        return grey_to_rgb(cv2.Canny(gray, low, high, L2gradient=True))


class ScribbleAnnotator:
    """Soft, thick strokes: Canny on a half-size blurred picture, dilated and feathered."""

    name = "scribble"
    stateless = True

    def __init__(self, sigma: float = 0.33, thickness: int = 3, softness: float = 1.5) -> None:
        self.sigma = float(sigma)
        self.thickness = max(1, int(thickness))
        self.softness = float(softness)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        gray = luma(check_frame(image))
        h, w = gray.shape
        small = cv2.resize(gray, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (7, 7), 0)
        low, high = auto_canny_thresholds(small, self.sigma)
        strokes = cv2.Canny(small, low, high, L2gradient=True)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.thickness, self.thickness))
        strokes = cv2.dilate(strokes, kernel)
        strokes = cv2.resize(strokes, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.softness > 0:
            strokes = cv2.GaussianBlur(strokes, (0, 0), self.softness)
        return grey_to_rgb(strokes)
