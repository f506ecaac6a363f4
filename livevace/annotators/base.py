"""What every annotator shares: input checking and grey/RGB conversions.

Annotators take uint8 RGB H×W×3 and return uint8 RGB H×W×3 of the same size (VACE reads any
control signal as a 3-channel picture). A wrong frame is a user-facing error, not a crash.
"""

from __future__ import annotations

import cv2
import numpy as np

from livevace.errors import UserError


class FrameError(UserError, ValueError):
    """A frame that is not uint8 RGB H×W×3."""


def check_frame(image: np.ndarray) -> np.ndarray:
    """Return `image` as a C-contiguous uint8 H×W×3 array, or raise FrameError."""
    if not isinstance(image, np.ndarray):
        raise FrameError(f"annotator input must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise FrameError(f"annotator input must be H×W×3 RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise FrameError(f"annotator input must be uint8, got {image.dtype}")
    return np.ascontiguousarray(image)


def luma(image: np.ndarray) -> np.ndarray:
    """Rec.601 luma of an RGB frame, uint8 H×W."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def grey_to_rgb(channel: np.ndarray) -> np.ndarray:
    """Repeat a uint8 H×W channel into an RGB frame."""
    return cv2.cvtColor(channel, cv2.COLOR_GRAY2RGB)
