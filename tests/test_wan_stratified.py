"""Cache-stratified VACE: hint scales differ between generation and refinement passes."""

from __future__ import annotations

import pytest
import torch
from wan_support import one_thread, randomise  # noqa: F401

from livevace.models.wan.config import TINY_VACE
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout
from livevace.models.wan.sampler import StreamSampler
from livevace.models.wan.vace import VaceStrength, resample_profile
from livevace.params import param

LAYOUT = CacheLayout(height=4, width=4, window=6, sink=2, chunk=2)
CHUNKS = 4


@pytest.fixture(scope="module")
def model():
    return randomise(WanDiT(TINY_VACE), seed=21)


@pytest.fixture(scope="module")
def conditioning():
    g = torch.Generator().manual_seed(1)
    ctx = torch.randn(1, TINY_VACE.text_len, TINY_VACE.text_dim, generator=g)
    control = torch.randn(1, 96, 2 * CHUNKS, LAYOUT.height, LAYOUT.width, generator=g)
    return ctx, control


def run(model, conditioning, strength=None, vace=True, steps=(1000, 750, 500)):
    """Generate CHUNKS chunks; returns the chunks and the cache K after the first one."""
    ctx, control = conditioning
    sampler = StreamSampler(model, model.new_cache(LAYOUT), steps=steps, seed=5)
    sampler.set_text(ctx)
    if strength is not None:
        sampler.set_strength(strength)
    chunks, first_cache = [], None
    for i in range(CHUNKS):
        chunks.append(sampler.generate_chunk(vace=control[:, :, 2 * i:2 * i + 2] if vace else None))
        if i == 0:
            first_cache = sampler.cache.k.clone()
    return chunks, first_cache


def plain_vace(model, conditioning, scale, steps=(1000, 750, 500), refinement=None):
    """The loop written out: one hint scale for every pass (or `refinement` for the t = 0
    cache write), the VACE blocks run in every forward."""
    ctx, control = conditioning
    cache = model.new_cache(LAYOUT)
    model.set_text(cache, ctx)
    sampler = StreamSampler(model, cache, steps=steps, seed=5)  # schedule and noise only
    out = []
    with torch.no_grad():
        for i in range(CHUNKS):
            start, part = 2 * i, control[:, :, 2 * i:2 * i + 2]
            cache.begin_chunk(start)
            x = sampler.noise(start, 0, (1, 16, 2, LAYOUT.height, LAYOUT.width))
            for k, t in enumerate(sampler.timesteps):
                flow = model(x, torch.full((1, 2), t), cache, vace=part, hint_scale=scale)
                x0 = x - sampler.schedule.sigma(t) * flow
                if k + 1 < len(sampler.timesteps):
                    s = sampler.schedule.sigma(sampler.timesteps[k + 1])
                    x = (1 - s) * x0 + s * sampler.noise(start, k + 1, x.shape)
            model(x0, torch.zeros(1, 2), cache, vace=part,
                  hint_scale=scale if refinement is None else refinement)
            out.append(x0)
    return out


def test_equal_scales_reproduce_plain_vace(model, conditioning):
    stratified, _ = run(model, conditioning, VaceStrength(0.8, 1.0, 1.0, (1.0,)))
    plain = plain_vace(model, conditioning, 0.8)
    for a, b in zip(stratified, plain):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_refinement_scale_changes_the_cache_not_the_current_chunk(model, conditioning):
    base, base_cache = run(model, conditioning, VaceStrength(1.0, 1.0, 1.0, (1.0,)))
    strong, strong_cache = run(model, conditioning, VaceStrength(1.0, 1.0, 0.2, (1.0,)))
    assert torch.equal(base[0], strong[0])  # chunk 0 is denoised before any refinement pass
    assert not torch.allclose(base_cache, strong_cache, atol=1e-4)  # its cached K/V differ
    assert not torch.allclose(base[1], strong[1], atol=1e-4)  # and so does what follows


def test_generation_scale_changes_the_current_chunk(model, conditioning):
    base, _ = run(model, conditioning, VaceStrength(1.0, 1.0, 1.0, (1.0,)))
    inverse, _ = run(model, conditioning, VaceStrength(1.0, 0.2, 1.0, (1.0,)))
    assert not torch.allclose(base[0], inverse[0], atol=1e-4)


def test_scale_zero_equals_no_vace(model, conditioning):
    off, _ = run(model, conditioning, VaceStrength(0.0, 1.0, 1.0, (1.0,)))
    none, _ = run(model, conditioning, vace=False)
    on, _ = run(model, conditioning, VaceStrength(1.0, 1.0, 1.0, (1.0,)))
    for a, b, c in zip(off, none, on):
        assert torch.equal(a, b)
        assert not torch.allclose(a, c, atol=1e-4)


def test_a_pass_whose_scales_are_all_zero_skips_the_vace_blocks_for_the_same_pictures(
        model, conditioning):
    """`vace_refinement_scale 0` (Scope's clean-cache pass): the cache writes run no VACE
    block, and the stream is the one whose cache writes add their hints times 0."""
    calls = []
    hook = model.vace_patch_embedding.register_forward_hook(lambda *_: calls.append(1))
    try:
        skipped, _ = run(model, conditioning, VaceStrength(0.8, 1.0, 0.0, (1.0,)))
        assert len(calls) == 3 * CHUNKS  # the generation steps only
        calls.clear()
        plain = plain_vace(model, conditioning, 0.8, refinement=torch.zeros(1))
        assert len(calls) == 4 * CHUNKS
    finally:
        hook.remove()
    for a, b in zip(skipped, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    stratified, _ = run(model, conditioning, VaceStrength(0.8, 1.0, 0.2, (1.0,)))
    assert not torch.allclose(skipped[1], stratified[1], atol=1e-4)  # the skip is no no-op


def test_layer_profile_scales_each_hint(model, conditioning):
    flat, _ = run(model, conditioning, VaceStrength(1.0, 1.0, 1.0, (0.5,)))
    ramp, _ = run(model, conditioning, VaceStrength(1.0, 1.0, 1.0, (0.0, 1.0)))
    assert not torch.allclose(flat[0], ramp[0], atol=1e-4)
    assert VaceStrength(0.5, 2.0, 0.2, (0.0, 1.0)).scales("generation", 3) == [0.0, 0.5, 1.0]
    assert VaceStrength(0.5, 2.0, 0.2, (1.0,)).scales("refinement", 2) == pytest.approx([0.1, 0.1])


def test_strength_defaults_match_the_registry():
    s = VaceStrength(refinement=0.2)
    assert s.refinement == 0.2
    assert s.context == param("vace_context_scale").default
    assert s.profile == tuple(param("vace_layer_profile").default)
    assert resample_profile([1.0, 0.0], 3) == [1.0, 0.5, 0.0]
    assert resample_profile([2.0, 4.0, 0.0], 5) == [2.0, 3.0, 4.0, 2.0, 0.0]
