"""FP8 weight storage (an option, off by default, quality-affecting): the linear layers of
every block kept in e4m3 with one scale per output row, half of bf16's memory.

Why: Wan2.1-14B with its VACE blocks holds about 17 B parameters; in bf16 their weights alone
fill a 32 GB card. Stored in e4m3 they take half, which leaves room for the cache, the
activations and the codecs.

The storage is torchao's `Float8Tensor` (per-row, weight-only float8: `Float8WeightOnlyConfig`
at `PerRow` granularity), a tensor subclass that stays the `weight` of its `nn.Linear`: every
module that reads `.weight.dtype` or calls the layer works unchanged, and each matrix product
upcasts the weight to the activations' dtype first (bf16 maths; one extra pass over the
weight's bytes per GEMM, small beside a GEMM over a chunk's thousands of tokens). With the
FP8 compute option as well (`Acceleration(fp8=True)`, see `linear`) the GEMMs take the stored
e4m3 rows and their scales as they are: no second copy and no upcast.

Which layers: every `nn.Linear` inside the main and VACE blocks (self- and cross-attention
projections, the FFN, VACE's before/after projections), which hold nearly all the weights.
Embeddings, the float32 time path, norms, modulation tables and the head stay as they are.
"""

from __future__ import annotations

import torch
from torch import nn


def stored_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(e4m3 data [N, K], float32 scale [N, 1]) of a weight stored in FP8 (weight ≈ data ·
    scale, row by row); None for a plain weight."""
    if type(weight) in (torch.Tensor, nn.Parameter):
        return None
    data, scale = getattr(weight, "qdata", None), getattr(weight, "scale", None)
    if data is None or data.dtype != torch.float8_e4m3fn or scale.shape != (data.shape[0], 1):
        raise TypeError(f"{type(weight).__name__}: not a per-row e4m3 weight")
    return data, scale


def block_linears(model: nn.Module) -> list[nn.Linear]:
    """The linear layers whose weights go to FP8 (see the module doc)."""
    blocks = list(model.blocks) + list(getattr(model, "vace_blocks", []))
    return [m for block in blocks for m in block.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def store_fp8(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """Keep the block linears' weights of a `WanDiT` in FP8, in place, block by block; with
    `device`, each block is moved there just before (a model still on the host reaches the
    GPU already in FP8: the peak is one bf16 block above the stored model). Call before
    `accelerate` (a fused QKV is undone and redone around it). Returns the model."""
    from torchao.quantization import Float8WeightOnlyConfig, PerRow, quantize_

    config = Float8WeightOnlyConfig(granularity=PerRow(), set_inductor_config=False)
    targets = {id(m) for m in block_linears(model) if stored_fp8(m.weight) is None}
    for block in list(model.blocks) + list(getattr(model, "vace_blocks", [])):
        fused = block.self_attn.qkv_weight is not None
        if fused:
            block.self_attn.fuse_qkv(False)
        if device is not None:
            block.to(device)
        quantize_(block, config, filter_fn=lambda m, _: id(m) in targets)
        if fused:
            block.self_attn.fuse_qkv(True)
    if device is not None:
        model.to(device)
    return model
