"""FP8 weight storage (quality-affecting option): what is stored (each row of every block
linear rounded to e4m3 under its absolute-maximum scale, checked against a plain-PyTorch
reference), that the model then computes with exactly those rounded weights, the error it
costs, one copy under a fused QKV, the FP8 compute path taking the stored rows as they are,
loading straight into FP8, and on a GPU the 14B widths compiled and captured."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from wan_speed_support import assert_same_stream, new_model, stream
from wan_support import one_thread, rel_err  # noqa: F401

from livevace.models.wan.compiled import Acceleration, compiled_phases
from livevace.models.wan.config import TINY_VACE, WAN21_VACE_14B
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.fp8_weights import block_linears, store_fp8, stored_fp8
from livevace.models.weights import load_dit

E4M3_HALF_STEP = 2.0 ** -4
"""e4m3 keeps 3 mantissa bits: rounding moves a normal value by at most 2^-4 of itself."""


def reference_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The storage from the facts: per output row, scale = max |w| / 448 (e4m3's largest
    finite value), data = w / scale rounded to the nearest e4m3."""
    scale = w.float().abs().amax(dim=1, keepdim=True) / 448.0
    return (w.float() / scale).to(torch.float8_e4m3fn), scale


def rounded_model() -> WanDiT:
    """`new_model()` with the reference's rounded weights in its block linears, plain."""
    copy = new_model()
    for layer in block_linears(copy):
        data, scale = reference_rows(layer.weight)
        layer.weight.data = data.float() * scale
    return copy


def inputs(cfg=TINY_VACE, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 2, 4, 6, generator=g)
    t = torch.tensor([[700.0, 700.0]])
    text = torch.randn(1, 8, cfg.text_dim, generator=g)
    vace = torch.randn(1, cfg.vace_in_channels, 2, 4, 6, generator=g)
    return [v.to(device, dtype if v.dtype.is_floating_point else v.dtype)
            for v in (x, t, text, vace)]


def test_each_row_is_rounded_to_e4m3_under_its_own_scale():
    model = new_model()
    plain = {id(layer): layer.weight.detach().clone() for layer in block_linears(model)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    store_fp8(model)
    layers = block_linears(model)
    assert len(layers) == TINY_VACE.num_layers * 10 + len(TINY_VACE.vace_layers) * 11 + 1
    for layer in layers:
        data, scale = stored_fp8(layer.weight)
        want_data, want_scale = reference_rows(plain[id(layer)])
        assert data.dtype == torch.float8_e4m3fn and data.element_size() == 1
        assert torch.equal(data.view(torch.uint8), want_data.view(torch.uint8))
        assert torch.allclose(scale, want_scale, rtol=1e-6, atol=0)
        back = data.float() * scale
        w = plain[id(layer)]
        big = w.abs() > scale * 2**-6  # e4m3's normal range
        assert ((back - w).abs()[big] <= w.abs()[big] * E4M3_HALF_STEP + 1e-12).all()
    for name, p in model.named_parameters():  # embeddings, time path, norms, head: as they were
        if stored_fp8(p) is None:
            assert torch.equal(p, before[name]), name
    assert stored_fp8(model.head.head.weight) is None
    assert stored_fp8(model.text_embedding[0].weight) is None


def test_a_stored_model_computes_with_the_rounded_weights():
    model = store_fp8(new_model())
    model.accelerate(Acceleration())
    want = rounded_model().accelerate(Acceleration())
    assert_same_stream(stream(model), stream(want), 1e-5)


def test_the_error_it_costs_stays_within_e4m3_precision():
    """A whole forward (every block, VACE included) against the unrounded model: the output
    moves by less than one e4m3 half step (the rounding of independent weights averages out in
    every dot product) and by more than float32 rounding (it really is quantised)."""
    x, t, text, vace = inputs()
    exact = new_model().forward_full(x, t, text, vace=vace)
    approx = store_fp8(new_model()).forward_full(x, t, text, vace=vace)
    assert 1e-3 < rel_err(approx, exact) < E4M3_HALF_STEP


def test_a_fused_qkv_keeps_one_copy_and_compiles_to_the_same():
    model = new_model().accelerate(Acceleration())  # fused first, then stored
    store_fp8(model)
    attn = model.blocks[0].self_attn
    fused = attn.qkv_weight
    assert stored_fp8(fused) is not None
    for part in (attn.q, attn.k, attn.v):
        data = stored_fp8(part.weight)[0]
        assert data.untyped_storage().data_ptr() == stored_fp8(fused)[0].untyped_storage().data_ptr()
    eager = stream(model)
    model.phases = compiled_phases("default", backend="aot_eager")
    assert_same_stream(stream(model), eager, 1e-5)
    model.accelerate(Acceleration(fuse_qkv=False))
    assert attn.qkv_weight is None and stored_fp8(attn.q.weight) is not None
    assert_same_stream(stream(model), eager, 1e-5)


def test_fp8_compute_takes_the_stored_rows_as_they_are():
    stored = store_fp8(new_model()).accelerate(Acceleration(fp8=True))
    attn = stored.blocks[0].self_attn
    for compute, stored_part in zip(stored_fp8(attn.qkv_weight_fp8), stored_fp8(attn.qkv_weight)):
        assert compute.data_ptr() == stored_part.data_ptr()
    ffn = stored.blocks[1].ffn[2]
    for compute, stored_part in zip(stored_fp8(ffn.weight_fp8), stored_fp8(ffn.weight)):
        assert compute.data_ptr() == stored_part.data_ptr()
    # the compute path's own copies of the rounded weights (re-rounding them changes nothing)
    copies = rounded_model().accelerate(Acceleration(fp8=True))
    assert_same_stream(stream(stored), stream(copies), 1e-6)


def test_load_dit_stores_fp8_on_the_way_in(tmp_path):
    path = tmp_path / "generator.pt"
    torch.save({"generator": new_model().state_dict()}, path)
    loaded = load_dit(path, cfg=TINY_VACE, dtype=torch.float32, fp8_weights=True)
    want = store_fp8(new_model())
    for got_layer, want_layer in zip(block_linears(loaded), block_linears(want)):
        assert torch.equal(stored_fp8(got_layer.weight)[0].view(torch.uint8),
                           stored_fp8(want_layer.weight)[0].view(torch.uint8))
    assert stored_fp8(load_dit(path, cfg=TINY_VACE, dtype=torch.float32).blocks[0].ffn[0]
                      .weight) is None


def stored_bytes(model: nn.Module) -> int:
    total = 0
    for layer in block_linears(model):
        parts = stored_fp8(layer.weight)
        total += sum(p.numel() * p.element_size() for p in parts) if parts else \
            layer.weight.numel() * layer.weight.element_size()
    return total


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_14b_widths_on_a_gpu_half_the_memory_same_picture_compiled_and_captured():
    """Two main layers and one VACE block at Wan2.1-14B's widths in bf16: FP8 storage halves
    the block weights, and the compiled, graph-captured stream stays within e4m3 precision of
    the bf16 one (with and without the FP8 compute path on top)."""
    import dataclasses

    from livevace.models.wan.kv_cache import CacheLayout
    from livevace.models.wan.sampler import StreamSampler

    cfg = dataclasses.replace(WAN21_VACE_14B, name="14b-slice", num_layers=2, vace_layers=(0,))
    torch.manual_seed(0)

    def make() -> WanDiT:
        with torch.device("cuda"):
            model = WanDiT(cfg)
        for p in model.parameters():
            p.data.normal_(0, 0.02)
        return model.for_inference(torch.bfloat16)

    def run(model: WanDiT) -> torch.Tensor:
        layout = CacheLayout(height=30, width=52, window=6, sink=3, chunk=3)
        sampler = StreamSampler(model, model.new_cache(layout), steps=(1000, 500), seed=1)
        g = torch.Generator(device="cuda").manual_seed(2)
        sampler.set_text(torch.randn(1, 64, cfg.text_dim, device="cuda", generator=g))
        ctx = torch.randn(1, 96, 3, 30, 52, device="cuda", generator=g)
        sampler.warm_up(vace=True)
        return torch.cat([sampler.generate_chunk(vace=ctx) for _ in range(3)])

    plain = make()
    exact = run(plain.accelerate(Acceleration(compile="default", cuda_graph=True)))
    bf16_bytes = stored_bytes(plain)
    stored = make()
    stored.load_state_dict(plain.state_dict())
    store_fp8(stored)
    assert stored_bytes(stored) < 0.51 * bf16_bytes
    for fp8_compute in (False, True):
        stored.accelerate(Acceleration(compile="default", cuda_graph=True, fp8=fp8_compute))
        assert 1e-4 < rel_err(run(stored), exact) < E4M3_HALF_STEP
