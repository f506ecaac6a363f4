"""The one image-fitting rule, shared by sources, sinks and pipelines (ground floor: it takes
arrays, knows no device)."""

from __future__ import annotations

import cv2
import numpy as np


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width×height and crop the centre (no bars, no distortion).

    Sources deliver whatever their device gives; everything past the capture thread sees
    the configured size. A frame already at that size is returned as is (no copy).
    """
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    s = max(width / w, height / h)
    nw, nh = max(width, int(round(w * s))), max(height, int(round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (nw, nh), interpolation=interp)
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(scaled[y0:y0 + height, x0:x0 + width])
