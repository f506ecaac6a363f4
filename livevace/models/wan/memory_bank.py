"""MemFlow's memory bank: LongLive's sink + ring with a few frames of long-term memory that the
prompt chooses, as a cache policy and a stream factory (the `MEMFLOW` recipe).

Facts (the authors' interactive inference and long-video training; KlingTeam/MemFlow):

- A chunk attends to [sink | bank | window]: the 3-frame sink (the first chunk, kept across
  prompt switches), up to 3 bank frames, and the last 9 frames up to the chunk's end (itself
  included) — LongLive's 12-frame window plus the bank.
- Only the t = 0 pass writes: the chunk's K/V go into the window, and a chunk starting at a
  multiple of 9 frames (every third 3-frame chunk) *stages* its first frame's K/V as the bank's
  candidate. A staged frame enters the bank at the start of the next chunk, before its first
  pass: into the next free slot while the bank has one (the bank so grows by one frame every
  third chunk; a chunk sees exactly the slots filled so far), otherwise by *compression*:
  per layer, each bank frame is scored against the prompt, mean over text tokens, heads and
  frame tokens of (text K · frame K)/√d with that layer's cached text K, the two best stay
  (best first) and the staged frame takes the last slot. Once the bank is full this repeats at
  every chunk start with the same candidate until the next one is staged, as the authors do
  (a candidate that scores among the best so can hold several slots). The first candidate is
  frame 0, which the sink holds too. 1-frame chunks follow the same rules counted in frames.
- Bank keys are rotated at their frame's own position (they are stored rotated there).
- A prompt switch keeps the sink and the bank, commits the candidate, and re-runs the window
  at t = 0 with the new text (LongLive's recache, here chunk by chunk as `StreamSampler` does,
  the bank visible).

Departures, each on purpose: the authors' code assumes 1560 tokens per frame (832×480); here
every size works. After a switch they zero the cross-attention cache before the compressions of
the recache and of the next chunk, so those score all frames 0 and keep whichever the tie falls
on; here the scores use the new prompt, as the compression intends. Their recache lets the
re-run frames attend to each other both ways; here each re-run chunk sees the ones before it.
Their plain (non-interactive) inference script stages every chunk; the interactive script and
the long-video training stage every ninth frame, which this follows.

Layout: the cache has `window` slots = the sink + ring (`SinkRing` over the first
window - `BANK_FRAMES` slots) followed by the bank's slots, so the steady state (everything
visible) attends over the whole buffer with no mask and replays as a CUDA graph; so do the
chunks once the ring has filled. Only a fresh stream's second and third chunks need a mask.
Every pass writes the chunk's own ring slots (the t = 0 pass last, as in `kv_cache`) and, in a
chunk that stages, the candidate: what the t = 0 pass leaves is what the authors' single
write leaves, and the shapes never change. Bank slots are refilled on the device at a chunk's
start (scores, top-k and gathers with fixed shapes, no host sync); the host tracks only counts.

Long runs (`rope_span`): once the sink slides along (see `kv_cache`), a bank frame is placed at
max(its frame, the sink's first position), re-rotated from its kept un-rotated key, so no key
is ever further from the chunk than the sink; the compression scores frames at their own
positions, as the authors' would.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from livevace.models.wan.cache_policy import SinkRing
from livevace.models.wan.config import WAN21_VACE_1_3B, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheKV, CacheLayout, ChunkPlan, StreamCache
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.models.wan.rope import apply_rope
from livevace.models.wan.sampler import StreamSampler
from livevace.models.wan.uploads import upload

BANK_FRAMES = 3
"""Frames of long-term memory (the authors' `bank_size`)."""
STAGE_EVERY = 9
"""A chunk starting at a multiple of this many frames stages a candidate (`record_interval` 3
of their 3-frame chunks)."""


def bank_ring(window: int, sink: int, rope_span: int | None) -> SinkRing:
    """The policy of a `window`-slot layout whose last `BANK_FRAMES` slots are the bank: LongLive's
    sink + ring over the others (the bank's slots are the cache's to fill)."""
    return SinkRing(window - BANK_FRAMES, sink, rope_span)


class MemoryBankCache(StreamCache):
    """`StreamCache` plus the bank (see the module doc). Extra state: `bank_raw` (un-rotated bank
    keys; the rotated ones and the values live in the bank's slots of `k`/`v`), `bank_frame`
    [layers, B, bank] (which frame each slot holds, per layer: layers choose apart),
    `staged_raw`/`staged_v` (the candidate's un-rotated key and value; `staging`: whether this
    chunk's passes replace them), and the host counts `stagings` (candidates staged so far)
    and `committed`."""

    def __init__(self, cfg: WanConfig, layout: CacheLayout, batch: int = 1,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        super().__init__(cfg, layout, batch, device, dtype)
        ring = layout.policy
        if not isinstance(ring, SinkRing) or layout.window - ring.window < 2:
            raise ValueError("a memory bank cache needs the bank_ring policy")
        if layout.chunk > ring.window - ring.sink:
            raise ValueError(f"a chunk of {layout.chunk} frames does not fit the ring's "
                             f"{ring.window - ring.sink} slots")
        self.bank = layout.window - ring.window
        t, heads, hd = layout.frame_tokens, cfg.num_heads, cfg.head_dim
        self.bank_tokens = slice(ring.window * t, layout.window * t)
        kw = dict(device=self.device, dtype=dtype)
        self.bank_raw = torch.zeros(cfg.num_layers, batch, heads, self.bank * t, hd, **kw)
        self.bank_frame = torch.zeros(cfg.num_layers, batch, self.bank, device=self.device,
                                      dtype=torch.long)
        self.staged_raw = torch.zeros(cfg.num_layers, batch, heads, t, hd, **kw)
        self.staged_v = torch.zeros_like(self.staged_raw)
        self.staging = torch.zeros((), device=self.device, dtype=torch.bool)
        frame_freqs = self.rope.freqs[0]
        self._frame_freqs = torch.cat([frame_freqs, frame_freqs.new_zeros(hd // 2 - len(
            frame_freqs))]).to(self.device)
        self._grid_angles = self.rope.angles([0], *layout.grid).to(self.device)
        self.stagings = self.committed = 0
        self.staged_frame = 0
        self.bank_visible = 0
        """Bank slots the current chunk sees (the first ones)."""
        self._bank_seen = 0
        """Bank slots the chunk being planned sees."""
        self.frontier = 0
        """The end of the stream's newest chunk: a chunk starting before it is a replay."""

    # ----------------------------------------------------------------- host bookkeeping
    def reset(self) -> None:
        super().reset()
        self.stagings = self.committed = self.bank_visible = self._bank_seen = self.frontier = 0

    def begin_chunk(self, start: int, frames: int | None = None) -> None:
        """A new chunk of the stream (not a recache's replay, nor reference frames written into
        the sink mid-stream) first commits the staged candidate, and stages its own first frame
        if it starts at a multiple of `STAGE_EVERY`."""
        new = start >= self.frontier
        if new:
            self.frontier = start + (self.layout.chunk if frames is None else frames)
            self.commit_bank()
        self._bank_seen = self.bank_visible = min(self.committed, self.bank)
        super().begin_chunk(start, frames)
        stage = new and start % STAGE_EVERY == 0
        if stage:
            self.stagings += 1
            self.staged_frame = start
        upload(self.staging, torch.tensor(stage))

    def plan_ahead(self, start: int) -> None:
        self._bank_seen = min(self.stagings, self.bank)  # what that chunk's commit will show
        super().plan_ahead(start)

    def _key(self, start: int, n: int) -> tuple:
        return (*super()._key(start, n), self._bank_seen)

    def _plan(self, start: int, n: int) -> ChunkPlan:
        """The ring's plan with the first `_bank_seen` bank slots visible too."""
        plan = super()._plan(start, n)
        t = self.layout.frame_tokens
        seen = slice(self.bank_tokens.start, self.bank_tokens.start + self._bank_seen * t)
        allowed, without = plan.tables[2:4]
        allowed[:, seen] = True
        without[:, seen] = True
        slots = allowed[0, ::t].tolist()
        count = sum(slots)
        return replace(plan, all_visible=all(slots),
                       visible_prefix=count if all(slots[:count]) else None)

    # --------------------------------------------------------------------- device side
    @torch.no_grad()
    def commit_bank(self) -> None:
        """Move the staged candidate into the bank (a free slot, or compression when full)."""
        n = self.stagings
        if n == 0 or (n <= self.bank and self.committed == n):
            return  # nothing staged, or already in (the authors rewrite the same data)
        t = self.layout.frame_tokens
        if n <= self.bank:
            rows = slice((n - 1) * t, n * t)
            self.bank_raw[:, :, :, rows] = self.staged_raw
            self.v[:, :, :, self.bank_tokens][:, :, :, rows] = self.staged_v
            self.bank_frame[:, :, n - 1] = self.staged_frame
        else:
            for layer in range(self.cfg.num_layers):
                self._compress(layer)
        self.committed = n
        self._place_bank()

    def scores(self, layer: int) -> torch.Tensor:
        """[B, bank] each bank frame's score against the prompt in `layer`: the mean over text
        tokens, heads and frame tokens of (text K · frame K)/√d, keys at their own positions."""
        t, hd = self.layout.frame_tokens, self.cfg.head_dim
        cos, sin = self._bank_rope(self.bank_frame[layer])
        keys = apply_rope(self.bank_raw[layer], cos, sin).float().unflatten(2, (self.bank, t))
        text = self.text_k[layer].float().mean(dim=2)  # mean over text tokens [B, H, D]
        per_head = torch.einsum("bhd,bhsd->bhs", text, keys.mean(dim=3))
        return per_head.mean(dim=1) / hd**0.5

    def _compress(self, layer: int) -> None:
        """Keep the bank's best `bank - 1` frames of `layer` (best first), then the candidate."""
        t, keep = self.layout.frame_tokens, self.bank - 1
        best = self.scores(layer).topk(keep, dim=1).indices  # [B, keep]
        by_frame = best[:, None, :, None, None]
        for bank, staged in ((self.bank_raw[layer], self.staged_raw[layer]),
                             (self.v[layer][:, :, self.bank_tokens], self.staged_v[layer])):
            frames = bank.unflatten(2, (self.bank, t))
            kept = frames.gather(2, by_frame.expand(*frames.shape[:2], keep, *frames.shape[3:]))
            frames[:, :, :keep] = kept
            frames[:, :, keep] = staged
        which = self.bank_frame[layer]
        which[:, :keep] = which.gather(1, best)
        which[:, keep] = self.staged_frame

    def _place_sink(self, shift: int) -> None:
        super()._place_sink(shift)
        self._place_bank()

    def _place_bank(self) -> None:
        """Rotate the bank keys into their slots at max(frame, sink shift) (see the module doc)."""
        if not self.committed:
            return
        at = self.bank_frame.clamp_min(self.sink_shift)
        for layer in range(self.cfg.num_layers):
            cos, sin = self._bank_rope(at[layer])
            self.k[layer, :, :, self.bank_tokens] = apply_rope(self.bank_raw[layer], cos, sin)

    def _bank_rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) [B, 1, bank·T, head_dim/2] for bank frames at `positions` [B, bank], on the
        device: the same float64 angles as `Rope.angles`, built without the host knowing them."""
        frame = positions.double()[:, :, None, None] * self._frame_freqs
        angles = (self._grid_angles + frame).flatten(1, 2)[:, None]
        return angles.cos().float(), angles.sin().float()

    def writer(self, write: bool = True) -> "BankKV":
        return BankKV(super().writer(write))


class BankKV:
    """The cache writer plus the candidate: in a chunk that stages, its first frame's un-rotated
    key and value (selected on the device, so one captured graph serves both kinds of chunk)."""

    def __init__(self, inner: CacheKV) -> None:
        self.inner = inner

    def __call__(self, layer: int, k_raw: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        out = self.inner(layer, k_raw, k, v)
        if self.inner.write:
            c: MemoryBankCache = self.inner.cache  # type: ignore[assignment]
            t = c.layout.frame_tokens
            for staged, new in ((c.staged_raw[layer], k_raw), (c.staged_v[layer], v)):
                staged.copy_(torch.where(c.staging, new[:, :, :t].to(staged.dtype), staged))
        return out


class MemoryBankSampler(StreamSampler):
    """`StreamSampler` on a `MemoryBankCache`: a recache commits the candidate first (the authors'
    recache does), and warming up runs until the bank is full."""

    cache: MemoryBankCache

    @torch.no_grad()
    def recache(self, include_sink: bool = False) -> int:
        if self.cache.chunk_start is not None:
            self.cache.commit_bank()
        return super().recache(include_sink)

    def steady_after(self) -> int:
        lay, bank = self.cache.layout, self.cache.bank
        return max(super().steady_after(), -(-(STAGE_EVERY * (bank - 1) + 1) // lay.chunk))


def stream(model: WanDiT, recipe: Recipe, layout: CacheLayout, steps: Sequence[int],
           seed: int) -> MemoryBankSampler:
    """The recipe's `StreamFactory`: a memory-bank cache on the model's device and dtype."""
    w = model.patch_embedding.weight
    cache = MemoryBankCache(model.cfg, layout, 1, w.device, w.dtype)
    return MemoryBankSampler.from_recipe(model, cache, recipe, steps, seed)


MEMFLOW = Recipe("memflow", WAN21_VACE_1_3B, steps=LONGLIVE.steps, shift=LONGLIVE.shift,
                 warp=True, chunk=3, window=LONGLIVE.window + BANK_FRAMES, sink=3,
                 rope_span=1024, refine=True, checkpoints=("memflow_base", "memflow_lora"),
                 cache_policy=bank_ring, stream=stream, prompt_switch="recache")
"""MemFlow: LongLive's recipe with a memory bank (window: the 12-frame sink + window and the
bank's slots); base + LoRA (rank 256, α 256 on every Linear of each block), merged at load."""
