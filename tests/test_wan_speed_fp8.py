"""FP8 linear layers (quality-affecting option): rowwise e4m3 quantisation, `_scaled_mm`
against the float matmul, and the switch on a whole streaming model (on, compiled, off)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from wan_speed_support import assert_same_stream, new_model, stream
from wan_support import one_thread, rel_err  # noqa: F401

from livevace.models.wan.compiled import Acceleration, compiled_phases
from livevace.models.wan.linear import E4M3_MAX, fp8_linear, quantize_rows


def test_rowwise_quantisation_keeps_each_row_to_e4m3_precision():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 96, generator=g) * torch.logspace(-3, 3, 64)[:, None]  # 6 decades
    x8, scale = quantize_rows(x)
    assert x8.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert torch.allclose(x8.float().abs().amax(-1), torch.full((64,), E4M3_MAX))
    back = x8.float() * scale
    # 3 mantissa bits: at most half a step, 2^-4 relative, for values above e4m3's normal range
    big = x.abs() > scale * 2**-6
    assert ((back - x).abs()[big] <= x.abs()[big] * 2**-4 + 1e-12).all()


def test_fp8_linear_matches_the_float_matmul_on_rows_of_any_scale():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 40, 96, generator=g) * torch.logspace(-2, 2, 40)[:, None]
    w = torch.randn(80, 96, generator=g) / 96**0.5
    b = torch.randn(80, generator=g)
    w8, w_scale = quantize_rows(w)
    got = fp8_linear(x, w8, w_scale.t().contiguous(), b)
    want = F.linear(x, w, b)
    assert got.shape == want.shape and got.dtype == x.dtype
    for row in range(40):  # every token to a few percent, however small its values
        assert rel_err(got[:, row], want[:, row]) < 0.05


def test_fp8_model_is_close_switchable_and_compiles_to_the_same():
    model = new_model()
    model.accelerate(Acceleration())
    exact = stream(model, chunks=3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.accelerate(Acceleration(fp8=True))
    assert model.blocks[0].self_attn.qkv_weight_fp8.dtype == torch.float8_e4m3fn
    assert model.blocks[0].ffn[2].weight_fp8.shape == model.blocks[0].ffn[2].weight.shape
    approx = stream(model, chunks=3)
    errors = [rel_err(a, b) for a, b in zip(approx[0], exact[0])]
    assert all(1e-4 < e < 0.1 for e in errors), errors  # really quantised, still close
    model.phases = compiled_phases("default", backend="aot_eager")
    assert_same_stream(stream(model, chunks=3), approx, 1e-5)
    model.accelerate(Acceleration())
    assert not any("fp8" in name for name, _ in model.named_buffers())
    assert model.state_dict().keys() == state.keys()
    assert_same_stream(stream(model, chunks=3), exact, 1e-6)
