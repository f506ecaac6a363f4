"""Video-to-video starting points: the noised input latents, the timesteps, and the
motion-aware noise controller.

Latent initialisation (Scope / StreamDiffusionV2): x = ε·s + VAE(input)·(1 − s) with s =
`noise_scale`, and the first denoising step at t = 1000·s − 100 (a little below the noise
actually mixed in, so the input shows through); the later steps are the sampler's own
timesteps below that one.

The controller (`noise_controller`, after StreamDiffusionV2) lowers s when the input moves
fast, so quick motion keeps following the camera instead of smearing: the motion of a chunk
is the largest per-frame RMS change between consecutive frames (pixels in [-1, 1], the
previous chunk's last frame included) over 0.2, clamped to [0, 1]; s drops by up to
`SENSITIVITY` and is smoothed over chunks. It works on small grey copies on the host, so it
costs no GPU sync.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

SENSITIVITY = 0.2
"""How much noise_scale drops at full motion (StreamDiffusionV2's 0.2)."""
FULL_MOTION_RMS = 0.2
"""Per-frame RMS change (pixels in [-1, 1]) that counts as full motion."""
NEW_WEIGHT = 0.9
"""Weight of the newest measurement against the previous chunk's value."""
PROBE = 64
"""Longest side of the grey copies motion is measured on."""


def start_timesteps(timesteps: Sequence[float], noise_scale: float) -> list[float]:
    """Timesteps for a chunk that starts from input latents noised by `noise_scale`."""
    first = max(0.0, 1000.0 * noise_scale - 100.0)
    return [first] + [t for t in timesteps if t < first]


class MotionNoise:
    """Per-session state of the motion-aware controller."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.level: float | None = None

    def reset(self) -> None:
        self.previous = None
        self.level = None

    def motion(self, frames: Sequence[np.ndarray]) -> float:
        """0 (still) … 1 (fast) for a chunk of uint8 RGB frames; remembers its last frame."""
        grey = [self._probe(f) for f in frames]
        seq = ([self.previous] if self.previous is not None else []) + grey
        self.previous = grey[-1]
        if len(seq) < 2:
            return 0.0
        rms = max(float(np.sqrt(np.mean((b - a) ** 2))) for a, b in zip(seq, seq[1:]))
        return min(1.0, rms / FULL_MOTION_RMS)

    def __call__(self, frames: Sequence[np.ndarray], noise_scale: float) -> float:
        """The noise scale to use for this chunk."""
        target = max(0.0, noise_scale - SENSITIVITY * self.motion(frames))
        self.level = target if self.level is None else (
            NEW_WEIGHT * target + (1 - NEW_WEIGHT) * self.level)
        return self.level

    @staticmethod
    def _probe(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        s = PROBE / max(h, w)
        small = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA) if s < 1 else frame
        grey = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY)
        return grey.astype(np.float32) / 127.5
