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
Every pass writes the chunk's own ring slots (the t = 0 pass last, as in `kv_cache`), and its
un-rotated keys into the cache's raw rows (`sink_raw`). A chunk that stages leaves its
candidate there: it is taken once, for every layer at once, before anything writes the cache
again (the next chunk's start, a commit) — its un-rotated key from the raw rows, its value
from its ring slot: what the t = 0 pass left, as the authors' single write. The captured
steps so carry no staging work, and the shapes never change. Bank slots are refilled on the
device at a chunk's start (scores, top-k and gathers with fixed shapes, no host sync); the
host tracks only counts. That refill runs between graph replays, eagerly, so it works on every
layer at once: a score needs only each frame's mean key over its tokens, rotated by the token
grid (RoPE's rotations compose: at frame position p a token's angle is its grid angle plus p
times the frame frequencies), which is taken with the candidate; the kept slots' rotated keys
are gathered as they are, and only the candidate's slot is rotated.

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
from livevace.models.wan.kv_cache import CacheLayout, ChunkPlan, StreamCache
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.models.wan.rope import apply_rope, rotate_layers
from livevace.models.wan.sampler import StreamSampler

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
    keys; the rotated ones and the values live in the bank's slots of `k`/`v`), `bank_mean`
    [layers, B, heads, bank, head_dim] (each slot's key, rotated by the token grid, mean over
    its tokens, float32: what its score needs), `bank_frame` [layers, B, bank] (which frame each
    slot holds, per layer: layers choose apart), `staged_raw`/`staged_v`/`staged_mean` (the
    candidate's, taken after its chunk: `take_candidate`), and the host counts `stagings`
    (candidates staged so far) and `committed`."""

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
        self.bank_mean = torch.zeros(cfg.num_layers, batch, heads, self.bank, hd,
                                     device=self.device)
        self.bank_frame = torch.zeros(cfg.num_layers, batch, self.bank, device=self.device,
                                      dtype=torch.long)
        self.staged_raw = torch.zeros(cfg.num_layers, batch, heads, t, hd, **kw)
        self.staged_v = torch.zeros_like(self.staged_raw)
        self.staged_mean = torch.zeros(cfg.num_layers, batch, heads, hd, device=self.device)
        if self.sink_raw is None:  # kept without a rope span too: the candidate's key is there
            self.sink_raw = self.k.new_zeros(*self.k.shape[:3], (layout.sink + layout.chunk) * t,
                                             hd)
        self.to_take = False
        """A chunk staged its candidate and it is still in the cache's rows (`take_candidate`)."""
        frame_freqs = self.rope.freqs[0]
        self._frame_freqs = torch.cat([frame_freqs, frame_freqs.new_zeros(hd // 2 - len(
            frame_freqs))]).to(self.device)
        self._grid_angles = self.rope.angles([0], *layout.grid).to(self.device)
        self._grid_cos = self._grid_angles.cos().float()
        self._grid_sin = self._grid_angles.sin().float()
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
        self.to_take = False

    def begin_chunk(self, start: int, frames: int | None = None) -> None:
        """A new chunk of the stream (not a recache's replay, nor reference frames written into
        the sink mid-stream) first commits the staged candidate, and stages its own first frame
        if it starts at a multiple of `STAGE_EVERY`."""
        self.take_candidate()  # before any pass writes the cache again
        new = start >= self.frontier
        if new:
            self.frontier = start + (self.layout.chunk if frames is None else frames)
            self.commit_bank()
        self._bank_seen = self.bank_visible = min(self.committed, self.bank)
        super().begin_chunk(start, frames)
        if new and start % STAGE_EVERY == 0:
            self.stagings += 1
            self.staged_frame = start
            self.to_take = True

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
    def take_candidate(self) -> None:
        """Copy the staging chunk's first frame out of the cache, once its passes are done
        (see the module doc): its un-rotated key, its value and its grid-rotated mean key."""
        if not self.to_take:
            return
        self.to_take = False
        t, frame = self.layout.frame_tokens, self.staged_frame
        raw_at, slot_at = self.layout.policy.raw_slot(frame, 0) * t, self.layout.slot(frame) * t
        raw = self.sink_raw[:, :, :, raw_at:raw_at + t]
        self.staged_raw.copy_(raw)
        self.staged_v.copy_(self.v[:, :, :, slot_at:slot_at + t])
        self.staged_mean.copy_(self.grid_mean(raw))

    @torch.no_grad()
    def commit_bank(self) -> None:
        """Move the staged candidate into the bank (a free slot, or compression when full)."""
        self.take_candidate()
        n = self.stagings
        if n == 0 or (n <= self.bank and self.committed == n):
            return  # nothing staged, or already in (the authors rewrite the same data)
        slot = min(n, self.bank) - 1
        if n > self.bank:
            self._compress()
        self._frames(self.bank_raw)[:, :, :, slot] = self.staged_raw
        self._frames(self.v[:, :, :, self.bank_tokens])[:, :, :, slot] = self.staged_v
        self.bank_mean[:, :, :, slot] = self.staged_mean
        self.bank_frame[:, :, slot] = self.staged_frame
        self.committed = n
        self._place_bank(slice(slot, slot + 1))

    def grid_mean(self, raw: torch.Tensor) -> torch.Tensor:
        """[..., head_dim] float32: one frame's un-rotated keys [..., frame tokens, head_dim]
        rotated by the token grid (frame position 0), mean over the tokens."""
        return apply_rope(raw.float(), self._grid_cos, self._grid_sin).mean(dim=-2)

    def scores(self) -> torch.Tensor:
        """[layers, B, bank] each bank frame's score against the prompt: the mean over text
        tokens, heads and frame tokens of (text K · frame K)/√d, keys at their own positions
        (the grid-rotated mean key turned by the frame's own position: rotations compose)."""
        layers, hd = self.cfg.num_layers, self.cfg.head_dim
        cos, sin = self._bank_rope(self.bank_frame, tokens=False)
        keys = apply_rope(self.bank_mean, cos, sin)  # [layers, B, heads, bank, head_dim]
        text = self.text_k[:layers].float().mean(dim=3)  # mean over text tokens
        return torch.einsum("lbhd,lbhsd->lbs", text, keys) / (keys.shape[2] * hd**0.5)

    def _compress(self) -> None:
        """Keep each layer's best `bank - 1` frames (best first); the candidate then takes the
        last slot (`commit_bank`)."""
        keep = self.bank - 1
        best = self.scores().topk(keep, dim=-1).indices  # [layers, B, keep]
        by_slot = best[:, :, None, :]
        bank = self.bank_tokens
        for frames in (self._frames(self.bank_raw), self._frames(self.k[:, :, :, bank]),
                       self._frames(self.v[:, :, :, bank]), self.bank_mean):
            index = by_slot.reshape(*by_slot.shape, *(1,) * (frames.dim() - 4))
            frames[:, :, :, :keep] = frames.gather(3, index.expand(
                *frames.shape[:3], keep, *frames.shape[4:]))
        self.bank_frame[:, :, :keep] = self.bank_frame.gather(2, best)

    def _frames(self, tokens: torch.Tensor) -> torch.Tensor:
        """[layers, B, heads, bank·T, head_dim] → a view [..., bank, T, head_dim]."""
        return tokens.unflatten(3, (self.bank, self.layout.frame_tokens))

    def _place_sink(self, shift: int) -> None:
        super()._place_sink(shift)
        self._place_bank()

    def _place_bank(self, slots: slice = slice(None)) -> None:
        """Rotate the keys of the bank's `slots` at max(frame, sink shift) (see the module doc),
        every layer."""
        if not self.committed:
            return
        at = self.bank_frame[:, :, slots].clamp_min(self.sink_shift)
        cos, sin = self._bank_rope(at)
        keys = self._frames(self.k[:, :, :, self.bank_tokens])[:, :, :, slots]
        raw = self._frames(self.bank_raw)[:, :, :, slots]
        rotate_layers(keys.flatten(3, 4), raw.flatten(3, 4), cos, sin)

    def _bank_rope(self, positions: torch.Tensor, tokens: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) for frames at `positions` [..., frames], on the device, the host not
        knowing them: [..., 1, frames·T, head_dim/2] for their tokens (the same float64 angles
        as `Rope.angles`), or without `tokens` the frame turn alone, [..., 1, frames,
        head_dim/2]."""
        angles = positions.double()[..., None] * self._frame_freqs
        if tokens:
            angles = (angles[..., None, :] + self._grid_angles).flatten(-3, -2)
        angles = angles.unsqueeze(-3)
        return angles.cos().float(), angles.sin().float()


class MemoryBankSampler(StreamSampler):
    """`StreamSampler` on a `MemoryBankCache`: a recache commits the candidate first (the authors'
    recache does), and warming up runs to the first compression."""

    cache: MemoryBankCache

    @torch.no_grad()
    def recache(self, include_sink: bool = False) -> int:
        if self.cache.chunk_start is not None:
            self.cache.commit_bank()
        return super().recache(include_sink)

    def steady_after(self) -> int:
        """The chunk of the first compression (the candidate staged after the bank filled
        meets a full bank): from there every chunk compresses, and that eager work's first
        run (its kernels loaded, its memory found) happens while preparing, not in the show."""
        lay, bank = self.cache.layout, self.cache.bank
        return max(super().steady_after(), -(-(STAGE_EVERY * bank + 1) // lay.chunk))


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
