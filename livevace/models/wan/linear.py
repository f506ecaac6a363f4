"""Linear layers of the fast path: FP8 copies (an option) and GEMM epilogues.

**FP8 (e4m3), off by default, quality-affecting.** Scaling is rowwise on both sides: each
weight row (output feature) has its own scale, set once when FP8 is switched on, and each
activation row (token) gets its own scale per call, taken from its absolute maximum.
`torch._scaled_mm` multiplies the e4m3 operands on the FP8 tensor cores and applies both
scales in its epilogue (bf16 out), with Hopper's fast accumulation (no periodic promotion of
the partial sums: TorchAO's inference default, so both paths below do the same maths). Under
torch.compile the activation quantisation fuses into the kernel that produced the activation
(norm, modulation, GELU). The FP8 copy lives beside the bf16 weight as non-persistent buffers
`<prefix>weight_fp8` and `<prefix>scale_fp8` of the owning module, so checkpoints and
`state_dict` never see it and switching FP8 off is free.

Two implementations of the same maths (`Fp8Kernels`), so one run can compare them:
- "rowwise": the quantisation and `_scaled_mm` call written here (`fp8_linear`);
- "torchao": TorchAO's row-wise dynamic W8A8 (`Float8Tensor` with activation quantisation,
  the tensor behind `Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())`), held
  as a third buffer `<prefix>weight_ao` whose e4m3 rows and scales ARE the two buffers above
  (views, no copy): an in-place refresh of those (a live LoRA merge) reaches it too. Its
  quantisation is plain PyTorch (`KernelPreference.TORCH`), which inductor fuses into the
  producer as above; built directly rather than by `quantize_`, whose hardware check refuses
  a CPU although every op it needs runs there (the tests).

**GELU in the GEMM epilogue.** The FFN's first layer and its tanh-GELU are one cuBLASLt call
(`torch._addmm_activation`), which torch.compile keeps as it is: the [tokens, ffn_dim]
activation is written once instead of written, read and written again.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from livevace.models.wan.fp8_weights import stored_fp8

Fp8Kernels = Literal["rowwise", "torchao"]
FP8_KERNELS: tuple[Fp8Kernels, ...] = ("rowwise", "torchao")

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
"""Largest finite e4m3 value: a row's absolute maximum is mapped onto it."""


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] → (e4m3 [M, K], float32 scale [M, 1]) with x ≈ e4m3 · scale."""
    xf = x.float()
    scale = xf.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
    return (xf / scale).to(E4M3), scale


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
               bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] · weightᵀ (+ bias) with e4m3 `weight` [N, K] and its scale [1, N]; out in x's
    dtype."""
    lead, k = x.shape[:-1], x.shape[-1]
    x8, x_scale = quantize_rows(x.reshape(-1, k))
    out = torch._scaled_mm(x8, weight.t(), scale_a=x_scale, scale_b=scale, out_dtype=x.dtype,
                           use_fast_accum=True)
    if bias is not None:
        out = out + bias
    return out.unflatten(0, lead)


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
    """x · `<prefix>weight`ᵀ (+ bias) through the weight's FP8 copy, by the kernels it was
    made for; None when it has none."""
    ao = getattr(owner, prefix + "weight_ao", None)
    if ao is not None:
        return F.linear(x, ao, bias)
    w8 = getattr(owner, prefix + "weight_fp8", None)
    if w8 is None:
        return None
    return fp8_linear(x, w8, getattr(owner, prefix + "scale_fp8"), bias)


def set_fp8(owner: nn.Module, on: bool, prefix: str = "", kernels: Fp8Kernels = "rowwise"
            ) -> None:
    """Add (or drop) the FP8 copy of `owner`'s `<prefix>weight` [N, K] for `kernels`; a
    weight already stored in FP8 (`fp8_weights`) lends its e4m3 rows and scales as they are."""
    names = (prefix + "weight_fp8", prefix + "scale_fp8", prefix + "weight_ao")
    for name in names:
        owner._buffers.pop(name, None)
    if not on:
        return
    weight = getattr(owner, prefix + "weight")
    w8, scale = stored_fp8(weight) or quantize_rows(weight.detach())
    owner.register_buffer(names[0], w8, persistent=False)
    owner.register_buffer(names[1], scale.t().contiguous(), persistent=False)
    if kernels == "torchao":
        owner.register_buffer(names[2], torchao_weight(w8, owner._buffers[names[1]], weight.dtype),
                              persistent=False)


def torchao_weight(w8: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """TorchAO's row-wise dynamic W8A8 weight over e4m3 rows `w8` [N, K] and their scales
    `scale` [1, N] (shared, not copied): `F.linear` with it quantises the activation per row
    and multiplies in FP8, out in `dtype`."""
    from torchao.float8.inference import Float8MMConfig
    from torchao.quantization import PerRow
    from torchao.quantization.quantize_.common import KernelPreference
    from torchao.quantization.quantize_.workflows.float8.float8_tensor import (
        Float8Tensor, QuantizeTensorToFloat8Kwargs)

    torch_kernels = KernelPreference.TORCH
    act = QuantizeTensorToFloat8Kwargs(E4M3, PerRow(), kernel_preference=torch_kernels)
    return Float8Tensor(w8, scale.t(), block_size=[1, w8.shape[1]],
                        mm_config=Float8MMConfig(use_fast_accum=True), act_quant_kwargs=act,
                        kernel_preference=torch_kernels, dtype=dtype)
