"""The Wan2.1 transformer block and its parts, with the original checkpoint's module names.

Module and parameter names follow the original Wan layout (`self_attn.q`, `norm3`,
`ffn.0`, `modulation`, …) so an original state dict loads without renaming. Numerics follow
the original too: layer norms, modulation and the residual stream in float32, linear layers
in the weights' dtype (bf16 at inference).

Self-attention does not know about caches: it hands its rotated keys to a `SelfKV`
callable, which either returns them as they are (one chunk, no history) or writes them into
a `StreamCache` and returns the whole window to attend over.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from livevace.models.wan.attention import AttnImpl, attend
from livevace.models.wan.config import WanConfig
from livevace.models.wan.rope import apply_rope

KV = tuple[torch.Tensor, torch.Tensor]


class SelfKV(Protocol):
    """Where a block's self-attention keys go and what it attends over."""

    def __call__(self, layer: int, k_raw: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Given the chunk's un-rotated keys, rotated keys and values [B, H, N, D]: return
        (keys, values, allowed mask or None) to attend over."""
        ...


def chunk_only(layer: int, k_raw: torch.Tensor, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, None]:
    """No history: the chunk attends to itself (one-shot forward, VACE blocks)."""
    return k, v, None


class RMSNorm(nn.Module):
    """RMS norm over the full width (Wan normalises q and k over all heads at once)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).type_as(x)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype; returns float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps)


def per_frame(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[B, frames·T, C] → [B, frames, T, C] so per-frame modulation broadcasts."""
    return x.unflatten(1, (frames, -1))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x·(1+scale)+shift with shift/scale [B, F, C] applied to the tokens of each frame."""
    f = shift.shape[1]
    return (per_frame(x, f) * (1 + scale[:, :, None]) + shift[:, :, None]).flatten(1, 2)


def gated(y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return (per_frame(y.float(), gate.shape[1]) * gate[:, :, None]).flatten(1, 2)


class Attention(nn.Module):
    """q, k, v, o projections with q/k RMS norms: the parameters both attentions share."""

    def __init__(self, cfg: WanConfig) -> None:
        super().__init__()
        dim = cfg.dim
        self.num_heads = cfg.num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, cfg.eps)
        self.norm_k = RMSNorm(dim, cfg.eps)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, dim] → [B, H, N, D]."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)


class SelfAttention(Attention):
    def forward(self, h: torch.Tensor, rope: KV, self_kv: SelfKV, layer: int,
                impl: AttnImpl) -> torch.Tensor:
        cos, sin = rope
        q = apply_rope(self.heads(self.norm_q(self.q(h))), cos, sin)
        k_raw = self.heads(self.norm_k(self.k(h)))
        k = apply_rope(k_raw, cos, sin)
        keys, values, allowed = self_kv(layer, k_raw, k, self.heads(self.v(h)))
        out = attend(q, keys, values, allowed, impl)
        return self.o(out.transpose(1, 2).flatten(2))


class CrossAttention(Attention):
    """Attention from the video tokens to the text tokens, whose K/V are computed once."""

    def text_kv(self, context: torch.Tensor) -> KV:
        """K/V [B, H, text_len, D] of the embedded text (cached per block by the caller)."""
        return self.heads(self.norm_k(self.k(context))), self.heads(self.v(context))

    def forward(self, h: torch.Tensor, text: KV, impl: AttnImpl) -> torch.Tensor:
        q = self.heads(self.norm_q(self.q(h)))
        out = attend(q, text[0], text[1], None, impl)
        return self.o(out.transpose(1, 2).flatten(2))


class WanBlock(nn.Module):
    """norm1, self-attention, gated residual; norm3, cross-attention; norm2, FFN, gated."""

    def __init__(self, cfg: WanConfig) -> None:
        super().__init__()
        dim = cfg.dim
        self.norm1 = LayerNorm32(dim, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg)
        self.norm3 = LayerNorm32(dim, cfg.eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(cfg)
        self.norm2 = LayerNorm32(dim, cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor, rope: KV, self_kv: SelfKV, layer: int,
                text: KV, impl: AttnImpl) -> torch.Tensor:
        """x [B, F·T, dim] float32, e [B, F, 6, dim] float32 (per-frame timestep projection)."""
        dtype = self.ffn[0].weight.dtype
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.float() + e).unbind(2)
        h = modulate(self.norm1(x), shift1, scale1).to(dtype)
        x = x + gated(self.self_attn(h, rope, self_kv, layer, impl), gate1)
        x = x + self.cross_attn(self.norm3(x).to(dtype), text, impl).float()
        h = modulate(self.norm2(x), shift2, scale2).to(dtype)
        return x + gated(self.ffn(h), gate2)


class Head(nn.Module):
    """Final modulated norm and projection to latent patches (`head.head`, `head.modulation`)."""

    def __init__(self, cfg: WanConfig) -> None:
        super().__init__()
        self.norm = LayerNorm32(cfg.dim, cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.patch_channels)
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """e [B, F, dim]: the time embedding before the projection."""
        shift, scale = (self.modulation.float()[None] + e[:, :, None]).unbind(2)
        return self.head(modulate(self.norm(x), shift, scale).to(self.head.weight.dtype))
