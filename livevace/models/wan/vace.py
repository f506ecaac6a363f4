"""VACE blocks and cache-stratified hint strength.

VACE (Wan2.1-VACE) adds `vace_patch_embedding` (Conv3d 96→dim) and one full Wan block per
hint. Block 0 mixes the patch-embedded noisy latent in (`before_proj(c) + x`), every block
emits a hint through `after_proj`, and main block `vace_layers[i]` adds `hint_i × scale_i`
to its output. Hints depend on the noisy latent and the timestep, so they are recomputed in
every forward.

**What VACE blocks attend to while streaming: the current chunk only, no cache of their
own.** Why: (1) a hint is a per-chunk function of that chunk's control context and noisy
latent, and the past's control has already shaped the main path's cached K/V of the past
frames, so history reaches the current chunk through the main blocks anyway; (2) a VACE
cache would add 15 layers of K/V (+50 % cache memory) and window-sized attention to a branch
that already costs ≈ 53 % of the main linear work; (3) it is what the public streaming VACE
ports (Daydream Scope's LongLive/Krea VACE) run, so the released weights are known to work
this way. Within a chunk only position differences matter, so VACE blocks reuse the chunk's
RoPE tables and need no positions of their own.

**Cache-stratified VACE**: every forward is either a *generation* pass (denoising the
chunk) or a *refinement* pass (the t = 0 pass that writes the chunk's clean K/V into the
cache, and recache). The hint scale is `vace_context_scale × vace_generation_scale` or
`vace_context_scale × vace_refinement_scale`, times an optional per-layer profile. The
scales reach the model as a small tensor, so changing them never rebuilds or recompiles
anything (`VaceStrength.scales` → `StreamSampler` copies into a static buffer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn

from livevace.models.wan.blocks import ForwardContext, WanBlock
from livevace.models.wan.config import WanConfig

PassKind = Literal["generation", "refinement"]


class VaceBlock(WanBlock):
    """A full Wan block plus `before_proj` (first block only) and `after_proj` (the hint)."""

    def __init__(self, cfg: WanConfig, first: bool) -> None:
        super().__init__(cfg)
        if first:
            self.before_proj = nn.Linear(cfg.dim, cfg.dim)
        self.after_proj = nn.Linear(cfg.dim, cfg.dim)

    def hint(self, c: torch.Tensor, x: torch.Tensor, ctx: ForwardContext, layer: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(hint, new c). c: control tokens (patch-embedded context for block 0, else the
        previous block's c), x: the patch-embedded noisy latent, both float32; `ctx`: the
        VACE blocks' own (see `WanDiT._hints`). The hint stays in the weights' dtype: the main
        block that adds it widens it (`WanBlock.ffn_out`)."""
        if hasattr(self, "before_proj"):
            c = self.before_proj(c.to(self.before_proj.weight.dtype)).float() + x
        c = super().forward(c, ctx, layer)
        return self.after_proj(c.to(self.after_proj.weight.dtype)), c


def resample_profile(profile: Sequence[float], layers: int) -> list[float]:
    """A shallow-to-deep profile linearly resampled to `layers` values (one value: uniform)."""
    values = [float(v) for v in profile] or [1.0]
    if len(values) == 1 or layers == 1:
        return [values[0]] * layers
    out = []
    for i in range(layers):
        pos = i * (len(values) - 1) / (layers - 1)
        lo = min(int(pos), len(values) - 2)
        frac = pos - lo
        out.append(values[lo] * (1 - frac) + values[lo + 1] * frac)
    return out


@dataclass(frozen=True)
class VaceStrength:
    """How strongly the hints steer: an overall scale, one per pass kind, and a per-layer
    profile (the pipeline fills it from the live parameters)."""

    context: float = 1.0
    generation: float = 1.0
    refinement: float = 1.0
    profile: tuple[float, ...] = (1.0,)

    def scales(self, kind: PassKind, layers: int) -> list[float]:
        """Per-VACE-layer hint scale for a generation or refinement pass."""
        role = self.generation if kind == "generation" else self.refinement
        return [self.context * role * p for p in resample_profile(self.profile, layers)]
