"""Recipes and the cache policy: today's two models as data, and a sampler built from a recipe
streaming exactly as the hand-made construction did."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from wan_support import one_thread, randomise  # noqa: F401

from livevace.models.wan.cache_policy import SinkRing
from livevace.models.wan.config import TINY, WAN21_VACE_1_3B
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout
from livevace.models.wan.recipe import LONGLIVE, SELF_FORCING
from livevace.models.wan.sampler import StreamSampler
from livevace.store import catalog


@pytest.mark.parametrize("recipe", [LONGLIVE, SELF_FORCING])
def test_the_two_recipes_hold_todays_numbers(recipe):
    assert recipe.config == WAN21_VACE_1_3B
    assert recipe.steps == (1000, 750, 500, 250)
    assert (recipe.shift, recipe.warp, recipe.refine, recipe.chunk) == (5.0, True, True, 3)
    sampler_timesteps = StreamSampler.from_recipe(
        WanDiT(TINY), WanDiT(TINY).new_cache(recipe.layout(2, 2)), recipe).timesteps
    assert sampler_timesteps == pytest.approx([1000.0, 937.5, 833.3333, 625.0])
    layout = recipe.layout(40, 72)
    assert (layout.window, layout.sink, layout.chunk, layout.rope_span) == (12, 3, 3, 1024)
    assert layout == CacheLayout(40, 72) and layout.policy == SinkRing(12, 3, 1024)
    assert recipe.layout(40, 72, chunk=1).chunk == 1


def test_the_recipes_load_the_catalogues_generator_choices():
    role = next(r for r in catalog.ROLES if r.name == "generator")
    assert role.options == (LONGLIVE.checkpoints, SELF_FORCING.checkpoints)


def test_sink_ring_slots_windows_and_positions():
    ring = SinkRing(window=6, sink=2, rope_span=8)
    assert [ring.slot(f) for f in range(10)] == [0, 1, 2, 3, 4, 5, 2, 3, 4, 5]
    assert [f for f in range(-1, 12) if ring.visible(f, 10)] == [0, 1, 6, 7, 8, 9]
    assert [ring.raw_slot(f, j) for j, f in enumerate(range(1, 4))] == [1, 3, 4]
    assert ring.sink_shift(4, 2) == 0 and ring.sink_shift(10, 2) == 4
    assert ring.position(1, 4) == 5 and ring.position(7, 4) == 7
    assert SinkRing(6, 2, None).sink_shift(10**6, 2) == 0


@pytest.mark.parametrize("rope_span", [1024, 16])
def test_a_sampler_from_a_recipe_streams_bit_identically(one_thread, rope_span):  # noqa: F811
    """Past the window's filling, a recache, and (span 16) the sliding sink."""
    model = randomise(WanDiT(TINY), seed=5)
    text = torch.randn(1, TINY.text_len, TINY.text_dim, generator=torch.Generator().manual_seed(2))
    recipe = replace(LONGLIVE, rope_span=rope_span)
    today = StreamSampler(model, model.new_cache(CacheLayout(
        height=4, width=4, window=12, sink=3, chunk=3, rope_span=rope_span)),
        steps=(1000, 750, 500, 250), seed=9, shift=5.0, warp=True)
    ours = StreamSampler.from_recipe(model, model.new_cache(recipe.layout(4, 4)), recipe, seed=9)
    runs = []
    for sampler in (today, ours):
        sampler.set_text(text)
        chunks = [sampler.generate_chunk() for _ in range(7)]
        sampler.recache()
        chunks.append(sampler.generate_chunk())
        runs.append((chunks, sampler.cache.k.clone()))
    for a, b in zip(*(chunks for chunks, _ in runs)):
        assert torch.equal(a, b)
    assert torch.equal(runs[0][1], runs[1][1])
    # the next chunk (frames 24..26) is planned ahead
    assert today.cache.sink_shift == ours.cache.sink_shift == max(0, 27 - rope_span)
