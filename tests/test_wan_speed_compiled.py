"""The fast path computes what the eager step computes: fused QKV, compiled block phases,
maskless prefix attention while the window fills, and (GPU) CUDA-graph replay with its cache
writes. Everything streams a tiny VACE model chunk by chunk through `StreamSampler`, past the
point where the ring wraps, and compares every chunk and the final cache with eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters
from wan_speed_support import LAYOUT, assert_same_stream, new_model, stream
from wan_support import one_thread, rel_err  # noqa: F401

from livevace.models.wan.compiled import Acceleration, compiled_phases
from livevace.models.wan.config import TINY_VACE
from livevace.models.wan.linear import linear_gelu
from livevace.models.wan.sampler import StreamSampler


@pytest.fixture(scope="module")
def eager_stream():
    model = new_model()
    model.accelerate(Acceleration(fuse_qkv=False))
    return stream(model)


def test_fused_qkv_shares_storage_and_keeps_the_checkpoint_layout(eager_stream):
    model = new_model()
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    model.accelerate(Acceleration())
    attn = model.blocks[1].self_attn
    assert attn.q.weight.data_ptr() == attn.qkv_weight.data_ptr()
    assert attn.v.bias.data_ptr() == attn.qkv_bias[2 * TINY_VACE.dim:].data_ptr()
    state = model.state_dict()
    assert state.keys() == keys.keys() and all(torch.equal(state[k], keys[k]) for k in keys)
    assert_same_stream(stream(model), eager_stream, 1e-5)


def test_compiled_phases_equal_eager_with_one_graph_per_phase_and_block_type(eager_stream):
    """aot_eager traces exactly what inductor compiles (fullgraph: no breaks, no host syncs)."""
    model = new_model()
    model.accelerate(Acceleration())
    model.phases = compiled_phases("default", backend="aot_eager")
    before = counters["stats"]["unique_graphs"]
    assert_same_stream(stream(model), eager_stream, 1e-5)
    # self_in, cross_in, ffn_out for WanBlock and for VaceBlock, and the main blocks' ffn_out
    # that adds a VACE hint; nothing per layer or chunk
    assert counters["stats"]["unique_graphs"] - before == 7


@pytest.mark.slow
def test_inductor_compiled_stream_equals_eager(eager_stream):
    """The real compiler (C++ kernels on the CPU, Triton on a GPU) on the same stream."""
    model = new_model()
    model.accelerate(Acceleration(compile="default"))
    assert_same_stream(stream(model), eager_stream, 1e-4)


def test_a_filling_window_attends_its_prefix_without_a_mask(eager_stream):
    """A fresh stream fills slots in order, so each chunk's visible slots are a prefix: the
    maskless slice computes what the masked full buffer computes. A recache over the wrapped
    ring is not a prefix and keeps the mask."""
    model = new_model()
    sampler = StreamSampler(model, model.new_cache(LAYOUT), steps=(1000, 500), seed=9)
    sampler.set_text(torch.randn(1, TINY_VACE.text_len, TINY_VACE.text_dim))
    cache, prefixes = sampler.cache, []
    x = torch.randn(1, 16, 2, LAYOUT.height, LAYOUT.width)
    t = torch.full((1, 2), 700.0)
    for start in range(0, 8, 2):  # the ring has wrapped by half
        cache.begin_chunk(start)
        prefixes.append(cache.visible_prefix)
        with torch.no_grad():
            k_before = cache.k.clone()
            fast = model(x, t, cache)
            cache.k.copy_(k_before)
            cache.visible_prefix = None  # force the masked path over the whole buffer
            masked = model(x, t, cache)
        assert rel_err(fast, masked) < 1e-6, f"chunk at {start}"
        sampler._remember(range(start, start + 2), x, None)
    assert prefixes == [2, 4, 6, 6]
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a: seen.append(a[2].visible_prefix))
    try:
        sampler.recache()
    finally:
        hook.remove()
    assert seen == [None, 6]  # frames 4, 5 in slots 4, 5 beside the sink: a gap, so the mask


@pytest.mark.gpu
def test_text_kv_graph_replays_the_eager_rebuild_for_any_prompt_length():
    """A prompt fade rebuilds the text K/V every chunk: one graph per cache, replayed for
    prompts of any token count, writes what the eager rebuild writes."""
    model = new_model("cuda", torch.bfloat16)
    model.accelerate(Acceleration(cuda_graph=True))
    fast, eager = model.new_cache(LAYOUT), model.new_cache(LAYOUT)
    g = torch.Generator().manual_seed(3)
    for n in (7, TINY_VACE.text_len, 1):
        text = torch.randn(1, n, TINY_VACE.text_dim, generator=g).cuda()
        model.set_text(fast, text)
        model.write_text(eager, model.pad_text(text))
        assert torch.equal(fast.text_k, eager.text_k) and torch.equal(fast.text_v, eager.text_v)
        assert fast.text_k.abs().sum() > 0
    assert model.graphs is not None and model.graphs.text_captures == 1


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager_and_writes_the_cache():
    eager = new_model("cuda", torch.bfloat16)
    want = stream(eager, "cuda")
    fast = new_model("cuda", torch.bfloat16)
    fast.accelerate(Acceleration(cuda_graph=True))
    got = stream(fast, "cuda", warm_up=True)
    assert fast.graphs is not None and fast.graphs.captures == 6  # prefix 2, 4, 6 x VACE on/off
    assert_same_stream(got, want, 2e-2)  # bf16; fused QKV reorders nothing but tiles


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_gelu_epilogue_is_the_tanh_gelu(dtype, tol):
    """The FFN's GEMM + GELU epilogue computes Wan's tanh GELU (not the exact erf one)."""
    layer = torch.nn.Linear(256, 512).cuda().to(dtype)
    x = torch.randn(3, 200, 256, device="cuda", dtype=dtype)
    with torch.no_grad():
        got, pre = linear_gelu(layer, x).float(), layer(x).float()
    tanh, erf = F.gelu(pre, approximate="tanh"), F.gelu(pre)
    assert rel_err(got, tanh) < tol
    if dtype == torch.float32:
        assert rel_err(got, erf) > 10 * rel_err(got, tanh)
