"""Gray control: the input's luminance, so VACE keeps the picture and regenerates colour."""

from __future__ import annotations

import numpy as np

from livevace.annotators.base import check_frame, grey_to_rgb, luma


class GrayAnnotator:
    """RGB → luma repeated over three channels (VACE's colourisation task)."""

    name = "gray"
    stateless = True

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return grey_to_rgb(luma(check_frame(image)))
