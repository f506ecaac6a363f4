"""What the pipeline talks to: causal encoders and decoders of either codec, and frame ↔ pixel
conversion.

Names: a codec's weights (`Codec`: `WanVAE`, `TinyAutoencoder`) hand out *causal encoders*
and *causal decoders* (`causal_encoder()`, `causal_decoder()`; `CausalEncoder`,
`CausalDecoder`; `VAECausalEncoder`, `TAECausalDecoder`, …): one video's running state, its
causal memory, fed chunk by chunk; `reset` starts the next video. In livevace "stream" means
only a CUDA stream or a video stream (frames coming in or going out); the generator's run
from one cache reset to the next is a *session* (`pipelines.vace.session`).

Both codecs share one latent space (Wan's, normalised per channel) and one pixel convention
(NCTHW, [-1, 1]), and both turn a causal decoder's first latent into 1 frame and every later
one into 4, so the pipeline can switch between them at a chunk boundary.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


class CausalEncoder(Protocol):
    """Pixels → latents, chunk by chunk (first 1 + 4k frames, then 4k)."""

    def encode(self, pixels: Tensor) -> Tensor: ...

    def reset(self) -> None: ...


class CausalDecoder(Protocol):
    """Latents → pixels, chunk by chunk (first latent → 1 frame, every later one → 4)."""

    def decode(self, latents: Tensor) -> Tensor: ...

    def reset(self) -> None: ...


class Codec(Protocol):
    """`WanVAE` and `TinyAutoencoder` both fit: weights that hand out independent causal
    encoders and decoders."""

    def causal_encoder(self) -> CausalEncoder: ...

    def causal_decoder(self) -> CausalDecoder: ...


def frames_to_pixels(frames: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 frames [T, H, W, 3] (or [B, T, H, W, 3]) → pixels [B, 3, T, H, W] in [-1, 1]."""
    if frames.dim() == 4:
        frames = frames[None]
    return frames.permute(0, 4, 1, 2, 3).to(dtype).div_(127.5).sub_(1.0)


def pixels_to_frames(pixels: Tensor) -> Tensor:
    """Pixels [B, 3, T, H, W] in [-1, 1] → uint8 frames [B, T, H, W, 3]."""
    x = (pixels.float() + 1.0).mul_(127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 4, 1)
