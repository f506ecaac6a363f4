"""FP8 through TorchAO's row-wise dynamic W8A8 (`Acceleration(fp8=True, fp8_kernels="torchao")`):
which block linears it quantises and which stay bf16, its numerics against a plain-PyTorch
row-wise reference, the same stream as the hand-written path, eager and compiled."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from wan_speed_support import assert_same_stream, new_model, stream
from wan_support import one_thread, rel_err  # noqa: F401

from livevace.models.wan.compiled import Acceleration, compiled_phases
from livevace.models.wan.linear import linear, set_fp8

TORCHAO = Acceleration(fp8=True, fp8_kernels="torchao")


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
    """Names of the modules holding a TorchAO FP8 weight (a fused QKV: its owner + ".qkv")."""
    found = set()
    for name, module in model.named_modules():
        for buffer, _ in module.named_buffers(recurse=False):
            if buffer.endswith("weight_ao"):
                found.add(name + (".qkv" if buffer.startswith("qkv_") else ""))
    return found


def block_names(model: nn.Module, per_block: set[str]) -> set[str]:
    blocks = [f"blocks.{i}" for i in range(len(model.blocks))]
    blocks += [f"vace_blocks.{i}" for i in range(len(model.vace_blocks))]
    return {f"{b}.{n}" for b in blocks for n in per_block}


def test_torchao_quantises_the_block_linears_and_keeps_the_output_projections_bf16():
    model = new_model()
    model.accelerate(TORCHAO)
    fused = {"self_attn.qkv", "cross_attn.q", "ffn.0", "ffn.2"}
    assert quantised(model) == block_names(model, fused)  # not o, VACE projections, head
    model.accelerate(Acceleration(fp8=True, fp8_kernels="torchao", fp8_bf16=()))
    assert quantised(model) == block_names(model, fused | {"self_attn.o", "cross_attn.o"})
    model.accelerate(Acceleration(fp8=True, fp8_kernels="torchao", fuse_qkv=False,
                                  fp8_bf16=("self_attn.k", "ffn.2")))
    assert quantised(model) == block_names(
        model, {"self_attn.q", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.o",
                "ffn.0"})
    assert model.acceleration.label == "eager+fp8ao-custom+unfused"
    model.accelerate(Acceleration(fp8=True))  # the hand-written path honours the same set
    assert not quantised(model)
    assert model.blocks[0].ffn[0].weight_fp8.dtype == torch.float8_e4m3fn
    assert getattr(model.blocks[0].self_attn.o, "weight_fp8", None) is None
    model.accelerate(Acceleration())
    assert not any("fp8" in n or "_ao" in n for n, _ in model.named_buffers())


def test_a_misspelt_bf16_layer_is_refused():
    with pytest.raises(ValueError, match="no block linear named ffn.1"):
        new_model().accelerate(Acceleration(fp8=True, fp8_bf16=("ffn.1",)))


def test_torchao_linear_matches_the_rowwise_reference_and_shares_its_rows():
    g = torch.Generator().manual_seed(3)
    layer = nn.Linear(96, 80).requires_grad_(False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(80, 96, generator=g) * torch.logspace(-2, 1, 80)[:, None])
    x = torch.randn(2, 40, 96, generator=g) * torch.logspace(-3, 2, 40)[:, None]
    set_fp8(layer, True, kernels="torchao")
    assert layer.weight_ao.qdata.data_ptr() == layer.weight_fp8.data_ptr()
    got = linear(layer, x)
    assert got.dtype == x.dtype
    assert rel_err(got, reference_w8a8(x, layer.weight, layer.bias)) < 1e-5
    for row in range(40):  # every token, however small its values
        assert rel_err(got[:, row], reference_w8a8(x, layer.weight, layer.bias)[:, row]) < 1e-5
    with torch.no_grad():  # an in-place refresh of the rows (a live LoRA merge) reaches it
        layer.scale_fp8.mul_(2)
    assert rel_err(linear(layer, x) - layer.bias, 2 * (got - layer.bias)) < 1e-6


def test_torchao_stream_is_the_rowwise_stream_eager_and_compiled():
    model = new_model()
    model.accelerate(Acceleration(fp8=True))
    rowwise = stream(model, chunks=3)
    model.accelerate(TORCHAO)
    ao = stream(model, chunks=3)
    assert_same_stream(ao, rowwise, 1e-5)
    model.phases = compiled_phases("default", backend="aot_eager")
    assert_same_stream(stream(model, chunks=3), ao, 1e-5)


@pytest.mark.gpu
def test_torchao_weight_is_what_its_config_makes_on_a_gpu():
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig, PerRow,
                                      quantize_)

    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 needs compute capability 8.9+")
    g = torch.Generator().manual_seed(5)
    ours = nn.Linear(1536, 8960).cuda().bfloat16()
    theirs = nn.Linear(1536, 8960).cuda().bfloat16()
    theirs.load_state_dict(ours.state_dict())
    quantize_(theirs, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    set_fp8(ours, True, kernels="torchao")
    x = (torch.randn(4680, 1536, generator=g) * 3).cuda().bfloat16()
    got, want = linear(ours, x), theirs(x)
    assert rel_err(got, want) < 1e-2  # the same maths; bf16 out and kernel choice aside
    assert rel_err(got, reference_w8a8(x, ours.weight, ours.bias)) < 1e-2
    compiled = torch.compile(lambda t: linear(ours, F.silu(t)), fullgraph=True)
    assert rel_err(compiled(x), linear(ours, F.silu(x))) < 1e-2
