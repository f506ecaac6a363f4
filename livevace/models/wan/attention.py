"""Attention kernels: PyTorch SDPA (cuDNN / flash / efficient on GPU), FlashAttention-4 (faster
on Hopper), and a slow explicit path.

All take q [B, H, Nq, D], k and v [B, H, Nk, D] and an optional boolean `allowed` mask that
broadcasts to [B, H, Nq, Nk] (True = may attend). The explicit path does the softmax in
float32 and is what tests compare the others against.

"flash4" runs FlashAttention-4 (the `flash-attn-4` package, CuTe DSL kernels for Hopper and
Blackwell) on every maskless attention and SDPA where there is a mask. Timed as the node runs
them, inside CUDA graphs (H200, `bench/NOTES_pipeline_speed.md` part 7), FA4 beat cuDNN's SDPA
kernel on every self-attention shape of the DiT: 832×480's (4680 queries × 18720 keys),
576×320's (2160 × 8640), VACE's in-chunk 4680 × 4680 and a 1-latent chunk's 720 × 8640; on
cross-attention to the 512 text tokens the two are about even. (Timed eagerly, FA4's Python
per call hid its speed on the smaller shapes.)
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from livevace.errors import describe

log = logging.getLogger("livevace.vace")

AttnImpl = Literal["sdpa", "flash4", "explicit"]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None,
           impl: AttnImpl = "sdpa") -> torch.Tensor:
    """softmax(q·kᵀ/√D, masked) · v, output [B, H, Nq, D] in q's dtype."""
    if impl == "flash4" and allowed is None:
        kernel = flash4()
        if kernel is not None and q.is_cuda:
            out = kernel(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # [B, N, H, D]
            return (out[0] if isinstance(out, tuple) else out).transpose(1, 2)
    if impl in ("sdpa", "flash4"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    if impl != "explicit":
        raise ValueError(f"unknown attention implementation {impl!r}")
    scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return (scores.softmax(dim=-1) @ v.float()).type_as(q)


@functools.cache
def flash4() -> Callable[..., object] | None:
    """FlashAttention-4's attention function, or None where the package is not installed
    (or is, but does not import: said once)."""
    try:
        from flash_attn.cute.interface import flash_attn_func  # type: ignore[import-not-found]
    except ModuleNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - e.g. built for another CUDA: SDPA does the work
        log.warning("FlashAttention-4 is installed but does not load (%s); attention runs "
                    "on cuDNN", describe(err))
        return None
    return flash_attn_func


def flash4_runs_on(device: torch.device, head_dim: int = 128,
                   dtype: torch.dtype = torch.bfloat16) -> bool:
    """Whether "flash4" would use FlashAttention-4 on `device` for this head size and dtype:
    a Hopper or Blackwell, the package installed, and a first small call that works (its
    kernels are compiled on first use; a failure then would otherwise surface mid-show)."""
    if (device.type != "cuda" or dtype not in (torch.bfloat16, torch.float16)
            or torch.cuda.get_device_capability(device)[0] not in (9, 10) or flash4() is None):
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _flash4_works(index, head_dim, dtype)


@functools.cache
def _flash4_works(index: int, head_dim: int, dtype: torch.dtype) -> bool:
    try:
        q = torch.randn(1, 256, 2, head_dim, device=f"cuda:{index}", dtype=dtype)
        flash4()(q, q, q)  # type: ignore[misc]
        torch.cuda.synchronize(index)
        return True
    except Exception as err:  # noqa: BLE001 - the show goes on with cuDNN
        log.warning("FlashAttention-4 does not run here (%s); attention runs on cuDNN",
                    describe(err))
        return False
