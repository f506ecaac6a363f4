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

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from livevace.models.wan.attention import AttnImpl, attend
from livevace.models.wan.config import WanConfig
from livevace.models.wan.linear import buffer_linear, linear, linear_gelu, set_fp8
from livevace.models.wan.rope import apply_rope

KV = tuple[torch.Tensor, torch.Tensor]
Hint = tuple[torch.Tensor, torch.Tensor]
"""A VACE hint [B, N, dim] and its scale (a 0-d tensor), added after a main block."""


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

    def output(self, attn: torch.Tensor) -> torch.Tensor:
        """Attention output [B, H, N, D] → o-projection [B, N, dim]."""
        return linear(self.o, attn.transpose(1, 2).flatten(2))


class SelfAttention(Attention):
    """Self-attention's projections; the attention itself runs in `WanBlock.forward`.

    `fuse_qkv` makes q, k and v one [3·dim, dim] matrix product (one GEMM launch, better
    tile occupancy at a few thousand tokens); q/k/v weights then become views into the fused
    weight, so the checkpoint layout and `state_dict` stay as they are. Fuse after the last
    cast or move (`Module.to` gives each parameter its own storage again); fusing again
    rebuilds from the current q/k/v weights. The parameters are replaced, not their `.data`:
    a weight stored in FP8 (`fp8_weights`) is a tensor subclass whose parts a `.data` swap
    would leave behind, holding the old storage.
    """

    def __init__(self, cfg: WanConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("qkv_weight", None, persistent=False)
        self.register_buffer("qkv_bias", None, persistent=False)

    def fuse_qkv(self, on: bool = True) -> None:
        parts = (self.q, self.k, self.v)
        if not on:
            for p in parts:  # own storage again, so the fused buffer can go
                _share(p, p.weight.detach().clone(), p.bias.detach().clone())
            self.qkv_weight = self.qkv_bias = None
            set_fp8(self, False, "qkv_")
            return
        self.qkv_weight = torch.cat([p.weight.detach() for p in parts])
        self.qkv_bias = torch.cat([p.bias.detach() for p in parts])
        for p, w, b in zip(parts, self.qkv_weight.chunk(3), self.qkv_bias.chunk(3)):
            _share(p, w, b)

    def qkv(self, h: torch.Tensor, rope: KV) -> tuple[torch.Tensor, ...]:
        """(q, k un-rotated, k, v) [B, H, N, D] of the modulated tokens h."""
        if self.qkv_weight is None:
            q, k, v = linear(self.q, h), linear(self.k, h), linear(self.v, h)
        else:
            q, k, v = buffer_linear(self, "qkv_", h).chunk(3, dim=-1)
        cos, sin = rope
        k_raw = self.heads(self.norm_k(k))
        return (apply_rope(self.heads(self.norm_q(q)), cos, sin), k_raw,
                apply_rope(k_raw, cos, sin), self.heads(v))


def _share(layer: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """`layer` computes with these tensors (views into a fused weight, or its own copies)."""
    layer.weight = nn.Parameter(weight, requires_grad=layer.weight.requires_grad)
    layer.bias = nn.Parameter(bias, requires_grad=layer.bias.requires_grad)


class CrossAttention(Attention):
    """Attention from the video tokens to the text tokens, whose K/V are computed once."""

    def text_kv(self, context: torch.Tensor) -> KV:
        """K/V [B, H, text_len, D] of the embedded text (cached per block by the caller)."""
        return self.heads(self.norm_k(self.k(context))), self.heads(self.v(context))

    def query(self, h: torch.Tensor) -> torch.Tensor:
        return self.heads(self.norm_q(linear(self.q, h)))


class WanBlock(nn.Module):
    """norm1, self-attention, gated residual; norm3, cross-attention; norm2, FFN, gated.

    The work between the two attentions is split into three phases (`self_in`, `cross_in`,
    `ffn_out`): element-wise chains plus matrix products with no attention inside, which
    `compiled` hands to torch.compile as they are (one compiled graph per phase serves every
    block). `forward` runs the attentions and the cache write between them.
    """

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

    def forward(self, x: torch.Tensor, ctx: ForwardContext, layer: int, hint: Hint | None = None
                ) -> torch.Tensor:
        """x [B, F·T, dim] float32; `layer`: this block's index in `ctx`'s cache and text;
        `hint`: added to the output (see `ffn_out`)."""
        ph, e = ctx.phases, ctx.e
        qkv = ph.self_in(self, x, e, ctx.rope)
        q, k_raw, k, v = qkv if ctx.heads is None else ctx.heads.to_heads(qkv)
        keys, values, allowed = ctx.self_kv(layer, k_raw, k, v)
        attn = attend(q, keys, values, allowed, ctx.impl)
        if ctx.heads is not None:
            attn = ctx.heads.to_tokens(attn)
        x, q_text = ph.cross_in(self, x, e, attn)
        text_k, text_v = ctx.text[layer]
        return ph.ffn_out(self, x, e, attend(q_text, text_k, text_v, None, ctx.impl), hint)

    def modulations(self, e: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(shift1, scale1, gate1, shift2, scale2, gate2), each [B, F, dim] float32."""
        return (self.modulation.float() + e).unbind(2)

    def self_in(self, x: torch.Tensor, e: torch.Tensor, rope: KV) -> tuple[torch.Tensor, ...]:
        """norm1 · (1 + scale1) + shift1 → q, k un-rotated, k, v for self-attention."""
        shift, scale = self.modulations(e)[:2]
        h = modulate(self.norm1(x), shift, scale).to(self.compute_dtype)
        return self.self_attn.qkv(h, rope)

    def cross_in(self, x: torch.Tensor, e: torch.Tensor, attn: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gated self-attention residual, then norm3 → the cross-attention queries."""
        x = x + gated(self.self_attn.output(attn), self.modulations(e)[2])
        return x, self.cross_attn.query(self.norm3(x).to(self.compute_dtype))

    def ffn_out(self, x: torch.Tensor, e: torch.Tensor, attn: torch.Tensor,
                hint: Hint | None = None) -> torch.Tensor:
        """Cross-attention residual, norm2 · (1 + scale2) + shift2 → FFN → gated residual,
        then + hint · scale where a VACE hint joins after this block (in the same fused
        kernel when compiled, instead of three passes over the residual stream)."""
        shift, scale, gate = self.modulations(e)[3:]
        x = x + self.cross_attn.output(attn).float()
        h = modulate(self.norm2(x), shift, scale).to(self.compute_dtype)
        y = linear(self.ffn[2], linear_gelu(self.ffn[0], h))
        x = x + gated(y, gate)
        return x if hint is None else x + hint[0].float() * hint[1]

    @property
    def compute_dtype(self) -> torch.dtype:
        """The linear layers' dtype: what modulated activations are cast to."""
        return self.ffn[0].weight.dtype

    def fast_linears(self) -> list[tuple[nn.Module, str]]:
        """(owner, prefix) of every large matrix product of the block (FP8 candidates)."""
        sa = self.self_attn
        qkv = [(sa, "qkv_")] if sa.qkv_weight is not None else [(sa.q, ""), (sa.k, ""),
                                                                 (sa.v, "")]
        return qkv + [(sa.o, ""), (self.cross_attn.q, ""), (self.cross_attn.o, ""),
                      (self.ffn[0], ""), (self.ffn[2], "")]


@dataclass(frozen=True)
class Phases:
    """The three attention-free phases of a block, as called by `WanBlock.forward`:
    the methods themselves (eager) or compiled versions of them."""

    self_in: Callable[..., tuple[torch.Tensor, ...]]
    cross_in: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    ffn_out: Callable[..., torch.Tensor]


EAGER = Phases(WanBlock.self_in, WanBlock.cross_in, WanBlock.ffn_out)


class HeadExchange(Protocol):
    """Between a block's own tokens and the tokens its self-attention needs: sequence
    parallelism hands each process all tokens of some heads (`livevace.distributed`)."""

    def to_heads(self, qkv: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """(q, k un-rotated, k, v) of this process's tokens → of the tokens attention sees."""
        ...

    def to_tokens(self, attn: torch.Tensor) -> torch.Tensor:
        """The attention output back to this process's tokens, all heads."""
        ...


@dataclass(frozen=True)
class ForwardContext:
    """What every block of one forward receives, packed once per forward instead of passed
    as a row of positional arguments."""

    e: torch.Tensor
    """[B, F, 6, dim] float32: the per-frame timestep projection."""
    rope: KV
    """The chunk's RoPE tables (cos, sin)."""
    self_kv: SelfKV
    """Where self-attention keys go and what they attend over (a cache writer or `chunk_only`)."""
    text: Sequence[KV]
    """Cached text K/V, one per block, indexed by the block's layer."""
    impl: AttnImpl
    phases: Phases = EAGER
    heads: HeadExchange | None = None
    """None: attention sees exactly the block's tokens (one process)."""


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
