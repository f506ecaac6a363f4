"""The DiT travels from rank 0 to every rank once, over the device group: every rank then
holds the very same weights (whatever their source: catalogue files, random, a LoRA merge),
and no rank reads a file of its own."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from livevace.models.wan.dit import WanDiT


def send_model(model: WanDiT, headers: dist.ProcessGroup) -> None:
    """Rank 0: the configuration and how it steps (`Acceleration`), then every tensor of the
    state dict."""
    state = model.state_dict()
    specs = [(name, tuple(t.shape), t.dtype) for name, t in state.items()]
    header = (model.cfg, model.attn_impl, model.acceleration, specs)
    dist.broadcast_object_list([header], src=0, group=headers)
    for t in state.values():
        dist.broadcast(t.contiguous(), src=0)


def receive_model(device: torch.device, headers: dist.ProcessGroup) -> WanDiT:
    """Another rank: rank 0's model, built on `device` without a float32 copy."""
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0, group=headers)
    cfg, attn_impl, acceleration, specs = box[0]
    with torch.device("meta"):
        model = WanDiT(cfg)
    state = {}
    for name, shape, dtype in specs:
        t = torch.empty(shape, dtype=dtype, device=device)
        dist.broadcast(t, src=0)
        state[name] = t
    model.load_state_dict(state, assign=True)
    model.attn_impl = attn_impl
    return model.eval().requires_grad_(False).accelerate(acceleration)
