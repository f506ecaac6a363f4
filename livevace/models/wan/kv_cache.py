"""The static streaming state of one video: a ring-buffer self-attention cache and text K/V.

Layout (LongLive semantics, W = `window`, S = `sink`, C = `chunk` latent frames): the
buffer has W frame slots per main block. Slots 0…S-1 hold the sink (the first S frames of
the stream, kept for ever); the other R = W - S slots are a ring: frame f ≥ S lives in slot
S + (f - S) mod R. A chunk [p, p+C) writes its K/V into its own slots and attends over the
whole buffer, i.e. the sink plus the last R frames up to its end, itself included, which is
exactly LongLive's `sink + local window` attention. A frame evicted by the write was out
of the window of this chunk and of every later one, so overwriting it is always safe. That
slot, window and position arithmetic is the layout's cache policy (`cache_policy.SinkRing`);
the cache only applies it.

Static shapes: every buffer is allocated once; a chunk's slots are device index tensors
(`index_copy_`), its RoPE tables and the slot validity mask are device buffers refreshed by
`begin_chunk` (host bookkeeping only, a few small non-blocking copies, once per chunk,
outside the step; `plan_ahead` does the bookkeeping during the chunk before).
The step itself has no host syncs and no data-dependent shapes. Until the window has filled
(the first W frames) some slots are empty. While the slots a chunk sees are exactly the first
n (a fresh stream fills slots in order), attention simply runs over that prefix of the buffer
with no mask (`visible_prefix`); so does the steady state (n = W). Only other patterns (a
recache replaying the ring) take a mask over the whole buffer (`mask`). Empty slots are never
attended; LongLive instead attends to its zero-initialised sink slots when chunks
are shorter than the sink (1-frame chunks), which only dilutes the first frames' attention.

Long runs, RoPE: keys are cached rotated at their frame's position, computed exactly from
integer positions (see `rope`), so there is no table to overflow. Window keys and queries
always use true positions (their differences stay below W). The sink's distance to the
query, however, grows for ever; LongLive (trained and demonstrated within its 1024-row
table, i.e. < 1024 latent frames ≈ 4 min) never saw it larger. With `rope_span` set
(default 1024), positions follow the reference exactly while the chunk ends within the first
`rope_span` frames; after that the sink slides along, its frames placed at
`i + (chunk end - rope_span)` so that the span from sink to query never exceeds what the
reference could express. The model thus keeps seeing the configuration of minute four
instead of extrapolating to ever larger distances; nothing resets and nothing glitches. To
re-place the sink without accumulating rounding, its keys are also kept un-rotated
(`sink_raw`) and re-rotated for each chunk (S frames per layer; `plan_ahead` queues it during
the chunk before).
`rope_span=None` keeps absolute positions for ever (sink distance unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from livevace.models.wan.cache_policy import CachePolicy, SinkRing
from livevace.models.wan.config import WanConfig
from livevace.models.wan.rope import Rope, rotate_layers
from livevace.models.wan.uploads import upload


@dataclass(frozen=True)
class CacheLayout:
    """Window geometry. `height`/`width` are latent sizes (pixels / 8); `policy_kind` makes
    the cache policy (which slots a chunk writes and sees) from window, sink and rope_span."""

    height: int
    width: int
    window: int = 12
    sink: int = 3
    chunk: int = 3
    rope_span: int | None = 1024
    patch: tuple[int, int] = (2, 2)
    policy_kind: Callable[[int, int, int | None], CachePolicy] = SinkRing
    policy: CachePolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.height % self.patch[0] or self.width % self.patch[1]:
            raise ValueError(f"latent size {self.height}×{self.width} is not a multiple of the "
                             f"patch {self.patch}")
        if not 0 <= self.sink < self.window:
            raise ValueError(f"sink {self.sink} must be smaller than the window {self.window}")
        if not 1 <= self.chunk <= self.window - self.sink:
            raise ValueError(f"a chunk of {self.chunk} frames does not fit the window's "
                             f"{self.window - self.sink} rolling slots")
        if self.rope_span is not None and self.rope_span < self.window + self.chunk:
            raise ValueError(f"rope_span {self.rope_span} is shorter than window + chunk")
        object.__setattr__(self, "policy", self.policy_kind(self.window, self.sink,
                                                             self.rope_span))

    @property
    def grid(self) -> tuple[int, int]:
        """Token rows and columns of one latent frame."""
        return self.height // self.patch[0], self.width // self.patch[1]

    @property
    def frame_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def slot(self, frame: int) -> int:
        """The slot that holds absolute frame `frame`."""
        return self.policy.slot(frame)

    def sink_shift(self, start: int, frames: int) -> int:
        """How far the sink is moved along for a chunk [start, start+frames)."""
        return self.policy.sink_shift(start, frames)


@dataclass(frozen=True)
class ChunkPlan:
    """A chunk's plan as `begin_chunk` applies it: the host state after it and the device
    tables to upload (write slots, un-rotated key slots, masks with and without the chunk,
    RoPE cos/sin), valid for the cache state in `key`."""

    key: tuple
    slot_frame: list[int]
    all_visible: bool
    visible_prefix: int | None
    tables: tuple[torch.Tensor, ...]


class StreamCache:
    """Preallocated per-stream buffers of one `WanDiT` (see the module docstring).

    Attributes the pipeline may read: `k`, `v` [layers, B, H, W·T, D] (rotated keys, values),
    `text_k`, `text_v` [layers + vace layers, B, H, text_len, D] (filled by
    `WanDiT.set_text`), `slot_frame` (host list: absolute frame in each slot, -1 empty).
    """

    def __init__(self, cfg: WanConfig, layout: CacheLayout, batch: int = 1,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.cfg, self.layout = cfg, layout
        self.batch, self.device, self.dtype = batch, torch.device(device), dtype
        heads, hd, t = cfg.num_heads, cfg.head_dim, layout.frame_tokens
        w, s, c = layout.window, layout.sink, layout.chunk
        kw = dict(device=self.device, dtype=dtype)
        self.k = torch.zeros(cfg.num_layers, batch, heads, w * t, hd, **kw)
        self.v = torch.zeros_like(self.k)
        self.sink_raw = (torch.zeros(cfg.num_layers, batch, heads, (s + c) * t, hd, **kw)
                         if s and layout.rope_span is not None else None)
        text_layers = cfg.num_layers + len(cfg.vace_layers)
        self.text_k = torch.zeros(text_layers, batch, heads, cfg.text_len, hd, **kw)
        self.text_v = torch.zeros_like(self.text_k)
        self.text_ready = False
        # per-chunk plan (device), refreshed by begin_chunk
        long = dict(device=self.device, dtype=torch.long)
        self.write_index = torch.zeros(c * t, **long)
        self.raw_index = torch.zeros(c * t, **long)
        self.allowed = torch.ones(1, w * t, device=self.device, dtype=torch.bool)
        self.allowed_without_chunk = torch.ones_like(self.allowed)
        self.cos = torch.zeros(c * t, hd // 2, device=self.device)
        self.sin = torch.zeros_like(self.cos)
        self.rope = Rope(cfg)
        self.slot_frame: list[int] = [-1] * w
        self.sink_shift = 0
        self._ahead: ChunkPlan | None = None
        self.chunk_start: int | None = None
        self.chunk_frames = 0
        self._all_visible = False
        self.visible_prefix: int | None = None
        """Slots 0…n-1 hold exactly the frames the current chunk sees: attend over that prefix
        with no mask (None: use `mask`)."""

    # ----------------------------------------------------------------- host bookkeeping
    def reset(self) -> None:
        """Forget every frame (the text K/V stay): the next chunk starts a new stream."""
        self.slot_frame = [-1] * self.layout.window
        self.sink_shift = 0
        self._ahead = None
        self.chunk_start, self.chunk_frames = None, 0
        self._all_visible = False
        self.visible_prefix = None

    @property
    def full(self) -> bool:
        """Whether the current chunk sees a frame in every slot (no attention mask needed)."""
        return self.chunk_start is not None and self._all_visible

    @property
    def next_frame(self) -> int:
        """The frame a following chunk starts at."""
        return 0 if self.chunk_start is None else self.chunk_start + self.chunk_frames

    def frames(self) -> list[tuple[int, int]]:
        """(frame, slot) of every cached frame, oldest first."""
        return sorted((f, s) for s, f in enumerate(self.slot_frame) if f >= 0)

    def drop(self, frames: list[int] | range) -> None:
        """Mark frames as not cached (an abandoned chunk, or the window before a recache)."""
        gone = set(frames)
        self.slot_frame = [-1 if f in gone else f for f in self.slot_frame]
        self._all_visible = False  # begin_chunk recomputes it
        self.visible_prefix = None

    def begin_chunk(self, start: int, frames: int | None = None) -> None:
        """Plan the forwards of chunk [start, start+frames): slots, RoPE tables, mask.

        Frames are recorded as cached now; every forward of the chunk rewrites their slots
        (the generation passes with noisy K/V, the refinement pass with clean ones). Call
        `drop` for a chunk that is abandoned before its refinement pass. A plan made by
        `plan_ahead` for this very chunk and state is used as it is (uploads only).
        """
        lay = self.layout
        n = lay.chunk if frames is None else frames
        if not 1 <= n <= lay.chunk:
            raise ValueError(f"chunk of {n} frames; this cache takes 1..{lay.chunk}")
        if start < 0:
            raise ValueError(f"negative start frame {start}")
        shift = lay.sink_shift(start, n)
        if shift != self.sink_shift:
            self._place_sink(shift)
        ahead, self._ahead = self._ahead, None
        plan = ahead if ahead is not None and ahead.key == self._key(start, n) else (
            self._plan(start, n))
        self.slot_frame = list(plan.slot_frame)
        self._all_visible, self.visible_prefix = plan.all_visible, plan.visible_prefix
        t = n * lay.frame_tokens
        for dst, src in zip((self.write_index[:t], self.raw_index[:t], self.allowed,
                             self.allowed_without_chunk, self.cos[:t], self.sin[:t]),
                            plan.tables):
            upload(dst, src)
        self.chunk_start, self.chunk_frames = start, n

    def plan_ahead(self, start: int) -> None:
        """Work out the plan of the full chunk starting at `start` now, while the GPU still
        runs this one, so the next `begin_chunk` only uploads it: made when needed, it held
        the GPU idle at every chunk start (RoPE tables and slot indices built on the host).
        A sink that must move for that chunk is re-placed now too (GPU work queued after
        this chunk's, so nothing already queued sees it). Any change to the cache before
        then (a reset, a recache) makes `begin_chunk` plan afresh."""
        n = self.layout.chunk
        shift = self.layout.sink_shift(start, n)
        if shift != self.sink_shift:
            self._place_sink(shift)
        self._ahead = self._plan(start, n)

    def _key(self, start: int, n: int) -> tuple:
        """Everything a plan depends on."""
        return start, n, tuple(self.slot_frame), self.sink_shift

    def _plan(self, start: int, n: int) -> "ChunkPlan":
        """The host side of `begin_chunk` (pure: the cache is not changed)."""
        lay, policy = self.layout, self.layout.policy
        chunk = range(start, start + n)
        slots = [policy.slot(f) for f in chunk]
        end = start + n
        allowed_without = [policy.visible(f, end) and f not in chunk for f in self.slot_frame]
        slot_frame = list(self.slot_frame)
        for f, s in zip(chunk, slots):
            slot_frame[s] = f
        visible = [policy.visible(f, end) for f in slot_frame]
        seen = sum(visible)
        raw_slots = [policy.raw_slot(f, j) for j, f in enumerate(chunk)]
        cos, sin = self.rope.cos_sin([self.position(f) for f in chunk], *lay.grid)
        tables = (self._token_index(slots), self._token_index(raw_slots),
                  self._token_mask(visible), self._token_mask(allowed_without), cos, sin)
        if self.device.type == "cuda":
            tables = tuple(table.pin_memory() for table in tables)
        return ChunkPlan(self._key(start, n), slot_frame, all(visible),
                         seen if all(visible[:seen]) else None, tables)

    def position(self, frame: int) -> int:
        """RoPE frame position of a cached frame under the current sink shift."""
        return self.layout.policy.position(frame, self.sink_shift)

    def _token_index(self, slots: list[int]) -> torch.Tensor:
        t = self.layout.frame_tokens
        return (torch.tensor(slots)[:, None] * t + torch.arange(t)[None]).flatten()

    def _token_mask(self, per_slot: list[bool]) -> torch.Tensor:
        return torch.tensor(per_slot).repeat_interleave(self.layout.frame_tokens)[None]

    def _place_sink(self, shift: int) -> None:
        """Re-rotate the cached sink keys from their un-rotated copy to positions i + shift."""
        lay = self.layout
        self.sink_shift = shift
        if self.sink_raw is None:
            return
        n = lay.sink * lay.frame_tokens
        positions = [lay.policy.position(i, shift) for i in range(lay.sink)]
        cos, sin = self.rope.cos_sin(positions, *lay.grid, self.device)
        rotate_layers(self.k[:, :, :, :n], self.sink_raw[:, :, :, :n], cos, sin)

    # ------------------------------------------------------------------------ step side
    @property
    def tokens(self) -> int:
        """Tokens of the current chunk."""
        return self.chunk_frames * self.layout.frame_tokens

    @property
    def rope_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.tokens
        return self.cos[:n], self.sin[:n]

    def mask(self) -> torch.Tensor | None:
        """Slot validity [1, W·T] for attention, or None when every slot holds a visible frame."""
        return None if self.full else self.allowed

    def writer(self, write: bool = True) -> "CacheKV":
        """The `SelfKV` of this chunk's forwards: write into the cache, or attend to it plus the
        chunk without touching it (`write=False`: eager only, allocates)."""
        if self.chunk_start is None:
            raise RuntimeError("begin_chunk() before the first forward")
        return CacheKV(self, write)


class CacheKV:
    """Writes a chunk's K/V into its slots and returns the window to attend over."""

    def __init__(self, cache: StreamCache, write: bool) -> None:
        self.cache, self.write = cache, write
        self.mask = cache.mask() if write else None
        prefix = cache.visible_prefix if write else None
        self.prefix_tokens = None if prefix is None else prefix * cache.layout.frame_tokens

    def __call__(self, layer: int, k_raw: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        c = self.cache
        n = c.tokens
        keys, values = c.k[layer], c.v[layer]
        if not self.write:
            allowed = torch.cat([c.allowed_without_chunk, c.allowed.new_ones(1, n)], dim=1)
            return torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2), allowed
        index = c.write_index[:n]
        copy_tokens(keys, index, k)
        copy_tokens(values, index, v)
        if c.sink_raw is not None:
            copy_tokens(c.sink_raw[layer], c.raw_index[:n], k_raw)
        if self.prefix_tokens is not None:
            return keys[:, :, :self.prefix_tokens], values[:, :, :self.prefix_tokens], None
        return keys, values, self.mask


def copy_tokens(dst: torch.Tensor, index: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """dst.index_copy_(2, index, src) for [B, H, tokens, D] tensors, moving each D-vector as
    8-byte words where the layout allows: PyTorch's index kernel works element by element, so
    a quarter of the bf16 elements is several times faster (the write was 4 % of a step)."""
    src = src.to(dst.dtype)
    size = src.element_size()  # (storage offsets are multiples of dim: aligned too)
    dims = (*src.stride()[:-1], *dst.stride()[:-1], src.shape[-1])
    if src.stride(-1) == 1 and all((n * size) % 8 == 0 for n in dims):
        dst.view(torch.int64).index_copy_(2, index, src.view(torch.int64))
    else:
        dst.index_copy_(2, index, src)
    return dst
