"""Small drawing helpers shared by the generated pictures (test pattern, no-signal slate)."""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX


def text_scale(height: int) -> float:
    """A font scale that reads well at any output height (1.0 at 720 lines)."""
    return max(0.35, height / 720)


def put_text(img: np.ndarray, text: str, x: int, y: int, scale: float,
             color: tuple[int, int, int] = (255, 255, 255), center: bool = False) -> None:
    """Outlined text (readable on any background); `center` centres it on x."""
    thick = max(1, int(round(2 * scale)))
    if center:
        (w, _), _ = cv2.getTextSize(text, FONT, scale, thick)
        x -= w // 2
    cv2.putText(img, text, (x, y), FONT, scale, (0, 0, 0), thick + 2 * max(1, thick // 2), cv2.LINE_AA)
    cv2.putText(img, text, (x, y), FONT, scale, color, thick, cv2.LINE_AA)
