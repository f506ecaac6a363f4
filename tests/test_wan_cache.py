"""Chunk-by-chunk streaming with the ring KV cache equals one masked forward of the sequence.

The reference is diffusers over the whole sequence with LongLive's streaming attention as a
mask (block-causal, a window of W frames of which the first S are a sink) and per-token
timesteps: past frames clean (t = 0, as the refinement pass writes them), the chunk under
test at its denoising timestep.
"""

from __future__ import annotations

import pytest
import torch
from wan_support import (chunk_mask, mask_self_attention, one_thread, ours_from, reference,  # noqa: F401
                         rel_err, wan_timestep_precision, window_mask)

from livevace.models.wan.config import TINY, TINY_VACE
from livevace.models.wan.kv_cache import CacheLayout

H, W = 4, 6
TOKENS = (H // 2) * (W // 2)
LAYOUT = CacheLayout(height=H, width=W, window=6, sink=2, chunk=2)
FRAMES = 14  # 7 chunks: the ring (4 slots) wraps twice past the sink


def stream_inputs(cfg, frames=FRAMES, seed=0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, cfg.in_channels, frames, H, W, generator=g)
    ctx = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g)
    control = torch.randn(1, cfg.vace_in_channels, frames, H, W, generator=g)
    return latents, ctx, control


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
def test_generation_and_cache_writes_equal_masked_full_sequence(tmp_path, impl):
    ref = wan_timestep_precision(reference(TINY, seed=7))
    ours = ours_from(ref, TINY, tmp_path)
    ours.attn_impl = impl
    mask_self_attention(ref.blocks, window_mask(FRAMES, 2, 6, 2), TOKENS)
    latents, ctx, _ = stream_inputs(TINY)
    noisy = torch.randn_like(latents)
    cache = ours.new_cache(LAYOUT)
    ours.set_text(cache, ctx)
    step_t = torch.tensor([937.5, 625.0])  # per-frame timesteps of the chunk being denoised
    for start in range(0, FRAMES, 2):
        chunk = slice(start, start + 2)
        cache.begin_chunk(start)
        with torch.no_grad():
            got = ours(noisy[:, :, chunk], step_t[None], cache)          # generation pass
            ours(latents[:, :, chunk], torch.zeros(1, 2), cache)          # t = 0 cache write
            t_ref = torch.zeros(FRAMES)
            t_ref[chunk] = step_t
            x_ref = latents.clone()
            x_ref[:, :, chunk] = noisy[:, :, chunk]
            want = ref(x_ref, t_ref.repeat_interleave(TOKENS)[None], ctx).sample
        assert rel_err(got, want[:, :, chunk]) < 1e-5, f"chunk at frame {start}"
    assert cache.full and cache.mask() is None
    assert [f for f, _ in cache.frames()] == [0, 1, 10, 11, 12, 13]


def test_vace_streaming_equals_masked_full_sequence(tmp_path):
    ref = wan_timestep_precision(reference(TINY_VACE, seed=8))
    ours = ours_from(ref, TINY_VACE, tmp_path)
    mask_self_attention(ref.blocks, window_mask(FRAMES, 2, 6, 2), TOKENS)
    mask_self_attention(ref.vace_blocks, chunk_mask(FRAMES, 2), TOKENS)
    latents, ctx, control = stream_inputs(TINY_VACE, seed=1)
    scale = torch.tensor([0.6, 1.4])
    cache = ours.new_cache(LAYOUT)
    ours.set_text(cache, ctx)
    outs = []
    with torch.no_grad():
        for start in range(0, FRAMES, 2):
            cache.begin_chunk(start)
            part = slice(start, start + 2)
            outs.append(ours(latents[:, :, part], torch.zeros(1, 2), cache,
                             vace=control[:, :, part], hint_scale=scale))
        want = ref(latents, torch.zeros(1), ctx, control_hidden_states=control,
                   control_hidden_states_scale=scale).sample
    assert rel_err(torch.cat(outs, dim=2), want) < 1e-5


def streamed(model, cfg, frames, seed):
    """A cache holding the chunks before the last two frames, that chunk planned next."""
    latents, ctx, control = stream_inputs(cfg, frames=frames, seed=seed)
    cache = model.new_cache(LAYOUT)
    model.set_text(cache, ctx)
    with torch.no_grad():
        for start in range(0, frames - 2, 2):
            cache.begin_chunk(start)
            model(latents[:, :, start:start + 2], torch.zeros(1, 2), cache)
    cache.begin_chunk(frames - 2)
    return cache, latents[:, :, -2:], control[:, :, -2:]


def test_forward_without_cache_write_leaves_the_cache_alone(tmp_path):
    ours = ours_from(reference(TINY, seed=9), TINY, tmp_path)
    cache, last, _ = streamed(ours, TINY, frames=10, seed=2)  # the last chunk evicts 2 and 3
    with torch.no_grad():
        before = cache.k.clone(), cache.v.clone()
        peek = ours(last, torch.full((1, 2), 500.0), cache, write_cache=False)
        assert torch.equal(cache.k, before[0]) and torch.equal(cache.v, before[1])
        real = ours(last, torch.full((1, 2), 500.0), cache)
    assert rel_err(peek, real) < 1e-6
    assert not torch.equal(cache.k, before[0])


def test_layout_slots_and_window_semantics():
    lay = CacheLayout(height=2, width=2, window=12, sink=3, chunk=3)
    assert [lay.slot(f) for f in range(3)] == [0, 1, 2]
    assert [lay.slot(f) for f in (3, 11, 12, 20, 21)] == [3, 11, 3, 11, 3]
    assert lay.sink_shift(1020, 3) == 0 and lay.sink_shift(1023, 3) == 2
    assert CacheLayout(height=2, width=2, rope_span=None).sink_shift(10**6, 3) == 0
    for bad in (dict(sink=12), dict(chunk=10), dict(height=3), dict(rope_span=12)):
        with pytest.raises(ValueError):
            CacheLayout(**{"height": 2, "width": 2, **bad})


def test_streaming_step_compiles_to_one_graph(tmp_path):
    """No graph breaks (so no host syncs, no data-dependent Python) in a steady-state step with
    VACE and cache writes: what torch.compile / CUDA graphs need. aot_eager keeps it quick."""
    ours = ours_from(reference(TINY_VACE, seed=12), TINY_VACE, tmp_path)
    cache, x, v = streamed(ours, TINY_VACE, frames=8, seed=3)
    assert cache.full
    t, scale = torch.full((1, 2), 500.0), torch.ones(2)
    with torch.no_grad():
        before = cache.k.clone(), cache.v.clone()
        eager = ours(x, t, cache, vace=v, hint_scale=scale)
        written = cache.k.clone()
        cache.k.copy_(before[0])
        cache.v.copy_(before[1])
        step = torch.compile(lambda x, t, v, s: ours(x, t, cache, vace=v, hint_scale=s),
                             backend="aot_eager", fullgraph=True)
        compiled = step(x, t, v, scale)
    assert rel_err(compiled, eager) < 1e-6
    assert torch.allclose(cache.k, written, atol=1e-6)  # the cache write survived compilation


def test_a_plan_made_ahead_leaves_the_cache_as_one_made_at_the_chunk():
    """`plan_ahead` (the sampler's, during a chunk) then `begin_chunk` gives the same tables,
    host state and re-placed sink keys as `begin_chunk` alone — past `rope_span`, where the
    sink moves every chunk, and after a drop or a reset, where the plan made ahead is stale."""
    from livevace.models.wan.kv_cache import StreamCache

    layout = CacheLayout(height=H, width=W, window=6, sink=2, chunk=2, rope_span=8)
    ahead, fresh = (StreamCache(TINY, layout) for _ in range(2))
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(ahead.sink_raw.shape, generator=g)
    for cache in (ahead, fresh):
        cache.sink_raw.copy_(raw)

    def same(keys: bool = True) -> None:
        for name in ("write_index", "raw_index", "allowed", "allowed_without_chunk", "cos",
                     "sin") + (("k",) if keys else ()):
            assert torch.equal(getattr(ahead, name), getattr(fresh, name)), name
        for name in ("slot_frame", "sink_shift", "visible_prefix", "full", "chunk_start"):
            assert getattr(ahead, name) == getattr(fresh, name), name

    shifts = set()
    for start in range(0, 24, 2):
        for cache in (ahead, fresh):
            cache.begin_chunk(start)
        same()
        shifts.add(fresh.sink_shift)
        ahead.plan_ahead(start + 2)
        assert ahead._ahead is not None
    assert len(shifts) > 4  # the sink moved with most chunks

    ahead.plan_ahead(24)
    for cache in (ahead, fresh):
        cache.drop([20, 21])  # a recache drops frames: the plan made ahead is stale
        cache.begin_chunk(20)
    same()
    ahead.plan_ahead(22)
    for cache in (ahead, fresh):
        cache.reset()
        cache.begin_chunk(0)
    same(keys=False)  # (a new stream's first chunk writes its sink keys afresh)
