"""Reward Forcing: a sink + window cache whose keys are kept un-rotated, placed at positions
relative to the cache, and whose sink follows the evicted frames as a moving average.

The facts, from the authors' code (github JaydenLu666/Reward-Forcing, `wan/modules/
causal_model.py` after its "[fix] ema sink" commit, and `pipeline/causal_inference.py`):

- The cache holds 9 latent frames (`local_attn_size`): a sink of 3 and a window of 6, the
  chunk being denoised included (chunks of 3). A chunk attends to the sink, the window frames
  before it, and itself.
- Keys are cached as the block computes them before RoPE; values are never rotated. Each
  forward rotates the keys it attends to at positions counted from the cache's start: the sink
  at 0…2, the window's frames after it in time order, the chunk (and its queries) last. A
  chunk's distance to the sink therefore never grows: nothing to overflow on long runs.
- The first chunk is the sink (it attends to itself at 0…2); until the window is full a
  chunk sees the sink and the frames so far, and nothing is evicted.
- Eviction happens once per chunk, in its first forward (the first denoising pass; the later
  passes and the t = 0 cache write only rewrite the chunk's own frames): the oldest window
  chunk leaves, and the sink's K and V become α·sink + (1 − α)·evicted, element by element,
  sink frame j with the evicted chunk's frame j (α = 0.999 by default). The evicted frames
  are clean: the t = 0 pass wrote them.
- Steps, shift, warping and the t = 0 cache write are LongLive's. There is no prompt switch
  in the authors' code (one prompt per video; Daydream Scope's port keeps the cache on a text
  change), so a cut only changes the text K/V (`prompt_switch="none"`).

In a bfloat16 cache, as the authors run it, α·sink rounds back to sink for most elements
(a change of 1 − α = 0.1 % is below half a bfloat16 step), so the update is in effect
sink + (1 − α)·evicted where that is large enough to show; the arithmetic here is the same.

Here, in the ring of `kv_cache`: the window's frames keep their ring slots, so positions are
a per-chunk function of the frame (`EmaSinkWindow.position`: the sink at its index, a window
frame at its index minus how far the window has slid). Rotation happens once per chunk, not
per forward: within a chunk neither the positions nor the other frames' un-rotated keys
change, and the chunk's own keys are rotated by the block (its positions are its queries'),
so `begin_chunk` mixes the sink, then re-rotates every other visible frame into the rotated
buffer the forwards read: per layer a gather, the rotation in float32 and a scatter, the RoPE
factors gathered on the device from a table of the W positions (the host only uploads a few
small indices). Behind a compiled DiT (`WanDiT.phases` not eager) that per-layer rotation is
compiled too, one fused kernel per layer instead of a chain of full-size passes. Rotating in
every forward instead would redo the same work for each pass of the chunk. The forward is exactly LongLive's (`CacheKV` writes the raw and the
rotated keys): no host syncs, one visible prefix per state (3, 6, then 9 frames for ever), so
`compiled.StepGraphs` captures and replays it.

Chunks of other sizes than the sink (1-latent chunks): the authors' code then copies evicted
frames over the sink instead of mixing; here each evicted frame f is mixed into sink frame
(f − sink) mod sink, which is the authors' pairing for chunks of the sink's size. The recipe's
sampler runs no recache; the cache would take one (dropped frames replay at the positions they
were generated at, with nothing evicted).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from livevace.models.wan.blocks import EAGER
from livevace.models.wan.cache_policy import SinkRing
from livevace.models.wan.config import WAN21_VACE_1_3B, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout, StreamCache, copy_tokens
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.models.wan.sampler import StreamSampler
from livevace.models.wan.uploads import to_device

DEFAULT_ALPHA = 0.999
"""The authors' `compression_alpha`."""


@dataclass(frozen=True)
class EmaSinkWindow(SinkRing):
    """LongLive's slots and visibility (`SinkRing`) with positions relative to the cache: the
    sink at 0…S-1, every other frame at its index minus `sink_shift`, which is how far the
    window has slid past the first W frames, so a chunk's frames always end at position W - 1
    once the window is full. Every slot keeps its un-rotated key (`raw_slot`). `rope_span` is
    unused: positions never grow."""

    def raw_slot(self, frame: int, offset: int) -> int:
        return self.slot(frame)

    def sink_shift(self, start: int, frames: int) -> int:
        return max(0, start + frames - self.window)

    def position(self, frame: int, shift: int) -> int:
        return frame if frame < self.sink else frame - shift


class EmaSinkCache(StreamCache):
    """A `StreamCache` whose `sink_raw` holds the un-rotated key of every slot and whose `k`
    holds them rotated for the current chunk (see the module doc). `alpha`: the EMA weight of
    the sink, read whenever a chunk evicts frames (a live change lands at the next one)."""

    def __init__(self, cfg: WanConfig, layout: CacheLayout, batch: int = 1,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 alpha: float = DEFAULT_ALPHA, rotate: "RotateLayer | None" = None) -> None:
        if not isinstance(layout.policy, EmaSinkWindow) or layout.sink < 1:
            raise ValueError(f"an EMA sink cache needs a sink and the "
                             f"{EmaSinkWindow.__name__} policy, not {layout}")
        super().__init__(cfg, layout, batch, device, dtype)
        self.sink_raw = torch.zeros_like(self.k)
        self.alpha = alpha
        w, (h, gw) = layout.window, layout.grid
        cos, sin = self.rope.cos_sin(range(w), h, gw, self.device)
        self.turns = torch.stack((cos, sin)).view(2, w, layout.frame_tokens, -1)
        """RoPE's cos and sin for the W positions a frame can take [2, W, T, head_dim/2]."""
        self.rotate_layer: RotateLayer = rotate or rotate_keys
        """One layer's rotation (`rotate_keys`, or it compiled: `compiled_rotation`)."""

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"EMA sink alpha {value} outside 0..1")
        self._alpha = float(value)

    def begin_chunk(self, start: int, frames: int | None = None) -> None:
        """Plan the chunk (`StreamCache.begin_chunk`), mix the frames its slots evict into the
        sink, and rotate every other visible frame to its position for this chunk."""
        before = self.slot_frame
        super().begin_chunk(start, frames)
        sink = self.layout.sink
        chunk = range(start, start + self.chunk_frames)
        written = [self.layout.slot(f) for f in chunk]
        self._mix_into_sink([((before[s] - sink) % sink, s) for f, s in zip(chunk, written)
                             if sink <= before[s] < f])
        self._rotate([s for s, f in enumerate(self.slot_frame)
                      if s not in written and self.layout.policy.visible(f, chunk.stop)])

    def _place_sink(self, shift: int) -> None:
        """Positions change with the shift; `begin_chunk` rotates everything kept."""
        self.sink_shift = shift

    def _mix_into_sink(self, pairs: list[tuple[int, int]]) -> None:
        """sink ← α·sink + (1 − α)·evicted for (sink frame, evicted slot) pairs, in order: the
        un-rotated keys and the values of every layer, neighbouring frames in one operation."""
        if self.alpha == 1.0:
            return
        t = self.layout.frame_tokens
        for j, slot, n in runs(pairs):
            for buffer in (self.sink_raw, self.v):
                target = buffer[:, :, :, j * t:(j + n) * t]
                target.mul_(self.alpha).add_(buffer[:, :, :, slot * t:(slot + n) * t],
                                             alpha=1.0 - self.alpha)

    def _rotate(self, slots: list[int]) -> None:
        """Rotate the un-rotated keys of `slots` into `k` at their frames' positions, layer by
        layer (`rotate_layer`)."""
        if not slots:
            return
        positions = torch.tensor([self.position(self.slot_frame[s]) for s in slots])
        cos, sin = self.turns.index_select(1, to_device(positions, self.device)).flatten(1, 2)
        index = to_device(self._token_index(slots), self.device)
        for layer in range(self.cfg.num_layers):
            self.rotate_layer(self.k[layer], self.sink_raw[layer], index, cos, sin)


RotateLayer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                       None]


def rotate_keys(k: torch.Tensor, raw: torch.Tensor, index: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> None:
    """k[:, :, index] ← raw[:, :, index] rotated by RoPE (cos, sin [N, head_dim/2]) in float32,
    channel pairs as complex numbers; k, raw [B, H, tokens, head_dim]."""
    pairs = raw.index_select(2, index).float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    copy_tokens(k, index, torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2))


@functools.cache
def compiled_rotation(backend: str = "inductor") -> RotateLayer:
    """`rotate_keys` under torch.compile (one entry per visible-token count: 3, 6, then 9
    frames' worth; tests pass a quicker `backend`)."""
    return torch.compile(rotate_keys, dynamic=False, backend=backend)


def runs(pairs: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(first sink frame, first slot, length) of the runs in which both count up by one."""
    out: list[list[int]] = []
    for j, slot in pairs:
        if out and (out[-1][0] + out[-1][2], out[-1][1] + out[-1][2]) == (j, slot):
            out[-1][2] += 1
        else:
            out.append([j, slot, 1])
    return [(j, slot, n) for j, slot, n in out]


class EmaSinkSampler(StreamSampler):
    """LongLive's sampler on an `EmaSinkCache`; a prompt cut re-runs nothing (the authors keep
    the cache across a new text: `prompt_switch="none"`)."""

    def recache(self, include_sink: bool = False) -> int:
        return 0


def stream(model: WanDiT, recipe: Recipe, layout: CacheLayout, steps: Sequence[int],
           seed: int) -> EmaSinkSampler:
    """The recipe's `StreamFactory`."""
    w = model.patch_embedding.weight
    rotate = None if model.phases is EAGER else compiled_rotation()
    cache = EmaSinkCache(model.cfg, layout, 1, w.device, w.dtype, rotate=rotate)
    return EmaSinkSampler.from_recipe(model, cache, recipe, steps, seed)


def set_sink_alpha(cache: StreamCache, alpha: float) -> None:
    """The live `ema_sink_alpha` for a stream's cache; a model without an EMA sink has none
    to set. Asked of the cache by its attribute, not its class: on several ranks the cache
    rank 0's pipeline holds is the facade's, which hands the write to every rank's cache."""
    if hasattr(cache, "alpha"):
        cache.alpha = alpha


REWARD_FORCING = Recipe(
    "reward-forcing", WAN21_VACE_1_3B, steps=LONGLIVE.steps, shift=LONGLIVE.shift, warp=True,
    chunk=3, window=9, sink=3, rope_span=None, refine=True, checkpoints=("reward_forcing",),
    cache_policy=EmaSinkWindow, stream=stream, prompt_switch="none")
"""Reward Forcing (Rewarded DMD on Self-Forcing's recipe): LongLive's schedule, a 9-frame
cache with an EMA sink."""
