"""FP8 linear layers (quality-affecting option), TorchAO's row-wise dynamic W8A8: per-row e4m3
quantisation, the layer against a plain-PyTorch row-wise reference and the float matmul, which
block linears it quantises and which stay bf16, and the switch on a whole streaming model (on,
compiled, off)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from wan_speed_support import assert_same_stream, new_model, stream
from wan_support import one_thread, rel_err  # noqa: F401

from livevace.models.wan.compiled import Acceleration, compiled_phases
from livevace.models.wan.fp8_weights import stored_fp8
from livevace.models.wan.linear import E4M3_MAX, linear, quantize_rows, set_fp8


def reference_w8a8(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Row-wise dynamic W8A8 from its definition: every activation row and every weight row
    scaled by its absolute maximum onto e4m3's largest value (448), rounded to e4m3, the
    product of the rounded values in float32, then the two scales and the bias."""
    def rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = t.float().abs().amax(-1, keepdim=True).clamp(min=1e-12) / 448.0
        return (t.float() / scale).to(torch.float8_e4m3fn).float(), scale

    xq, xs = rows(x.reshape(-1, x.shape[-1]))
    wq, ws = rows(w)
    out = (xq @ wq.t()) * xs * ws.t()
    if b is not None:
        out = out + b.float()
    return out.unflatten(0, x.shape[:-1])


def quantised(model: nn.Module) -> set[str]:
    """Names of the modules holding an FP8 copy of a weight (a fused QKV: its owner + ".qkv")."""
    found = set()
    for name, module in model.named_modules():
        for buffer, _ in module.named_buffers(recurse=False):
            if buffer.endswith("weight_fp8"):
                found.add(name + (".qkv" if buffer.startswith("qkv_") else ""))
    return found


def block_names(model: nn.Module, per_block: set[str]) -> set[str]:
    blocks = [f"blocks.{i}" for i in range(len(model.blocks))]
    blocks += [f"vace_blocks.{i}" for i in range(len(model.vace_blocks))]
    return {f"{b}.{n}" for b in blocks for n in per_block}


def test_row_quantisation_keeps_each_row_to_e4m3_precision():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 96, generator=g) * torch.logspace(-3, 3, 64)[:, None]  # 6 decades
    x8, scale = quantize_rows(x)
    assert x8.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert torch.allclose(x8.float().abs().amax(-1), torch.full((64,), E4M3_MAX))
    back = x8.float() * scale
    # 3 mantissa bits: at most half a step, 2^-4 relative, for values above e4m3's normal range
    big = x.abs() > scale * 2**-6
    assert ((back - x).abs()[big] <= x.abs()[big] * 2**-4 + 1e-12).all()


def test_fp8_linear_is_the_w8a8_reference_on_rows_of_any_scale():
    g = torch.Generator().manual_seed(3)
    layer = nn.Linear(96, 80).requires_grad_(False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(80, 96, generator=g) * torch.logspace(-2, 1, 80)[:, None])
    x = torch.randn(2, 40, 96, generator=g) * torch.logspace(-3, 2, 40)[:, None]
    set_fp8(layer, True)
    got = linear(layer, x)
    assert got.shape == (2, 40, 80) and got.dtype == x.dtype
    want, exact = reference_w8a8(x, layer.weight, layer.bias), F.linear(x, layer.weight, layer.bias)
    for row in range(40):  # every token, however small its values
        assert rel_err(got[:, row], want[:, row]) < 1e-5
        assert 1e-4 < rel_err(got[:, row], exact[:, row]) < 0.05  # really quantised, still close
    with torch.no_grad():  # an in-place write of the scales (a live LoRA merge) reaches it
        stored_fp8(layer.weight_fp8)[1].mul_(2)
    assert rel_err(linear(layer, x) - layer.bias, 2 * (got - layer.bias)) < 1e-6


def test_fp8_quantises_the_block_linears_and_keeps_the_output_projections_bf16():
    model = new_model()
    model.accelerate(Acceleration(fp8=True))
    fused = {"self_attn.qkv", "cross_attn.q", "ffn.0", "ffn.2"}
    assert quantised(model) == block_names(model, fused)  # not o, VACE projections, head
    model.accelerate(Acceleration(fp8=True, fp8_bf16=()))
    assert quantised(model) == block_names(model, fused | {"self_attn.o", "cross_attn.o"})
    assert model.acceleration.label == "eager+fp8all"
    model.accelerate(Acceleration(fp8=True, fuse_qkv=False, fp8_bf16=("self_attn.k", "ffn.2")))
    assert quantised(model) == block_names(
        model, {"self_attn.q", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.o",
                "ffn.0"})
    assert model.acceleration.label == "eager+fp8-custom+unfused"
    model.accelerate(Acceleration())
    assert not quantised(model)


def test_a_misspelt_bf16_layer_is_refused():
    with pytest.raises(ValueError, match="no block linear named ffn.1"):
        new_model().accelerate(Acceleration(fp8=True, fp8_bf16=("ffn.1",)))


def test_fp8_model_is_close_switchable_and_compiles_to_the_same():
    model = new_model()
    model.accelerate(Acceleration())
    exact = stream(model, chunks=3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.accelerate(Acceleration(fp8=True))
    assert model.acceleration.label == "eager+fp8"
    attn = model.blocks[0].self_attn
    data, scale = stored_fp8(attn.qkv_weight_fp8)
    assert data.dtype == torch.float8_e4m3fn and data.shape == attn.qkv_weight.shape
    assert scale.shape == (data.shape[0], 1)
    approx = stream(model, chunks=3)
    errors = [rel_err(a, b) for a, b in zip(approx[0], exact[0])]
    assert all(1e-4 < e < 0.1 for e in errors), errors  # really quantised, still close
    model.phases = compiled_phases("default", backend="aot_eager")
    assert_same_stream(stream(model, chunks=3), approx, 1e-5)
    model.accelerate(Acceleration())
    assert not any("fp8" in name for name, _ in model.named_buffers())
    assert model.state_dict().keys() == state.keys()
    assert_same_stream(stream(model, chunks=3), exact, 1e-6)


@pytest.mark.gpu
def test_fp8_weight_is_what_its_config_makes_on_a_gpu():
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig, PerRow,
                                      quantize_)

    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 needs compute capability 8.9+")
    g = torch.Generator().manual_seed(5)
    ours = nn.Linear(1536, 8960).cuda().bfloat16()
    theirs = nn.Linear(1536, 8960).cuda().bfloat16()
    theirs.load_state_dict(ours.state_dict())
    quantize_(theirs, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    set_fp8(ours, True)
    x = (torch.randn(4680, 1536, generator=g) * 3).cuda().bfloat16()
    got, want = linear(ours, x), theirs(x)
    assert rel_err(got, want) < 1e-2  # the same maths; bf16 out and kernel choice aside
    assert rel_err(got, reference_w8a8(x, ours.weight, ours.bias)) < 1e-2
    compiled = torch.compile(lambda t: linear(ours, F.silu(t)), fullgraph=True)
    assert rel_err(compiled(x), linear(ours, F.silu(x))) < 1e-2
