"""The few-step flow-matching schedule, seeded re-noising and LongLive's recache."""

from __future__ import annotations

import pytest
import torch
from wan_support import one_thread, randomise  # noqa: F401

from livevace.models.wan.compiled import Acceleration
from livevace.models.wan.config import TINY, TINY_VACE
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout
from livevace.models.wan.sampler import FlowMatchSchedule, StreamSampler
from livevace.models.wan.vace import VaceStrength

LAYOUT = CacheLayout(height=4, width=4, window=8, sink=2, chunk=2)


@pytest.fixture(scope="module")
def model():
    return randomise(WanDiT(TINY), seed=31)


def prompt(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, TINY.text_len, TINY.text_dim, generator=g)


def test_warped_steps_are_what_self_forcing_feeds_the_model():
    sched = FlowMatchSchedule(shift=5.0)
    assert sched.warp([1000, 750, 500, 250]) == pytest.approx([1000.0, 937.5, 833.3333, 625.0])
    assert sched.sigma(1000.0) == 1.0 and sched.sigma(625.0) == pytest.approx(0.625)
    assert sched.sigma(0.0) == 0.0
    # a raw (unwarped) value is looked up in the table like Self-Forcing's argmin
    assert sched.sigma(750.0) == pytest.approx(0.75, abs=2e-3)
    with pytest.raises(ValueError):
        sched.warp([1001])


def test_a_chunk_is_four_steps_then_a_clean_cache_write(model):
    sampler = StreamSampler(model, model.new_cache(LAYOUT), seed=3)
    sampler.set_text(prompt(0))
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(args[1][0, 0].item()))
    try:
        x0 = sampler.generate_chunk()
    finally:
        hook.remove()
    assert seen == pytest.approx([1000.0, 937.5, 833.3333, 625.0, 0.0])
    assert x0.shape == (1, 16, 2, 4, 4) and torch.isfinite(x0).all()
    assert sampler.cache.next_frame == 2


def test_noise_is_a_function_of_seed_frame_and_step(model):
    def stream(seed, chunks=3):
        s = StreamSampler(model, model.new_cache(LAYOUT), steps=(1000, 500), seed=seed)
        s.set_text(prompt(0))
        return [s.generate_chunk() for _ in range(chunks)]

    a, b, c = stream(7), stream(7), stream(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.allclose(a[0], c[0])
    s = StreamSampler(model, model.new_cache(LAYOUT), seed=7)
    assert torch.equal(s.noise(4, 1, (2, 3)), s.noise(4, 1, (2, 3)))
    assert not torch.equal(s.noise(4, 1, (2, 3)), s.noise(6, 1, (2, 3)))


def test_the_next_chunks_first_noise_is_drawn_during_this_chunk(model):
    s = StreamSampler(model, model.new_cache(LAYOUT), steps=(1000, 500), seed=7)
    s.set_text(prompt(0))
    drawn, draw = [], s._draw
    s._draw = lambda key: drawn.append(key) or draw(key)  # a spy: the real draws still run
    s.generate_chunk()
    shape = (1, 16, 2, 4, 4)
    assert drawn == [(7, 0, 0, shape), (7, 0, 1, shape), (7, 2, 0, shape)]  # last: ahead
    fresh = StreamSampler(model, model.new_cache(LAYOUT), seed=7)
    assert torch.equal(s.noise(2, 0, shape), fresh.noise(2, 0, shape))
    assert len(drawn) == 3  # served from the draw ahead
    s.generate_chunk()  # draws (7, 4, 0) ahead; a new seed must not get the old seed's noise
    s.seed = 8
    assert torch.equal(s.noise(4, 0, shape), StreamSampler(model, model.new_cache(LAYOUT), seed=8)
                       .noise(4, 0, shape))
    assert drawn[-1] == (8, 4, 0, shape)


def test_video_to_video_starts_from_the_given_latent_and_timesteps(model):
    sampler = StreamSampler(model, model.new_cache(LAYOUT), seed=1)
    sampler.set_text(prompt(0))
    init = torch.randn(1, 16, 2, 4, 4)
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(args[1][0, 0].item()))
    try:
        sampler.generate_chunk(init=init, timesteps=[600.0, 300.0])
    finally:
        hook.remove()
    assert seen == [600.0, 300.0, 0.0]


def teacher_forced_cache(model, latents, prompts):
    """Reference for recache: each chunk written at t = 0 with the given prompt, in order."""
    cache = model.new_cache(LAYOUT)
    with torch.no_grad():
        for i, p in enumerate(prompts):
            model.set_text(cache, p)
            cache.begin_chunk(2 * i)
            model(latents[:, :, 2 * i:2 * i + 2], torch.zeros(1, 2), cache)
    return cache


@pytest.mark.parametrize("include_sink", [True, False])
def test_recache_rewrites_the_window_as_if_made_with_the_new_prompt(model, include_sink):
    old, new = prompt(1), prompt(2)
    sampler = StreamSampler(model, model.new_cache(LAYOUT), steps=(1000, 500), seed=4)
    sampler.set_text(old)
    latents = torch.cat([sampler.generate_chunk() for _ in range(4)], dim=2)  # 8 = window
    sampler.set_text(new)
    assert sampler.recache(include_sink=include_sink) == (8 if include_sink else 6)
    first = new if include_sink else old
    want = teacher_forced_cache(model, latents, [first, new, new, new])
    assert torch.allclose(sampler.cache.k, want.k, atol=1e-5)
    assert torch.allclose(sampler.cache.v, want.v, atol=1e-5)
    assert sampler.cache.next_frame == 8
    sampler.generate_chunk()  # the stream goes on after the switch
    assert [f for f, _ in sampler.cache.frames()] == [0, 1, 4, 5, 6, 7, 8, 9]


def test_recache_after_the_ring_wrapped_replays_only_cached_frames(model):
    sampler = StreamSampler(model, model.new_cache(LAYOUT), steps=(1000,), seed=4)
    sampler.set_text(prompt(1))
    for _ in range(6):
        sampler.generate_chunk()
    sampler.set_text(prompt(2))
    assert sampler.recache() == 6  # frames 6..11, the sink 0..1 kept
    assert [f for f, _ in sampler.cache.frames()] == [0, 1, 6, 7, 8, 9, 10, 11]


def test_reset_starts_over_with_the_current_prompt(model):
    sampler = StreamSampler(model, model.new_cache(LAYOUT), steps=(1000, 500), seed=9)
    sampler.set_text(prompt(3))
    first = sampler.generate_chunk()
    sampler.generate_chunk()
    sampler.reset()
    assert sampler.cache.next_frame == 0 and sampler.cache.frames() == []
    assert torch.equal(sampler.generate_chunk(), first)


@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [False, True])
def test_streaming_chunks_never_wait_for_the_gpu(model, graphs):
    """The per-chunk host work (the cache's plan, hint scales, seeded noise) is uploaded
    without a host sync and the step has none: PyTorch's sync debug mode raises on any.
    The noise is the CPU sampler's, number for number."""
    gpu = randomise(WanDiT(TINY_VACE), seed=31).for_inference(torch.bfloat16).cuda()
    if graphs:
        gpu.accelerate(Acceleration(cuda_graph=True))
    sampler = StreamSampler(gpu, gpu.new_cache(LAYOUT), seed=3)
    sampler.set_text(prompt(0).cuda())
    sampler.warm_up(vace=True)  # lazy initialisation (and graph capture) happen here
    ctx = torch.randn(1, TINY_VACE.vace_in_channels, 2, 4, 4, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        sampler.set_strength(VaceStrength(context=0.5))
        chunks = [sampler.generate_chunk(vace=ctx) for _ in range(6)]  # the ring wraps
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(x).all() for x in chunks)
    on_cpu = StreamSampler(model, model.new_cache(LAYOUT), seed=3)
    assert torch.equal(sampler.noise(6, 2, (1, 16, 2, 4, 4)).cpu(),
                       on_cpu.noise(6, 2, (1, 16, 2, 4, 4)))
