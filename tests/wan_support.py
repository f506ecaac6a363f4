"""Shared helpers for the Wan DiT tests: diffusers reference models with random weights.

The reference is the installed diffusers (`WanTransformer3DModel`,
`WanVACETransformer3DModel`) with every parameter randomised. Two documented adjustments
make it express what the tests compare:

- `wan_timestep_precision`: diffusers rounds the timestep sinusoid to float32 (≈1e-5 relative
  at t = 1000); the original Wan, whose weights these are, computes it in float64, and so do
  we. The reference gets the float64 sinusoid so the comparison isolates the transformer
  (a test also checks that this rounding is the only difference).
- `mask_self_attention`: a boolean [frames, frames] mask on the self-attention of the main
  (or VACE) blocks, expressing the block-causal window-with-sink semantics of streaming as one
  forward over the whole sequence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch
from diffusers import WanTransformer3DModel, WanVACETransformer3DModel
from diffusers.models.transformers.transformer_wan import WanAttnProcessor
from torch import nn

from livevace.models.wan.config import WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.weights import load_dit


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is much faster than two fighting other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter random (norm weights around 1), so no term can hide behind zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.2
            p.copy_(noise + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    return model.eval()


def reference(cfg: WanConfig, seed: int = 0, rope_max_seq_len: int = 1024) -> nn.Module:
    """A diffusers Wan (or Wan-VACE, when cfg has VACE layers) with random weights."""
    kwargs = dict(patch_size=cfg.patch, num_attention_heads=cfg.num_heads,
                  attention_head_dim=cfg.head_dim, in_channels=cfg.in_channels,
                  out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
                  ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True,
                  eps=cfg.eps, rope_max_seq_len=rope_max_seq_len)
    if cfg.has_vace:
        model = WanVACETransformer3DModel(vace_layers=list(cfg.vace_layers),
                                          vace_in_channels=cfg.vace_in_channels, **kwargs)
    else:
        model = WanTransformer3DModel(**kwargs)
    return randomise(model, seed)


def ours_from(ref: nn.Module, cfg: WanConfig, folder: Path) -> WanDiT:
    """Our model loaded by our loader from the file diffusers itself writes."""
    ref.save_pretrained(folder)
    return load_dit(folder, cfg=cfg, dtype=torch.float32)


class Float64Timesteps(nn.Module):
    """The original Wan timestep sinusoid ([cos, sin], float64) in place of diffusers' fp32."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
        angles = torch.outer(t.double(), freqs)
        return torch.cat([angles.cos(), angles.sin()], dim=1).float()


def wan_timestep_precision(ref: nn.Module) -> nn.Module:
    ref.condition_embedder.timesteps_proj = Float64Timesteps(ref.config.freq_dim)
    return ref


class MaskedSelfAttention(WanAttnProcessor):
    """diffusers' processor with a fixed boolean mask on self-attention only."""

    def __init__(self, allowed: torch.Tensor) -> None:
        super().__init__()
        self.allowed = allowed

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        mask = self.allowed if encoder_hidden_states is None else None
        return super().__call__(attn, hidden_states, encoder_hidden_states, mask, rotary_emb)


def mask_self_attention(blocks: nn.ModuleList, frames_allowed: torch.Tensor,
                        frame_tokens: int) -> None:
    """Let token i attend token j iff their frames are allowed by `frames_allowed` [F, F]."""
    tokens = frames_allowed.repeat_interleave(frame_tokens, 0).repeat_interleave(frame_tokens, 1)
    for block in blocks:
        block.attn1.set_processor(MaskedSelfAttention(tokens[None, None]))


def window_mask(frames: int, chunk: int, window: int, sink: int,
                sink_at: list[int] | None = None) -> torch.Tensor:
    """LongLive's streaming attention as a frame mask: a frame of chunk [s, e) sees the sink
    frames and the last window - sink frames up to e (block-causal)."""
    allowed = torch.zeros(frames, frames, dtype=torch.bool)
    sinks = set(range(sink) if sink_at is None else sink_at)
    for q in range(frames):
        end = (q // chunk + 1) * chunk
        for k in range(min(end, frames)):
            allowed[q, k] = k in sinks or k >= end - (window - sink)
    return allowed


def chunk_mask(frames: int, chunk: int) -> torch.Tensor:
    """Frames attend within their own chunk only (VACE blocks while streaming)."""
    idx = torch.arange(frames) // chunk
    return idx[:, None] == idx[None, :]
