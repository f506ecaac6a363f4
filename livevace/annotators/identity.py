"""The `none` control: the input frame itself (VACE then conditions on the raw video)."""

from __future__ import annotations

import numpy as np

from livevace.annotators.base import check_frame


class IdentityAnnotator:
    """Returns a copy of the frame (the caller may reuse its input buffer)."""

    name = "none"
    stateless = True

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return check_frame(image).copy()
