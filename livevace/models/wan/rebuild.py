"""Krea Realtime 14B: no rolling cache; the cache is rebuilt from three clean frames before
every block.

The facts, from the authors' server (github krea-ai/realtime-video, `release_server.py`;
Daydream Scope's port differs in places and is not followed):

- Wan2.1-T2V-14B shapes, 3-latent blocks, shift 5. Steps (1000, 750, 500, 250) warped
  through the shifted table, then a last step at t = 0: t = 1000, 937.5, 833.3, 625, 0 (the
  authors' `linspace(1000, 0, 5)`); the four-step mode's `linspace(1000, 0, 4)` truncated to
  integers is (1000, 666, 333) then 0, i.e. t = 1000, 908.8, 714.0, 0. The x0 of the t = 0
  step is the block's output; no separate clean cache write runs. The sampler adds the t = 0
  step to any step list that lacks one (`set_steps`), so the live step parameter names only
  the noisy steps, as it does for LongLive.
- x0 = x_t − σ·v and the re-noising x = (1 − σ)·x0 + σ·ε both take σ from the table entry
  nearest to t, t = 0 included: the table ends one step above 0, so t = 0 is not σ = 0 but
  the last entry's small σ (`FlowMatchSchedule.nearest_sigma`).
- The first block runs at RoPE positions 0…2 and attends only to itself. Before every later
  block the cache is cleared and rebuilt by one t = 0 pass over the clean context
  [first, latent[-2], latent[-1]] at positions 0…2, attending among themselves (the authors'
  block-causal mask with blocks of the chunk size: one full block for 3-latent chunks). The
  block then runs at positions 3…5 and attends to the context and itself; each denoising
  step rewrites its own slots. While the stream has at most three latents the context is all
  of them (the stream's first latent among them) and the block follows right after.
- "first" is, once the stream holds more than three latents (from the third 3-latent block
  on), the oldest of the last nine decoded pixel frames re-encoded alone by the Wan VAE as a
  first frame. The sampler cannot decode: the pipeline
  session sets `first_latent`; without it (warm-up, the bench, a sampler alone) the oldest
  kept latent stands in, which is the latent that frame was decoded from.
- The rebuild runs with the text K/V of the previous block (the authors' cross-attention
  cache is refreshed only when the block's first step runs), so a prompt set between blocks
  reaches the rebuild one block later than the block itself (`set_text` defers it).
- VACE (ours, the authors have none): the rebuild is a refinement pass; each context frame
  takes the VACE context of the latent it comes from (the re-encoded frame: the oldest kept
  latent's), and runs without VACE unless all three had one.

Static shapes: the cache is a `StreamCache` of CONTEXT + chunk slots without a sink, cleared
in place before every block; the rebuild and the block passes each keep one shape and one
visible prefix from the third block on, so their CUDA graphs replay. Plans repeat from block
to block and are made once (`RebuildCache`). `next_frame` counts the stream's frames (noise
keys), not cache positions.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from livevace.models.wan.config import TINY_VACE_14B, WAN21_VACE_14B, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout, ChunkPlan, StreamCache
from livevace.models.wan.recipe import Recipe
from livevace.models.wan.sampler import StreamSampler

CONTEXT = 3
"""Clean latent frames the cache is rebuilt from."""

PIXEL_HISTORY = 1 + 4 * (CONTEXT - 1)
"""Decoded pixel frames kept for the re-encoded first frame (the span of CONTEXT latents)."""

FOUR_STEPS = (1000, 666, 333)
"""The authors' faster mode, before its t = 0 step (see the module doc)."""


class RebuildCache(StreamCache):
    """The block's cache: `clear` empties the slots before every block, `reset` also forgets
    the stream; plans are kept by key (they repeat every block)."""

    def __init__(self, cfg: WanConfig, layout: CacheLayout, batch: int = 1,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        super().__init__(cfg, layout, batch, device, dtype)
        self.stream_frames = 0
        self._plans: dict[tuple, ChunkPlan] = {}

    def clear(self) -> None:
        """Empty every slot; the stream goes on."""
        super().reset()

    def reset(self) -> None:
        super().reset()
        self.stream_frames = 0

    @property
    def next_frame(self) -> int:
        """The stream frame the next block starts at."""
        return self.stream_frames

    def _plan(self, start: int, n: int) -> ChunkPlan:
        key = self._key(start, n)
        if key not in self._plans:
            self._plans[key] = super()._plan(start, n)
        return self._plans[key]


class RebuildSampler(StreamSampler):
    """`StreamSampler` with Krea's block procedure (see the module doc)."""

    cache: RebuildCache

    def __init__(self, model: WanDiT, cache: RebuildCache, steps: Sequence[int], seed: int,
                 shift: float, warp: bool) -> None:
        lay = cache.layout
        if lay.sink or lay.window < CONTEXT + lay.chunk:
            raise ValueError(f"the rebuilt cache needs {CONTEXT} + {lay.chunk} slots and no "
                             f"sink, got window {lay.window}, sink {lay.sink}")
        super().__init__(model, cache, steps, seed, shift=shift, warp=warp, refine=False)
        self.first_latent: Callable[[], torch.Tensor | None] | None = None
        """Set by the pipeline session: the re-encoded first context frame [B, 16, 1, h, w],
        or None while there is none."""
        self.recent: torch.Tensor | None = None
        """The last ≤ CONTEXT latents of the stream."""
        self.recent_vace: torch.Tensor | None = None
        self.recent_has_vace: list[bool] = []
        self._text_after_rebuild: torch.Tensor | None = None

    def set_steps(self, steps: Sequence[int]) -> None:
        """The step list, then a step at t = 0 unless the list ends with one (module doc)."""
        super().set_steps(steps)
        if self.timesteps[-1] != 0:
            self.timesteps = [*self.timesteps, 0.0]

    def set_text(self, context: torch.Tensor) -> None:
        """New text K/V; mid-stream they take effect after the next rebuild (module doc)."""
        if self.recent is None or not self.cache.text_ready:
            super().set_text(context)
            self._text_after_rebuild = None
        else:
            self._text_after_rebuild = context

    def _apply_text(self) -> None:
        if self._text_after_rebuild is not None:
            super().set_text(self._text_after_rebuild)
            self._text_after_rebuild = None

    def reset(self) -> None:
        super().reset()
        self.recent = self.recent_vace = None
        self.recent_has_vace = []
        self._apply_text()

    def recache(self, include_sink: bool = False) -> int:
        """Nothing to re-run: every block rebuilds the cache with the current text."""
        return 0

    @torch.no_grad()
    def generate_chunk(self, vace: torch.Tensor | None = None, init: torch.Tensor | None = None,
                       timesteps: Sequence[float] | None = None) -> torch.Tensor:
        """Rebuild the cache, then denoise the next block; returns its x0 (see
        `StreamSampler.generate_chunk` for `init` and `timesteps`)."""
        cache, lay = self.cache, self.cache.layout
        start, c = cache.next_frame, lay.chunk
        shape = (cache.batch, self.model.cfg.in_channels, c, lay.height, lay.width)
        x = self.noise(start, 0, shape) if init is None else init.float()
        ts = list(self.timesteps if timesteps is None else timesteps)
        at = self._rebuild()
        self._apply_text()
        cache.begin_chunk(at, c)
        x0 = self.denoise(x, ts, vace, start)
        self._keep(x0, vace)
        cache.stream_frames = start + c
        self._draw_ahead(start + c, shape)
        return x0

    def sigma(self, t: float) -> float:
        """The authors' lookup, t = 0 included (module doc)."""
        return self.schedule.nearest_sigma(t)

    def _rebuild(self) -> int:
        """Clear the cache and write the clean context at positions 0…n-1 (t = 0, block-causal
        in groups of a chunk); returns n, where the block goes."""
        self.cache.clear()
        if self.recent is None:
            return 0
        frames = self._context_latents()
        vace = self.recent_vace if all(self.recent_has_vace) else None
        n, c = frames.shape[2], self.cache.layout.chunk
        for s in range(0, n, c):
            part = slice(s, min(s + c, n))
            self.cache.begin_chunk(s, part.stop - s)
            self.forward_pass(frames[:, :, part], 0.0, None if vace is None else vace[:, :, part],
                              "refinement")
        return n

    def _context_latents(self) -> torch.Tensor:
        recent = self.recent
        assert recent is not None
        if self.cache.next_frame <= CONTEXT or self.first_latent is None:
            return recent
        first = self.first_latent()
        if first is None:
            return recent
        want = (*recent.shape[:2], 1, *recent.shape[3:])
        if tuple(first.shape) != want:
            raise ValueError(f"first_latent gave {tuple(first.shape)}, expected {want}")
        return torch.cat([first.to(recent.dtype), recent[:, :, 1:]], dim=2)

    def _keep(self, x0: torch.Tensor, vace: torch.Tensor | None) -> None:
        """Remember the last CONTEXT latents and their VACE contexts."""
        self.recent = keep_last(self.recent, x0)
        given = vace if vace is not None else x0.new_zeros(
            x0.shape[0], self.model.cfg.vace_in_channels, *x0.shape[2:])
        self.recent_vace = keep_last(self.recent_vace, given)
        self.recent_has_vace = (self.recent_has_vace + [vace is not None] * x0.shape[2])[-CONTEXT:]


def keep_last(kept: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    """The last CONTEXT frames (dim 2) of kept + new."""
    return (new if kept is None else torch.cat([kept, new], dim=2))[:, :, -CONTEXT:]


def stream(model: WanDiT, recipe: Recipe, layout: CacheLayout, steps: Sequence[int],
           seed: int) -> RebuildSampler:
    """The recipe's `stream` factory: a `RebuildCache` on the model's device and dtype."""
    w = model.patch_embedding.weight
    cache = RebuildCache(model.cfg, layout, 1, w.device, w.dtype)
    return RebuildSampler(model, cache, steps, seed, shift=recipe.shift, warp=recipe.warp)


KREA_REALTIME = Recipe(
    "krea-realtime", WAN21_VACE_14B, steps=(1000, 750, 500, 250), shift=5.0, warp=True,
    chunk=3, window=CONTEXT + 3, sink=0, rope_span=None, refine=False,
    checkpoints=("krea_realtime_14b",), vace_checkpoints=("vace_module_14b",), stream=stream,
    prompt_switch="rebuild", references=False, tiny_config=TINY_VACE_14B)
"""Krea Realtime 14B (`krea/krea-realtime-video`); its sampler ends every block with a step
at t = 0 (`RebuildSampler.set_steps`). A prompt change is best faded over a few
blocks (the authors lerp the embeddings over four by default: `transition_chunks` 4). A hard
cut needs no recache: the next block runs with the new text, and the rebuild before the one
after it too."""
