"""StreamDiffusionV2: one latent frame per call, a stream batch of one row per denoising step,
and a per-row ring cache with an adaptive sink.

The facts, from the authors' code (github chenfengxu714/StreamDiffusionV2, 2026:
`causal_stream_inference.py`, `causal_model.py`, `streamv2v/inference.py`; Daydream Scope's
older port with its rolling cache is not followed):

- Steps: the first N of (700, 500, 400, 200), raw (not warped), shift 8; σ from the table
  entry nearest to t. Video-to-video's first step is the motion-aware one
  (`pipelines.vace.motion`): row 0 runs at it, the other rows at their own steps.
- Stream batch: B = N rows, one forward over all of them. Row r holds the frame that
  entered r calls ago, at step r. After the forward, row r's x0 is re-noised to step r + 1
  and moves down one row at the next call, while a new frame enters row 0; the last row's x0
  is finished. A frame therefore comes out B − 1 calls after it went in.
- Filling (the authors' `prepare`): the first call of a stream denoises its frame through all
  steps (the first one the call's, as for every new frame) at once, the same in every row, so
  every row's cache starts with it, and returns it.
  The rows then wait, empty (zero latents), at the next frame's position and run along with
  the others until real frames reach them; what they write sits at that position and is
  overwritten when the real frame gets there. Until the first streamed frame reaches the last
  row (B − 1 calls) the first frame is returned again: the authors emit nothing then.
- Cache, per row and attention layer: W = 6 slots of one frame each, the first S = 3 the
  sink. Keys are cached rotated at their frame's position and never re-rotated. There is no
  clean t = 0 write: a row caches its frames at its own noise level. While a row fills, its
  frame goes to the slot after the row's filled ones, or over the last one when its position
  did not advance (the empty rows' wait); it attends to the filled slots. Once a frame would
  end past slot W, the slot written is the head of the row's eviction order: the rolling
  slots S…W−1 first in FIFO order (a taken one goes to the back), preceded by the sink slots
  the adaptive sink moved to the front, newest first (a taken sink slot is not queued again).
- Adaptive sink (before the write; not on the first call, whose frame the authors run as a
  multi-frame chunk that skips it): the frame's mean key (rotated, over its tokens, all
  heads as one vector) and mean value; per sink slot the cosine similarity of those to the
  slot's frame's, keys' and values' averaged; if the lowest is below 0.2 that slot goes to
  the front of the eviction order. A sink slot never written holds zeros (similarity 0), as
  in the authors' code: during the fill the empty sink slots are so queued, and the first
  evictions of the full cache put the fill's later frames there.
- RoPE refresh: a frame that would start at position 50 or later starts at W − 1 = 5.
- A pipeline chunk of C latent frames is C calls, one frame each (the authors' server loops
  over the latent frames it receives the same way).

On the device: the eviction order is, per layer and row, a stack of queued sink slots plus a
pointer into the ring, and each sink slot's mean K/V are kept beside it (`EvictionOrder`). The
forward reads the order and means and writes their next state into a second buffer that
`commit` makes current after the forward, so the forward has no host sync, fixed shapes, and
gives the same result when run again (a CUDA graph's warm-up runs). Host bookkeeping (row
positions, filled slots, the attention mask while filling) is known before each forward and
uploaded. Once every row is full the forward attends without a mask: the steady state one
CUDA graph replays.

    sampler = zoo.open_stream(STREAMDIFFUSIONV2, model, h, w, 1, steps, seed)
    x0 = sampler.generate_chunk(init=noised_input, timesteps=[first])  # [1, 16, 1, h, w]
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from livevace.errors import UserError
from livevace.models.wan.config import TINY_VACE_14B, WAN21_VACE_1_3B, WAN21_VACE_14B, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout, StreamCache
from livevace.models.wan.recipe import Recipe
from livevace.models.wan.sampler import StreamSampler
from livevace.models.wan.uploads import to_device, upload
from livevace.models.wan.vace import PassKind

STEPS = (700, 500, 400, 200)
"""The step list; a run uses the first N (video-to-video drops the authors' final 0)."""
ADAPT_THRESHOLD = 0.2
"""Cosine similarity below which the adaptive sink replaces a sink frame."""
REFRESH_AT = 50
"""A frame that would start at this position starts at window − 1 instead."""


class EvictionOrder:
    """Per layer and row, on the device: the sink slots queued at the front of the eviction
    order (a stack, newest on top), the next rolling slot (a pointer into S…W−1), and the mean
    K and V of each sink slot's frame. Index 0 of every buffer is the state, index 1 the next
    state a forward writes; `commit` makes it the state."""

    def __init__(self, layers: int, rows: int, window: int, sink: int, width: int,
                 device: torch.device) -> None:
        self.window, self.sink = window, sink
        # a row pushes at most once per call and, once full, takes once per call: its stack
        # is deepest when it turns full, after at most window + rows - 2 filling calls
        self.capacity = window + rows
        long = dict(device=device, dtype=torch.long)
        self.stack = torch.zeros(2, layers, rows, self.capacity, **long)
        self.depth = torch.zeros(2, layers, rows, **long)
        self.ring = torch.zeros(2, layers, rows, **long)
        self.means = torch.zeros(2, layers, rows, 2, sink, width, device=device)
        self.sink_index = torch.arange(sink, device=device)

    def buffers(self) -> tuple[torch.Tensor, ...]:
        return self.stack, self.depth, self.ring, self.means

    def reset(self) -> None:
        for buffer in self.buffers():
            buffer.zero_()

    def commit(self) -> None:
        for buffer in self.buffers():
            buffer[0].copy_(buffer[1])

    def take(self, layer: int, mean_k: torch.Tensor, mean_v: torch.Tensor,
             evicts: torch.Tensor, fill_slot: torch.Tensor, check: bool) -> torch.Tensor:
        """The slot [rows] each row writes its frame (mean K/V [rows, H·D]) into: `fill_slot`
        for a filling row, the head of its eviction order for an evicting one (`check`: the
        adaptive sink first)."""
        stack, depth, ring, means = (b[0, layer] for b in self.buffers())
        if check and self.sink:
            similarity = (F.cosine_similarity(means[:, 0], mean_k[:, None], dim=-1)
                          + F.cosine_similarity(means[:, 1], mean_v[:, None], dim=-1)) / 2
            fire = similarity.min(dim=1).values < ADAPT_THRESHOLD
            top = depth.clamp(max=self.capacity - 1)[:, None]
            pushed = torch.where(fire[:, None], similarity.argmin(dim=1, keepdim=True),
                                 stack.gather(1, top))
            stack = stack.scatter(1, top, pushed)
            depth = (depth + fire.long()).clamp(max=self.capacity)
        queued = depth > 0
        head = stack.gather(1, (depth - 1).clamp(min=0)[:, None])[:, 0]
        slot = torch.where(evicts, torch.where(queued, head, self.sink + ring), fill_slot)
        rolled = evicts & ~queued
        written = (slot[:, None] == self.sink_index)[:, None, :, None]
        fresh = torch.stack([mean_k, mean_v], dim=1)[:, :, None]
        for buffer, value in zip(self.buffers(), (
                stack, depth - (evicts & queued).long(),
                torch.where(rolled, (ring + 1) % (self.window - self.sink), ring),
                torch.where(written, fresh, means))):
            buffer[1, layer].copy_(value)
        return slot


class StreamBatchCache(StreamCache):
    """Per-row ring caches of a stream batch (see the module doc). `k`, `v` are
    [layers, rows, H, W·T, D]; `batch` is the stream's own batch, one video."""

    def __init__(self, cfg: WanConfig, layout: CacheLayout, rows: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        super().__init__(cfg, layout, rows, device, dtype)
        self.batch, self.rows = 1, rows
        w, t = layout.window, layout.frame_tokens
        self.order = EvictionOrder(cfg.num_layers, rows, w, layout.sink, cfg.dim, self.device)
        cos, sin = self.rope.cos_sin(range(REFRESH_AT), *layout.grid, self.device)
        self.cos_table, self.sin_table = cos.unflatten(0, (REFRESH_AT, t)), sin.unflatten(
            0, (REFRESH_AT, t))
        long = dict(device=self.device, dtype=torch.long)
        self.row_position = torch.zeros(rows, **long)
        self.row_evicts = torch.zeros(rows, device=self.device, dtype=torch.bool)
        self.fill_slot = torch.zeros(rows, **long)
        self.row_allowed = torch.ones(rows, 1, 1, w * t, device=self.device, dtype=torch.bool)
        self.token_offsets = torch.arange(t, **long)
        self.check = False
        self.reset()

    def reset(self) -> None:
        """Forget every frame (the text K/V stay): the next call starts a new stream."""
        super().reset()
        self.order.reset()
        self.frames_in = 0
        self.next_position = 0
        self.positions = [0] * self.rows
        self.filled = [0] * self.rows
        self.ends = [0] * self.rows

    @property
    def next_frame(self) -> int:
        """Frames that entered the stream: the index of the next one (noise keys)."""
        return self.frames_in

    # ----------------------------------------------------------------- host bookkeeping
    def begin_prepare(self) -> None:
        """Plan one forward of the first call: its frame in every row at position 0."""
        self.positions = [0] * self.rows
        self._plan(check=False)

    def prepared(self) -> None:
        """The first frame is in: the rows wait at the next frame's position."""
        self.frames_in, self.next_position = 1, 1
        self.positions = [1] * self.rows

    def enter(self) -> None:
        """A new frame enters row 0 (at the next position, refreshed at REFRESH_AT), the
        others move down one; plan the call's forward."""
        position = self.next_position
        if position >= REFRESH_AT:
            position = self.layout.window - 1
        self.positions = [position] + self.positions[:-1]
        self.next_position = position + 1
        self.frames_in += 1
        self._plan(check=True)

    def _plan(self, check: bool) -> None:
        """Where each row writes (the authors' local and global end bookkeeping), the mask
        while rows fill, and the positions; uploaded for the next forward."""
        w = self.layout.window
        evicting, fill = [], []
        for r, position in enumerate(self.positions):
            end = position + 1
            evicts = end > w or self.filled[r] >= w
            if evicts:
                self.filled[r] = w
            else:
                self.filled[r] += end - self.ends[r]
                if not 1 <= self.filled[r] <= w:
                    raise RuntimeError(f"row {r} at position {position} after {self.ends[r]}")
            evicting.append(evicts)
            fill.append(self.filled[r] - 1)
            self.ends[r] = end
        self.check = check
        every = all(f == w for f in self.filled)
        self.visible_prefix = w if every else None
        self._all_visible = every
        self.chunk_start, self.chunk_frames = self.frames_in, 1
        upload(self.row_position, torch.tensor(self.positions))
        upload(self.row_evicts, torch.tensor(evicting))
        upload(self.fill_slot, torch.tensor(fill))
        if not every:
            seen = torch.arange(w)[None] < torch.tensor(self.filled)[:, None]
            upload(self.row_allowed, seen.repeat_interleave(self.layout.frame_tokens, 1)[
                :, None, None])

    def begin_chunk(self, start: int, frames: int | None = None) -> None:
        raise UserError("streamdiffusionv2 takes no reference images (its sink is its own "
                        "frames)")

    def plan_ahead(self, start: int) -> None:
        """Nothing to plan ahead: `enter` uploads a few integers."""

    # ------------------------------------------------------------------------ step side
    @property
    def rope_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [rows, 1, T, D/2]: each row at its own position."""
        return self.cos_table[self.row_position][:, None], self.sin_table[self.row_position][
            :, None]

    def mask(self) -> torch.Tensor | None:
        return None if self.visible_prefix is not None else self.row_allowed

    def writer(self, write: bool = True) -> "RowRingKV":
        if not write:
            raise ValueError("the stream batch's forwards always write the cache")
        if self.chunk_start is None:
            raise RuntimeError("enter() or begin_prepare() before the first forward")
        return RowRingKV(self)

    def commit(self) -> None:
        """After each forward: the eviction order and sink means it wrote become current."""
        self.order.commit()


class RowRingKV:
    """Writes each row's frame into its slot (see `EvictionOrder.take`) and returns the rows'
    caches to attend over."""

    def __init__(self, cache: StreamBatchCache) -> None:
        self.cache, self.mask, self.check = cache, cache.mask(), cache.check

    def __call__(self, layer: int, k_raw: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        c = self.cache
        keys, values = c.k[layer], c.v[layer]
        k, v = k.to(keys.dtype), v.to(values.dtype)
        mean_k, mean_v = (x.float().mean(dim=2).flatten(1) for x in (k, v))
        slot = c.order.take(layer, mean_k, mean_v, c.row_evicts, c.fill_slot, self.check)
        tokens = slot[:, None] * c.layout.frame_tokens + c.token_offsets
        index = tokens[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
        keys.scatter_(2, index, k)
        values.scatter_(2, index, v)
        return keys, values, self.mask


class StreamBatchSampler(StreamSampler):
    """The stream batch over a `StreamBatchCache`: `generate_chunk` takes one frame in and
    returns one finished frame, the one that entered B − 1 calls before (see the module doc).
    The number of steps is the number of rows, fixed for the sampler's life."""

    cache: StreamBatchCache

    def __init__(self, model: WanDiT, cache: StreamBatchCache, steps: Sequence[int], seed: int,
                 shift: float) -> None:
        super().__init__(model, cache, steps, seed, shift=shift, warp=False, refine=False)
        lay, cfg, dev = cache.layout, model.cfg, cache.device
        self.in_flight = torch.zeros(cache.rows, cfg.in_channels, 1, lay.height, lay.width,
                                     device=dev)
        """x_t of each row's frame, at its row's step."""
        self.row_contexts = (torch.zeros(cache.rows, cfg.vace_in_channels, 1, lay.height,
                                         lay.width, device=dev) if cfg.has_vace else None)
        """Each row's frame's VACE context (zeros for a frame that entered without one)."""
        self.finished: torch.Tensor | None = None
        self.calls = 0
        """Calls since the first (prepared) frame."""

    def set_steps(self, steps: Sequence[int]) -> None:
        """New step values; their number is the cache's rows and cannot change."""
        steps = tuple(int(s) for s in steps)
        rows = self.cache.rows
        if len(steps) != rows:
            raise UserError(f"streamdiffusionv2 runs one batch row per step: this stream has "
                            f"{rows} steps, so it cannot run {len(steps)}; start a new one")
        super().set_steps(steps)

    def reset(self) -> None:
        super().reset()
        self.finished, self.calls = None, 0

    def recache(self, include_sink: bool = False) -> int:
        """Nothing to re-run: the rows cache noisy frames, and every row takes the new text at
        its next forward."""
        return 0

    def forward_pass(self, x: torch.Tensor, t: float, vace: torch.Tensor | None,
                     kind: PassKind) -> torch.Tensor:
        raise UserError("streamdiffusionv2 takes no reference images (its sink is its own "
                        "frames)")

    def steady_after(self) -> int:
        """Every row is full from the frame after the prepared one and W + B − 2 more (the
        last row's frames lag B − 1 behind the new ones)."""
        lay = self.cache.layout
        return -(-(lay.window + self.cache.rows - 1) // lay.chunk)

    @torch.no_grad()
    def generate_chunk(self, vace: torch.Tensor | None = None, init: torch.Tensor | None = None,
                       timesteps: Sequence[float] | None = None) -> torch.Tensor:
        """Put the chunk's C = layout.chunk frames in, one stream-batch call each (as the
        authors' server loops over the latent frames it receives), and take as many finished
        ones out: x0 [1, 16, C, h, w], each the frame that went in B − 1 calls before.

        `init`: the new frames' x_t (default: seeded noise); `timesteps`: only its first entry
        is used, row 0's step (video-to-video's motion-aware start); the other rows keep
        theirs. `vace` [1, C_vace, C, h, w]: the new frames' context; a call without one runs
        every row without VACE.
        """
        cache, lay = self.cache, self.cache.layout
        frame = cache.next_frame
        shape = (1, self.model.cfg.in_channels, lay.chunk, lay.height, lay.width)
        x = self.noise(frame, 0, shape) if init is None else init.float()
        first = float((self.timesteps if timesteps is None else timesteps)[0])
        out = []
        for j in range(lay.chunk):
            ctx = None if vace is None else vace[:, :, j:j + 1]
            step = self._prepare if cache.next_frame == 0 else self._advance
            out.append(step(x[:, :, j:j + 1], first, ctx))
        self._draw_ahead(frame + lay.chunk, shape)
        return torch.cat(out, dim=2)

    def _prepare(self, x: torch.Tensor, first: float, vace: torch.Tensor | None
                 ) -> torch.Tensor:
        """The first frame through every step, the same in every row."""
        cache, n = self.cache, self.cache.rows
        ts = [first, *self.timesteps[1:]]
        x = x.expand(n, -1, -1, -1, -1)
        ctx = None if vace is None else vace.expand(n, -1, -1, -1, -1)
        for i, t in enumerate(ts):
            cache.begin_prepare()
            x0 = x - self._sigmas([t] * n) * self._forward(x, [t] * n, ctx)
            if i + 1 < len(ts):
                s = self.schedule.nearest_sigma(ts[i + 1])
                x = (1 - s) * x0 + s * self.noise(0, i + 1, x0[:1].shape)
        cache.prepared()
        self.in_flight.zero_()
        if self.row_contexts is not None:
            self.row_contexts.zero_()
        self.finished = x0[:1].clone()
        return self.finished

    def _advance(self, x: torch.Tensor, first: float, vace: torch.Tensor | None
                 ) -> torch.Tensor:
        """One stream-batch call: shift the rows, one forward, re-noise each row to the next
        row's step."""
        cache, n = self.cache, self.cache.rows
        frame = cache.next_frame
        cache.enter()
        self.in_flight[1:] = self.in_flight[:-1].clone()
        self.in_flight[0] = x[0]
        ctx = None
        if self.row_contexts is not None:
            self.row_contexts[1:] = self.row_contexts[:-1].clone()
            self.row_contexts[0] = 0 if vace is None else vace[0]
            ctx = None if vace is None else self.row_contexts
        ts = [first, *self.timesteps[1:]]
        x0 = self.in_flight - self._sigmas(ts) * self._forward(self.in_flight, ts, ctx)
        if n > 1:
            s = self._sigmas(self.timesteps[1:])
            eps = self.noise(frame, 1, (n - 1, *x0.shape[1:]))
            self.in_flight[:-1] = (1 - s) * x0[:-1] + s * eps
        self.calls += 1
        if self.calls >= n:  # the first streamed frame has reached the last row
            self.finished = x0[-1:].clone()
        return self.finished

    def _forward(self, x: torch.Tensor, ts: Sequence[float], vace: torch.Tensor | None
                 ) -> torch.Tensor:
        """One forward of every row, each at its own timestep; commits the cache's order."""
        t = to_device(torch.tensor(ts, dtype=torch.float32)[:, None], self.cache.device)
        vace, scale = self.hints("generation", vace)
        flow = self.model(x, t, self.cache, vace=vace, hint_scale=scale)
        self.cache.commit()
        return flow

    def _sigmas(self, ts: Sequence[float]) -> torch.Tensor:
        """σ of each row's timestep (the table's nearest entry), [rows, 1, 1, 1, 1]."""
        sigmas = torch.tensor([self.schedule.nearest_sigma(t) for t in ts], dtype=torch.float32)
        return to_device(sigmas.view(-1, 1, 1, 1, 1), self.cache.device)


def stream(model: WanDiT, recipe: Recipe, layout: CacheLayout, steps: Sequence[int],
           seed: int) -> StreamBatchSampler:
    """The recipe's `stream` factory: one cache row per step, on the model's device and
    dtype."""
    w = model.patch_embedding.weight
    cache = StreamBatchCache(model.cfg, layout, len(steps), w.device, w.dtype)
    return StreamBatchSampler(model, cache, steps, seed, shift=recipe.shift)


STREAMDIFFUSIONV2 = Recipe(
    "streamdiffusionv2", WAN21_VACE_1_3B, steps=STEPS[:2], shift=8.0, warp=False, chunk=1,
    window=6, sink=3, rope_span=None, refine=False, checkpoints=("sdv2_1_3b",), stream=stream,
    prompt_switch="none", rows_per_step=True, references=False)
"""StreamDiffusionV2 1.3B (`jerryfeng/StreamDiffusionV2`, `wan_causal_dmd_v2v`): two steps,
the authors' default; up to four (`STEPS`), one batch row each. The authors' demo restarts the
stream on a new prompt; here every row takes the new text at its next forward and the stream
goes on (a fade with `transition_chunks` works as for the other models)."""

STREAMDIFFUSIONV2_14B = Recipe(
    "streamdiffusionv2-14b", WAN21_VACE_14B, steps=STEPS[:1], shift=8.0, warp=False, chunk=1,
    window=6, sink=3, rope_span=None, refine=False, checkpoints=("sdv2_14b",),
    vace_checkpoints=("vace_module_14b",), stream=stream, prompt_switch="none",
    rows_per_step=True, references=False, tiny_config=TINY_VACE_14B)
"""StreamDiffusionV2 14B (`wan_causal_dmd_v2v_14b`): one step, the authors' default for it
(no stream batch: one row); up to four."""
