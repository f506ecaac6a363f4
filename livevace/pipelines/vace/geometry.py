"""Pixel geometry of the generator: the size it works at and where outpainting puts the input.

The DiT patches 2×2 latents of 8×8 pixels, so generation happens at multiples of 16 pixels;
an output size that is not one is generated at the nearest smaller multiple (inputs are
cropped to fill it) and scaled back. On a CPU, unless the user gave the size, the generator
works at a small one (`cpu_size`) and its frames are scaled up to the output. Every picture
that enters the pipeline — camera frames, masks, reference and keyframe images — is resized
by crop-to-fill (scale to cover, crop the centre: no bars, no distortion), the one rule
`livevace.imaging.fit` implements.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from livevace.imaging import fit

BLOCK = 16
"""Pixels per DiT token side (VAE 8× times patch 2)."""
MIN_INNER = BLOCK
"""Smallest inner picture outpainting keeps (pixels per side)."""

CPU_LONG_SIDE = 128
"""Longest side generated on a CPU when the user gave no size: at 128×80 the tiny random
models keep a 12-frame chunk short even on a small busy CPU, where 832×480 takes many
seconds per chunk (the Wan VAE encoder's 3-D convolutions are most of it)."""

Rect = tuple[int, int, int, int]
"""x0, y0, x1, y1 (exclusive) in pixels."""


def generation_size(width: int, height: int) -> tuple[int, int]:
    """The largest multiples of 16 within the output size (at least 16 each)."""
    return max(BLOCK, width // BLOCK * BLOCK), max(BLOCK, height // BLOCK * BLOCK)


def cpu_size(width: int, height: int) -> tuple[int, int]:
    """The output's shape scaled down (never up) to `CPU_LONG_SIDE` on its longer side, each
    side the nearest multiple of 16."""
    scale = CPU_LONG_SIDE / max(width, height)
    if scale >= 1:
        return generation_size(width, height)
    return (max(BLOCK, round(width * scale / BLOCK) * BLOCK),
            max(BLOCK, round(height * scale / BLOCK) * BLOCK))


def outpaint_rect(ratios: Sequence[float], width: int, height: int) -> Rect | None:
    """Where the input goes when `ratios` (left, top, right, bottom: fractions of the frame to
    generate) extend the canvas; None when nothing is outpainted."""
    left, top, right, bottom = (list(ratios) + [0.0] * 4)[:4]
    if max(left, top, right, bottom) <= 0:
        return None
    x0, x1 = round(left * width), width - round(right * width)
    y0, y1 = round(top * height), height - round(bottom * height)
    if x1 - x0 < MIN_INNER:
        x0, x1 = _centre(x0, x1, width)
    if y1 - y0 < MIN_INNER:
        y0, y1 = _centre(y0, y1, height)
    return x0, y0, x1, y1


def _centre(a: int, b: int, size: int) -> tuple[int, int]:
    mid = min(max((a + b) // 2, MIN_INNER // 2), size - MIN_INNER // 2)
    return mid - MIN_INNER // 2, mid + MIN_INNER // 2


def place(images: np.ndarray, rect: Rect, fill: float = 0) -> np.ndarray:
    """Frames [T, H, W(, C)] with each picture cropped to fill `rect` on a `fill` canvas."""
    x0, y0, x1, y1 = rect
    out = np.full_like(images, fill)
    for i, image in enumerate(images):
        out[i, y0:y1, x0:x1] = fit(image, x1 - x0, y1 - y0)
    return out


def border_mask(rect: Rect, width: int, height: int) -> np.ndarray:
    """float32 H×W: 1 outside `rect` (to generate), 0 inside (the placed input)."""
    x0, y0, x1, y1 = rect
    mask = np.ones((height, width), np.float32)
    mask[y0:y1, x0:x1] = 0.0
    return mask


def fit_frames(images: Sequence[np.ndarray], width: int, height: int) -> np.ndarray:
    """Crop-to-fill each picture and stack them [T, H, W(, C)]."""
    return np.stack([fit(image, width, height) for image in images])
