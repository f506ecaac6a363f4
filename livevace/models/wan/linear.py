"""Linear layers of the fast path: FP8 copies (an option) and GEMM epilogues.

**FP8 (e4m3), off by default, quality-affecting.** TorchAO's row-wise dynamic W8A8 (the
tensor behind `Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())`): each weight
row (output feature) has its own scale, set once when FP8 is switched on, and each activation
row (token) gets its own scale per call, taken from its absolute maximum. `torch._scaled_mm`
multiplies the e4m3 operands on the FP8 tensor cores and applies both scales in its epilogue
(out in the activation's dtype), with Hopper's fast accumulation (no periodic promotion of the
partial sums: TorchAO's inference default). The activation's quantisation is plain PyTorch
(`KernelPreference.TORCH`), so under torch.compile it fuses into the kernel that produced the
activation (norm, modulation, GELU).

The FP8 copy is a `Float8Tensor` held beside the bf16 weight as the non-persistent buffer
`<prefix>weight_fp8` of the owning module, so checkpoints and `state_dict` never see it and
switching FP8 off is free. A weight already stored in FP8 (`fp8_weights`) lends it its e4m3
rows and scales (no second copy); either way an in-place write of those rows and scales (a
live LoRA merge, `lora_live`) reaches the GEMMs. The tensor is built directly rather than by
`quantize_`, whose hardware check refuses a CPU although every op it needs runs there (the
tests).

**GELU in the GEMM epilogue.** The FFN's first layer and its tanh-GELU are one cuBLASLt call
(`torch._addmm_activation`), which torch.compile keeps as it is: the [tokens, ffn_dim]
activation is written once instead of written, read and written again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from livevace.models.wan.fp8_weights import stored_fp8

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
"""Largest finite e4m3 value: a row's absolute maximum is mapped onto it."""


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] → (e4m3 [M, K], float32 scale [M, 1]) with x ≈ e4m3 · scale."""
    xf = x.float()
    scale = xf.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
    return (xf / scale).to(E4M3), scale


def linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layer(x), through the layer's FP8 copy when one is set (`set_fp8`). Calling the layer
    itself otherwise keeps wrappers such as a PEFT LoRA layer working."""
    out = fp8_product(layer, "", x, layer.bias)
    return layer(x) if out is None else out


def linear_gelu(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(layer(x)); bias and GELU in the GEMM's epilogue for a plain Linear on a GPU
    (PyTorch's CPU `_addmm_activation` uses the exact erf GELU, its CUDA one tanh's)."""
    if (not x.is_cuda or type(layer) is not nn.Linear or layer.bias is None
            or hasattr(layer, "weight_fp8") or type(layer.weight) is not nn.Parameter):
        return F.gelu(linear(layer, x), approximate="tanh")
    flat = torch._addmm_activation(layer.bias, x.reshape(-1, x.shape[-1]), layer.weight.t(),
                                   use_gelu=True)
    return flat.unflatten(0, x.shape[:-1])


def buffer_linear(owner: nn.Module, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """The linear map held in `owner`'s buffers `<prefix>weight`/`<prefix>bias` (a fused
    projection), through its FP8 copy when one is set."""
    bias = getattr(owner, prefix + "bias")
    out = fp8_product(owner, prefix, x, bias)
    return F.linear(x, getattr(owner, prefix + "weight"), bias) if out is None else out


def fp8_product(owner: nn.Module, prefix: str, x: torch.Tensor, bias: torch.Tensor | None
                ) -> torch.Tensor | None:
    """x · `<prefix>weight`ᵀ (+ bias) through the weight's FP8 copy; None when it has none."""
    w8 = getattr(owner, prefix + "weight_fp8", None)
    return None if w8 is None else F.linear(x, w8, bias)


def set_fp8(owner: nn.Module, on: bool, prefix: str = "") -> None:
    """Add (or drop) the FP8 copy of `owner`'s `<prefix>weight` [N, K]; a weight already
    stored in FP8 (`fp8_weights`) lends its e4m3 rows and scales as they are."""
    name = prefix + "weight_fp8"
    owner._buffers.pop(name, None)
    if not on:
        return
    weight = getattr(owner, prefix + "weight")
    w8, scale = stored_fp8(weight) or quantize_rows(weight.detach())
    owner.register_buffer(name, fp8_weight(w8, scale, weight.dtype), persistent=False)


def fp8_weight(w8: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """TorchAO's row-wise dynamic W8A8 weight over e4m3 rows `w8` [N, K] and their scales
    `scale` [N, 1] (both held, not copied): `F.linear` with it quantises the activation per
    row and multiplies in FP8, out in `dtype`."""
    from torchao.float8.inference import Float8MMConfig
    from torchao.quantization import PerRow
    from torchao.quantization.quantize_.common import KernelPreference
    from torchao.quantization.quantize_.workflows.float8.float8_tensor import (
        Float8Tensor, QuantizeTensorToFloat8Kwargs)

    torch_kernels = KernelPreference.TORCH
    act = QuantizeTensorToFloat8Kwargs(E4M3, PerRow(), kernel_preference=torch_kernels)
    return Float8Tensor(w8, scale, block_size=[1, w8.shape[1]],
                        mm_config=Float8MMConfig(use_fast_accum=True), act_quant_kwargs=act,
                        kernel_preference=torch_kernels, dtype=dtype)
