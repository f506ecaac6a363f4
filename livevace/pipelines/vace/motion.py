"""Video-to-video starting points: the noised input latents, the timesteps, and the
motion-aware noise controller.

Latent initialisation (Scope / StreamDiffusionV2): x = ε·s + VAE(input)·(1 − s) with s =
`noise_scale`, and the first denoising step at t = int(1000·s) − 100 (a little below the
noise actually mixed in, so the input shows through); the later steps are the sampler's own
timesteps below that one.

The controller (`noise_controller`; StreamDiffusionV2's `compute_noise_scale_and_step`)
lowers s when the input moves fast, so quick motion keeps following the camera instead of
smearing. The motion of a chunk is the largest per-frame RMS change between consecutive frames
(RGB at the generation size, pixels in [-1, 1], the previous chunk's last frame included) over
0.2, clamped to [0, 1]; the chunk's s is 0.9·(s_set − 0.1·motion) + 0.1·(the previous chunk's
s). A session's first chunk has nothing to compare with and keeps s_set. The sums run in
OpenCV on the host's uint8 frames, exactly and without a GPU sync.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

SENSITIVITY = 0.1
"""How much noise_scale drops at full motion."""
FULL_MOTION_RMS = 0.2
"""Per-frame RMS change (pixels in [-1, 1]) that counts as full motion."""
NEW_WEIGHT = 0.9
"""Weight of the newest measurement against the previous chunk's value."""


def start_timesteps(timesteps: Sequence[float], noise_scale: float) -> list[float]:
    """Timesteps for a chunk that starts from input latents noised by `noise_scale`."""
    first = float(max(0, int(1000.0 * noise_scale) - 100))
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
        seq = ([self.previous] if self.previous is not None else []) + list(frames)
        self.previous = np.array(frames[-1])
        if len(seq) < 2:
            return 0.0
        rms = max(np.sqrt(cv2.norm(a, b, cv2.NORM_L2SQR) / a.size) / 127.5
                  for a, b in zip(seq, seq[1:]))
        return min(1.0, rms / FULL_MOTION_RMS)

    def __call__(self, frames: Sequence[np.ndarray], noise_scale: float) -> float:
        """The noise scale to use for this chunk."""
        if self.level is None:
            self.previous = np.array(frames[-1])
            self.level = noise_scale
            return self.level
        target = max(0.0, noise_scale - SENSITIVITY * self.motion(frames))
        self.level = NEW_WEIGHT * target + (1 - NEW_WEIGHT) * self.level
        return self.level
