"""The decoded frames a rebuilt cache re-encodes its first context frame from.

Krea Realtime (`models.wan.rebuild`) rebuilds its cache before every block from [first,
latent[-2], latent[-1]]; from the third block on, "first" is the oldest of the last few
decoded pixel frames encoded alone, as a video's first frame. The sampler cannot decode, so
the session keeps the frames here and hands the sampler `first_latent` as its hook.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor

from livevace.models.wan.vae import WanVAE


class DecodedFrames:
    """The last `keep` decoded pixel frames of a session; `first_latent` encodes the oldest."""

    def __init__(self, vae: WanVAE, keep: int) -> None:
        self.vae, self.keep = vae, keep
        self.frames: deque[Tensor] = deque(maxlen=keep)

    def reset(self) -> None:
        self.frames.clear()

    def push(self, pixels: Tensor) -> None:
        """A chunk's decoded pixels [B, 3, T, H, W] in [-1, 1], copied (a decoder may reuse
        its output buffer)."""
        kept = pixels[:, :, -self.keep:].clone()
        self.frames.extend(kept.split(1, dim=2))

    @torch.no_grad()
    def first_latent(self) -> Tensor | None:
        """The oldest kept frame encoded alone, as a first frame: [B, 16, 1, h, w] (None while
        nothing was decoded)."""
        if not self.frames:
            return None
        return self.vae.causal_encoder().encode(self.frames[0]).float()
