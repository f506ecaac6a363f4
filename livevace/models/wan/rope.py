"""3-D rotary position embedding of Wan2.1, computed from positions instead of a table.

Each head's channels are split 44/42/42 (at head_dim 128) over (frame, height, width);
consecutive channel pairs rotate by `position × θ^(-2i/d)`, θ = 10000, the pair's axis
deciding which position. The reference implementations index a precomputed 1024-row
table by absolute frame index, which is what makes Scope reset its cache at ~1021 latent
frames. Here angles are computed in float64 from integer positions when a chunk starts,
so any position is exact and nothing can run out; `kv_cache.StreamCache` decides which
positions a chunk and its cached keys use (see there for the long-run rule).
"""

from __future__ import annotations

from typing import Sequence

import torch

from livevace.models.wan.config import WanConfig
from livevace.models.wan.uploads import to_device


def axis_frequencies(dim: int, theta: float) -> torch.Tensor:
    """Angular frequency of each channel pair of one axis (float64, dim/2 values)."""
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device="cpu") / dim)


class Rope:
    """cos/sin tables for one config; token order is frame-major, then row, then column."""

    def __init__(self, cfg: WanConfig) -> None:
        self.cfg = cfg
        dt, dh, dw = cfg.rope_dims
        self.freqs = tuple(axis_frequencies(d, cfg.rope_theta) for d in (dt, dh, dw))

    def angles(self, frame_positions: Sequence[float] | torch.Tensor, height: int,
               width: int) -> torch.Tensor:
        """Angles [frames·height·width, head_dim/2] in float64 for tokens of the given frames."""
        ft, fh, fw = self.freqs
        pos = torch.as_tensor(frame_positions, dtype=torch.float64)
        f, h, w = len(pos), height, width
        rows, cols = (torch.arange(n, dtype=torch.float64) for n in (h, w))
        a_t = torch.outer(pos, ft)[:, None, None, :].expand(f, h, w, -1)
        a_h = torch.outer(rows, fh)[None, :, None, :].expand(f, h, w, -1)
        a_w = torch.outer(cols, fw)[None, None, :, :].expand(f, h, w, -1)
        return torch.cat([a_t, a_h, a_w], dim=-1).reshape(f * h * w, -1)

    def cos_sin(self, frame_positions: Sequence[float] | torch.Tensor, height: int, width: int,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 (cos, sin) tables [tokens, head_dim/2] on `device`."""
        a = self.angles(frame_positions, height, width)
        return to_device(a.cos().float(), device), to_device(a.sin().float(), device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of x [..., tokens, head_dim] (math in float32)."""
    x0, x1 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)
    return out.type_as(x)


ROTATE_BYTES = 64 * 2**20
"""Keys `rotate_layers` rotates per pass: a pass per layer is hundreds of small launches on the
host's critical path; all layers at once, float32 temporaries of several times the whole."""


def rotate_layers(dst: torch.Tensor, src: torch.Tensor, cos: torch.Tensor,
                  sin: torch.Tensor) -> None:
    """dst[l] = apply_rope(src[l], …) for every layer l of the leading axis, a group of layers
    per pass (`ROTATE_BYTES`). `cos`/`sin`: one table for all layers, or one per layer (a
    leading layer axis, as many dimensions as `src`)."""
    per_layer = src[0].numel() * src.element_size()
    step = max(1, ROTATE_BYTES // max(per_layer, 1))
    own = cos.dim() == src.dim()
    for first in range(0, src.shape[0], step):
        group = slice(first, first + step)
        dst[group] = apply_rope(src[group], cos[group] if own else cos,
                                sin[group] if own else sin)
