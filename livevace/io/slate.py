"""The "no signal" slate the capture thread shows while its source is silent or gone.

The output never freezes without a reason on screen: the VJ sees which source is missing
and for how long, and the ticking counter proves the node itself is alive.
"""

from __future__ import annotations

import numpy as np

from livevace.io.draw import put_text, text_scale


class Slate:
    def __init__(self, width: int, height: int, source: str) -> None:
        self.width, self.height = width, height
        self._base = np.full((height, width, 3), 24, np.uint8)
        self._base[:, :, 2] = 48
        scale = text_scale(height)
        put_text(self._base, "NO SIGNAL", width // 2, int(height * 0.42), scale * 2.0,
                 (255, 80, 80), center=True)
        put_text(self._base, source, width // 2, int(height * 0.55), scale, center=True)
        self._scale = scale

    def render(self, silent_for: float) -> np.ndarray:
        img = self._base.copy()
        put_text(img, f"waiting {silent_for:5.1f} s - reconnecting", self.width // 2,
                 int(self.height * 0.68), self._scale * 0.8, (200, 200, 200), center=True)
        return img
