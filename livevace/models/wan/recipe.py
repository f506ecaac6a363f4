"""Recipes: what makes one streaming Wan2.1 model differ from another, as plain data.

Every model of the zoo runs through the same DiT blocks, cache and sampler; a recipe says how
(DESIGN §3, "a model of the zoo is a recipe, never a fork"): the network's shapes, the step
list and schedule, latent frames per call, the cache policy and its geometry, the RoPE
position mode, whether the clean t = 0 cache write runs, and the checkpoint files it loads.

LongLive's two recipes live here (the sampler's defaults are LongLive's); every recipe of the
zoo, by name, is in `zoo`. A model whose chunk procedure or cache differs from LongLive's
(an EMA sink, a memory bank, a rebuilt cache, a stream batch) names its own `stream`
factory, which builds its cache and sampler from the same `WanDiT`; the network is never
forked.

    sampler = zoo.open_stream(recipe, model, height, width, chunk, steps, seed)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Protocol, Sequence

from livevace.models.wan.cache_policy import CachePolicy, SinkRing
from livevace.models.wan.config import TINY_VACE, WAN21_VACE_1_3B, WanConfig
from livevace.models.wan.kv_cache import CacheLayout

if TYPE_CHECKING:
    from livevace.models.wan.dit import WanDiT
    from livevace.models.wan.sampler import StreamSampler

PromptSwitch = Literal["recache", "rebuild", "none"]
"""What a hard prompt cut does to the cache: re-run the kept frames at t = 0 with the new text
(LongLive's recache), nothing because the cache is rebuilt before every block anyway
(Krea), or nothing (the model has no clean cache to re-run)."""


class StreamFactory(Protocol):
    """Builds a recipe's cache and sampler for one stream (see `zoo.open_stream`)."""

    def __call__(self, model: "WanDiT", recipe: "Recipe", layout: CacheLayout,
                 steps: Sequence[int], seed: int) -> "StreamSampler": ...


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
    vace_checkpoints: tuple[str, ...] = ("vace_module", "vace_full")
    """Catalogue keys of the VACE modules that fit, in order of preference (any one)."""
    cache_policy: Callable[[int, int, int | None], CachePolicy] = SinkRing
    stream: StreamFactory | None = None
    """Builds the cache and sampler (None: LongLive's `StreamCache` and `StreamSampler`)."""
    prompt_switch: PromptSwitch = "recache"
    rows_per_step: bool = False
    """The stream's static shapes hold a batch row per step (a stream batch): a different
    number of steps is a new stream, not a setting of the running one."""
    references: bool = True
    """Whether reference images can be written into the cache's sink (no: the model has no
    sink of its own clean frames, or its sink belongs to its stream batch's rows)."""
    tiny_config: WanConfig = TINY_VACE
    """The toy-sized network of `--weights tiny-random` (same VACE spacing in miniature)."""

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
