"""Recipes: what makes one streaming Wan2.1 model differ from another, as plain data.

Every model of the zoo runs through the same DiT blocks, cache and sampler; a recipe says how
(DESIGN §3, "a model of the zoo is a recipe, never a fork"): the network's shapes, the step
list and schedule, latent frames per call, the cache policy and its geometry, the RoPE
position mode, whether the clean t = 0 cache write runs, and the checkpoint files it loads.

Only today's two models are here, and they share everything but their weights: Self-Forcing
runs with LongLive's schedule and 12-frame window with a 3-frame sink. The zoo issue adds the
others (Reward Forcing, StreamDiffusionV2, MemFlow, Krea Realtime 14B) and what actually
differs for them: their own cache policies (a new module beside `cache_policy`), prompt-switch
behaviour, the VACE module that fits, and each model's own numbers.

    cache = model.new_cache(recipe.layout(height, width, chunk))
    sampler = StreamSampler.from_recipe(model, cache, recipe, steps, seed)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from livevace.models.wan.cache_policy import CachePolicy, SinkRing
from livevace.models.wan.config import WAN21_VACE_1_3B, WanConfig
from livevace.models.wan.kv_cache import CacheLayout


@dataclass(frozen=True)
class Recipe:
    """One streaming model's facts (see the module doc)."""

    name: str
    config: WanConfig
    steps: tuple[int, ...]
    """The step list it was distilled for (raw values; warped if `warp`)."""
    shift: float
    warp: bool
    chunk: int
    """Latent frames per call it was trained with."""
    window: int
    sink: int
    rope_span: int | None
    """RoPE positions: true ones while the chunk ends within the span, then the sink slides
    along (`kv_cache`); None keeps absolute positions for ever."""
    refine: bool
    """Whether the clean t = 0 forward writes each chunk's K/V into the cache."""
    checkpoints: tuple[str, ...]
    """Catalogue keys of the generator files it loads: the base, then its LoRA if any."""
    cache_policy: Callable[[int, int, int | None], CachePolicy] = SinkRing

    def layout(self, height: int, width: int, chunk: int | None = None) -> CacheLayout:
        """The cache layout at latent size height×width (chunk: default the recipe's)."""
        return CacheLayout(height=height, width=width, window=self.window, sink=self.sink,
                           chunk=self.chunk if chunk is None else chunk,
                           rope_span=self.rope_span, policy_kind=self.cache_policy)


LONGLIVE = Recipe("longlive", WAN21_VACE_1_3B, steps=(1000, 750, 500, 250), shift=5.0,
                  warp=True, chunk=3, window=12, sink=3, rope_span=1024, refine=True,
                  checkpoints=("longlive_base", "longlive_lora"))
"""LongLive: the Self-Forcing student fine-tuned for long runs, base + LoRA."""

SELF_FORCING = Recipe("self-forcing", WAN21_VACE_1_3B, steps=LONGLIVE.steps, shift=LONGLIVE.shift,
                      warp=True, chunk=3, window=12, sink=3, rope_span=1024, refine=True,
                      checkpoints=("self_forcing",))
"""Self-Forcing DMD, run with LongLive's schedule and cache geometry."""
