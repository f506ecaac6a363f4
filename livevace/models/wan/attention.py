"""Attention kernels: PyTorch SDPA (cuDNN / flash / efficient on GPU) and a slow explicit path.

Both take q [B, H, Nq, D], k and v [B, H, Nk, D] and an optional boolean `allowed` mask that
broadcasts to [B, H, Nq, Nk] (True = may attend). The explicit path does the softmax in
float32 and is what tests compare SDPA against.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

AttnImpl = Literal["sdpa", "explicit"]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None,
           impl: AttnImpl = "sdpa") -> torch.Tensor:
    """softmax(q·kᵀ/√D, masked) · v, output [B, H, Nq, D] in q's dtype."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    if impl != "explicit":
        raise ValueError(f"unknown attention implementation {impl!r}")
    scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return (scores.softmax(dim=-1) @ v.float()).type_as(q)
