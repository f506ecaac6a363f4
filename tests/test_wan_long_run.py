"""A stream longer than the reference's 1024-position RoPE table neither fails nor resets.

Tiny model, one token per latent frame, LongLive's window (12 frames, sink 3, chunks of 3),
1110 latent frames. The reference is diffusers over the whole sequence with the streaming
mask and a RoPE table long enough for it.
"""

from __future__ import annotations

import torch
from wan_support import (mask_self_attention, one_thread, ours_from, reference, rel_err,  # noqa: F401
                         wan_timestep_precision, window_mask)

from livevace.models.wan.config import TINY
from livevace.models.wan.kv_cache import CacheLayout

FRAMES = 1110
CHUNK, WINDOW, SINK = 3, 12, 3


def stream(model, layout, latents, ctx):
    cache = model.new_cache(layout)
    model.set_text(cache, ctx)
    outs, sink_raw = [], None
    with torch.no_grad():
        for start in range(0, FRAMES, CHUNK):
            cache.begin_chunk(start)
            outs.append(model(latents[:, :, start:start + CHUNK], torch.zeros(1, CHUNK), cache))
            if start == 0 and cache.sink_raw is not None:
                sink_raw = cache.sink_raw[:, :, :, :SINK].clone()
    return torch.cat(outs, dim=2), cache, sink_raw


def test_beyond_the_rope_table_streaming_continues_without_reset(tmp_path):
    ref = wan_timestep_precision(reference(TINY, seed=11, rope_max_seq_len=1200))
    ours = ours_from(ref, TINY, tmp_path)
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, FRAMES, 2, 2, generator=g)
    ctx = torch.randn(1, TINY.text_len, TINY.text_dim, generator=g)
    mask_self_attention(ref.blocks, window_mask(FRAMES, CHUNK, WINDOW, SINK), 1)
    with torch.no_grad():
        want = ref(latents, torch.zeros(1), ctx).sample

    # absolute positions for ever: equal to the reference over the whole run
    exact, _, _ = stream(ours, CacheLayout(2, 2, WINDOW, SINK, CHUNK, rope_span=None), latents, ctx)
    assert rel_err(exact, want) < 1e-5

    # default: reference positions while the chunk ends within 1024 frames, then the sink slides
    clamped, cache, sink_raw = stream(ours, CacheLayout(2, 2, WINDOW, SINK, CHUNK), latents, ctx)
    within = slice(0, 1023)  # chunk [1020, 1023) is the last one that fits the table
    assert rel_err(clamped[:, :, within], want[:, :, within]) < 1e-5
    assert torch.isfinite(clamped).all()
    assert rel_err(clamped[:, :, 1023:], want[:, :, 1023:]) > 1e-4  # the sink did move
    # never reset: the sink still holds frames 0..2 (their un-rotated keys untouched since
    # chunk 0) and the ring the last 9 frames
    assert [f for f, _ in cache.frames()] == [0, 1, 2] + list(range(FRAMES - 9, FRAMES))
    assert torch.equal(cache.sink_raw[:, :, :, :SINK], sink_raw)
    assert cache.sink_shift == FRAMES - 1024
    assert [cache.position(f) for f in (0, 2, FRAMES - 1)] == [86, 88, FRAMES - 1]
