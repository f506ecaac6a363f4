"""LoRAs merged live in place: the weights' storage is written (a fused QKV's too, FP8 compute
copies refreshed, FP8-stored weights re-quantised from their exact base), a long run of scale
changes does not drift, and back at 0 the base returns bitwise."""

from __future__ import annotations

import copy

import pytest
import torch
from lora_support import peft_lora, write
from wan_support import one_thread, randomise, rel_err  # noqa: F401

from livevace.models.wan.config import TINY
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.fp8_weights import store_fp8, stored_fp8
from livevace.models.wan.linear import quantize_rows, set_fp8
from livevace.models.wan.lora import read_lora
from livevace.models.wan.lora_live import LiveLoras


@pytest.fixture(scope="module")
def base() -> WanDiT:
    return randomise(WanDiT(TINY), seed=71).requires_grad_(False)


@pytest.fixture(scope="module")
def loras(tmp_path_factory, base):
    folder = tmp_path_factory.mktemp("loras")
    first, _ = peft_lora(base, 4, 4, seed=1)
    second, _ = peft_lora(base, 8, 4, seed=2, modules=["blocks.0.self_attn.q",
                                                         "blocks.0.self_attn.k", "blocks.2.ffn.0"])
    return (read_lora(write(folder / "a.safetensors", "wan", first, 4)),
            read_lora(write(folder / "b.safetensors", "kohya", second, 4)))


def expected(base: WanDiT, loras, scales) -> dict[str, torch.Tensor]:
    """base + Σ s·ΔW from the facts, in float32."""
    out = {k: v.float().clone() for k, v in base.state_dict().items()}
    for lora, s in zip(loras, scales):
        for module, d in lora.deltas.items():
            out[f"{module}.weight"] += s * d.weight()
    return out


@pytest.mark.parametrize("base_on_device", [False, True])
def test_a_thousand_scale_changes_do_not_drift_and_zero_is_the_base_bitwise(base, loras,
                                                                           base_on_device):
    model = copy.deepcopy(base)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    storages = {k: v.data_ptr() for k, v in model.state_dict().items()}
    live = LiveLoras(model, base_on_device=base_on_device)
    live.add("a", loras[0])
    live.add("b", loras[1])
    g = torch.Generator().manual_seed(0)
    for _ in range(1000):
        scales = (torch.rand(2, generator=g) * 4 - 2).tolist()
        live.apply({"a": scales[0], "b": scales[1]})
    got = model.state_dict()
    for k, want in expected(base, loras, scales).items():
        assert rel_err(got[k], want) < 1e-6, k
    assert {k: v.data_ptr() for k, v in got.items()} == storages  # written in place
    assert live.base_bytes > 0
    live.apply({"a": 0.0, "b": 0.0})
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    kept = live.base_bytes
    assert kept > 0  # the faders may come back up: no new copy then
    live.apply({"a": 1.0})
    assert live.base_bytes == kept
    live.remove("a")
    assert 0 < live.base_bytes <= kept  # b still holds what it touches
    live.remove("b")
    assert live.base_bytes == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bf16_weights_are_rederived_every_so_often(base, loras):
    """Between re-derivations each change rounds once (a few bf16 steps at most); every
    `every` changes the weight is base + s·ΔW rounded once."""
    model = copy.deepcopy(base).to(torch.bfloat16)
    bf16_base = copy.deepcopy(model)
    live = LiveLoras(model, every=16)
    live.add("a", loras[0])
    g = torch.Generator().manual_seed(1)

    def worst(s: float) -> float:
        return max(rel_err(model.state_dict()[k].float(), want)
                   for k, want in expected(bf16_base, loras[:1], [s]).items())

    for i in range(1, 193):
        s = float(torch.rand(1, generator=g)) * 4 - 2
        live.apply({"a": s})
        if i == 191:
            assert worst(s) < 2 ** -6
    assert worst(s) < 2 ** -8
    live.apply({"a": 0.0})
    for k, v in model.state_dict().items():
        assert torch.equal(v, bf16_base.state_dict()[k]), k


def test_a_fused_qkv_and_fp8_compute_copies_are_written(base, loras):
    model = copy.deepcopy(base)
    for block in model.blocks:
        block.self_attn.fuse_qkv(True)
        set_fp8(block.self_attn, True, "qkv_")
        set_fp8(block.ffn[0], True)
    live = LiveLoras(model)
    live.add("b", loras[1])
    live.apply({"b": 0.75})
    want = expected(base, loras[1:], [0.75])
    attn = model.blocks[0].self_attn
    fused = torch.cat([want[f"blocks.0.self_attn.{p}.weight"] for p in "qkv"])
    assert rel_err(attn.qkv_weight, fused) < 1e-6
    data, scale = quantize_rows(attn.qkv_weight)  # the copy follows the merged weight
    copy_data, copy_scale = stored_fp8(attn.qkv_weight_fp8)
    assert torch.equal(copy_data, data) and torch.equal(copy_scale, scale)
    ffn = model.blocks[2].ffn[0]
    assert rel_err(ffn.weight, want["blocks.2.ffn.0.weight"]) < 1e-6
    data, scale = quantize_rows(ffn.weight)
    copy_data, copy_scale = stored_fp8(ffn.weight_fp8)
    assert torch.equal(copy_data, data) and torch.equal(copy_scale, scale)


def test_fp8_stored_weights_are_requantised_from_their_exact_base(base, loras):
    model = store_fp8(copy.deepcopy(base))
    q = model.blocks[0].self_attn.q.weight
    data, scale = (t.clone() for t in stored_fp8(q))
    live = LiveLoras(model)
    live.add("b", loras[1])
    for s in (0.3, -1.2, 0.9):
        live.apply({"b": s})
    dw = loras[1].deltas["blocks.0.self_attn.q"].weight()
    want_data, want_scale = quantize_rows(data.float() * scale + 0.9 * dw)
    got_data, got_scale = stored_fp8(model.blocks[0].self_attn.q.weight)
    assert torch.equal(got_data, want_data) and torch.equal(got_scale, want_scale)
    live.apply({"b": 0.0})
    got_data, got_scale = stored_fp8(model.blocks[0].self_attn.q.weight)
    assert torch.equal(got_data, data) and torch.equal(got_scale, scale)


@pytest.mark.gpu
def test_on_a_gpu_captured_graphs_replay_the_merged_weights_without_recapture(loras):
    """Merged in place between chunks: the graphs captured before the merge replay with the
    merged weights (as an eager model with the same merge computes), nothing is captured
    again, and the fused QKV and the FP8-free weights are what the step reads."""
    from livevace.models.wan import zoo
    from livevace.models.wan.compiled import Acceleration
    from livevace.models.wan.config import TINY_VACE
    from livevace.models.wan.recipe import LONGLIVE

    h = w = 4
    eager_model = randomise(WanDiT(TINY_VACE), seed=31).requires_grad_(False).cuda()
    graphed_model = copy.deepcopy(eager_model).accelerate(Acceleration(cuda_graph=True))
    g = torch.Generator().manual_seed(3)
    text = torch.randn(1, TINY.text_len, TINY.text_dim, generator=g).cuda()
    ctx = torch.randn(1, TINY_VACE.vace_in_channels, 3, h, w, generator=g).cuda()
    eager, graphed = (zoo.open_stream(LONGLIVE, m, h, w, 3, None, seed=2)
                      for m in (eager_model, graphed_model))
    for sampler in (eager, graphed):
        sampler.set_text(text)
    graphed.warm_up(vace=True)
    captured = graphed_model.graphs.captures
    lives = [LiveLoras(m) for m in (eager_model, graphed_model)]
    for live in lives:
        live.add("a", loras[0])
    for n, scale in enumerate((0.0, 0.5, 1.0, -1.5, 0.0, 0.0)):
        for live in lives:
            live.apply({"a": scale})
        got, want = graphed.generate_chunk(vace=ctx), eager.generate_chunk(vace=ctx)
        assert rel_err(got, want) < 1e-5, f"chunk {n}"
    assert graphed_model.graphs.captures == captured
