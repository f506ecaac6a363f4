"""The DiT travels from rank 0 to every rank once, over the device group: every rank then
holds the very same weights (whatever their source: catalogue files, random, a LoRA merge),
and no rank reads a file of its own."""

from __future__ import annotations

import torch
import torch.distributed as dist

from livevace.models.wan.config import WanConfig
from livevace.models.wan.dit import WanDiT


def send_model(model: WanDiT, headers: dist.ProcessGroup) -> None:
    """Rank 0: the configuration, then every tensor of the state dict."""
    state = model.state_dict()
    specs = [(name, tuple(t.shape), t.dtype) for name, t in state.items()]
    dist.broadcast_object_list([(model.cfg, model.attn_impl, specs)], src=0, group=headers)
    for t in state.values():
        dist.broadcast(t.contiguous(), src=0)


def receive_model(device: torch.device, headers: dist.ProcessGroup) -> WanDiT:
    """Another rank: rank 0's model, built on `device` without a float32 copy."""
    box: list[tuple[WanConfig, str, list[tuple[str, tuple[int, ...], torch.dtype]]] | None]
    box = [None]
    dist.broadcast_object_list(box, src=0, group=headers)
    assert box[0] is not None
    cfg, attn_impl, specs = box[0]
    with torch.device("meta"):
        model = WanDiT(cfg)
    state = {}
    for name, shape, dtype in specs:
        t = torch.empty(shape, dtype=dtype, device=device)
        dist.broadcast(t, src=0)
        state[name] = t
    model.load_state_dict(state, assign=True)
    model.attn_impl = attn_impl  # type: ignore[assignment]
    return model.eval().requires_grad_(False)
