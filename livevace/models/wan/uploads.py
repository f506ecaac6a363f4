"""Small host → device copies that never make the host wait for the GPU.

A plain `copy_` / `.to(device)` from ordinary (pageable) host memory makes PyTorch synchronise
the stream: the host stalls until every kernel queued before it has run, and the next launches
wait with it. The per-chunk plan of the cache, the hint scales and the seeded noise are small
host-made tensors uploaded while the GPU is busy, so they go through pinned memory with
`non_blocking=True`: PyTorch's caching host allocator keeps a pinned block until the copy
that reads it has finished, so the source may be dropped at once.
"""

from __future__ import annotations

import torch


def to_device(src: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    """`src` on `device` (None: where it is), uploaded without a host sync."""
    if device is None:
        return src
    device = torch.device(device)
    if device.type == "cuda" and not src.is_cuda and not src.is_pinned():
        src = src.pin_memory()
    return src.to(device, non_blocking=True)


def upload(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """`dst.copy_(src)` for a host `src`, without a host sync; returns dst."""
    if dst.is_cuda and not src.is_cuda and not src.is_pinned():
        src = src.pin_memory()
    return dst.copy_(src, non_blocking=True)
