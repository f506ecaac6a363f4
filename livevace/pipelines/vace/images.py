"""Still images a VJ points the pipeline at: references, keyframes and mask images.

A path arrives as a live parameter (OSC, a preset), so a typo or a 200-megapixel photo must
not stop the show: each problem is one `ImageError` line naming the path, logged once by
`ImageCache`, and the session goes on without that image. Images are decoded once per path
and size and kept; the file is read again only when the path changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from livevace.errors import UserError
from livevace.imaging import fit

log = logging.getLogger("livevace.vace")

MAX_BYTES = 50 * 1000 * 1000
"""Largest image file accepted (Scope's upload limit)."""
MAX_SIDE = 8192
"""Longest side accepted in pixels (a bigger picture costs seconds to decode and resize)."""


class ImageError(UserError, ValueError):
    """An image path that cannot be used: missing, unreadable or huge."""


def read_image(path: str, what: str, mode: str = "RGB") -> np.ndarray:
    """Decode an image file to uint8 (H×W×3 for RGB, H×W for L); ImageError otherwise.

    The header is read first, so an oversized picture is refused before it is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    file = Path(path).expanduser()
    if not file.is_file():
        raise ImageError(f"{what} {path}: no such file")
    size = file.stat().st_size
    if size > MAX_BYTES:
        raise ImageError(f"{what} {path}: {size / 1e6:.0f} MB is too large (at most "
                         f"{MAX_BYTES / 1e6:.0f} MB)")
    try:
        with Image.open(file) as image:
            w, h = image.size
            if max(w, h) > MAX_SIDE:
                raise ImageError(f"{what} {path}: {w}×{h} pixels is too large (at most "
                                 f"{MAX_SIDE} on a side)")
            return np.asarray(_flatten(image).convert(mode), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{what} {path}: not a readable image ({type(exc).__name__})") from None


def _flatten(image):
    """Transparent pixels over white (a cut-out reference reads as a subject on white, the
    form VACE's reference images were trained with)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba)
    return image


class ImageCache:
    """Decoded, crop-to-filled images by (path, kind); a failure is logged once per path and
    yields None, so the session goes on without it."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._images: dict[tuple[str, str], np.ndarray | None] = {}

    def rgb(self, path: str, what: str) -> np.ndarray | None:
        """uint8 H×W×3 at the generation size, or None (logged) when it cannot be used."""
        return self._get(path, what, "RGB")

    def mask(self, path: str, what: str) -> np.ndarray | None:
        """float32 H×W in [0, 1] (white = 1 = regenerate) at the generation size, or None."""
        grey = self._get(path, what, "L")
        return None if grey is None else grey.astype(np.float32) / 255.0

    def _get(self, path: str, what: str, mode: str) -> np.ndarray | None:
        key = (path, mode)
        if key not in self._images:
            try:
                image = fit(read_image(path, what, mode), self.width, self.height)
            except ImageError as exc:
                log.error("%s; going on without it", exc)
                image = None
            self._images[key] = image
        return self._images[key]

    def forget(self, keep: set[str]) -> None:
        """Drop images whose path is no longer in use (a changed path is read afresh)."""
        self._images = {k: v for k, v in self._images.items() if k[0] in keep}
