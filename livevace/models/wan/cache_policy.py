"""Cache policies: which slots a chunk writes, which cached frames it attends to, and where
their RoPE positions sit — the part of a streaming model's recipe that `StreamCache` asks
about and never decides itself.

A policy is pure host arithmetic on integer frame indices, asked only while a chunk is planned
(`StreamCache._plan`, `plan_ahead`), never inside the captured step: it can add neither syncs
nor data-dependent shapes. The buffers it indexes are fixed by the layout: `window` slots per
block, of which the first `sink` are kept for ever.

`SinkRing` is LongLive's (and, here, Self-Forcing's) policy. Later policies (Reward Forcing's
EMA sink with un-roped keys, StreamDiffusionV2's per-row ring, MemFlow's memory bank) are new
modules beside this one, chosen by a recipe; `StreamCache` stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class CachePolicy(Protocol):
    """What `StreamCache` asks a policy while planning a chunk (host only)."""

    def slot(self, frame: int) -> int:
        """The slot that holds absolute frame `frame`."""
        ...

    def visible(self, frame: int, end: int) -> bool:
        """Whether cached frame `frame` is attended by a chunk ending (exclusive) at `end`."""
        ...

    def raw_slot(self, frame: int, offset: int) -> int:
        """Where the un-rotated key of a chunk's `offset`-th frame is kept (see `sink_shift`)."""
        ...

    def sink_shift(self, start: int, frames: int) -> int:
        """How far the kept frames' RoPE positions move for a chunk [start, start+frames)."""
        ...

    def position(self, frame: int, shift: int) -> int:
        """RoPE frame position of a cached frame under sink shift `shift`."""
        ...


@dataclass(frozen=True)
class SinkRing:
    """LongLive's sink + ring buffer (see `kv_cache`): slots 0…S-1 hold frames 0…S-1 for
    ever, frame f ≥ S lives in slot S + (f - S) mod (W - S); a chunk attends to the sink and
    the last W - S frames up to its end. With `rope_span`, the sink slides along once the
    chunk ends past it, so sink-to-query distances never exceed the reference's table."""

    window: int
    sink: int
    rope_span: int | None

    def slot(self, frame: int) -> int:
        if frame < self.sink:
            return frame
        return self.sink + (frame - self.sink) % (self.window - self.sink)

    def visible(self, frame: int, end: int) -> bool:
        return 0 <= frame < end and (frame < self.sink or frame >= end - (self.window - self.sink))

    def raw_slot(self, frame: int, offset: int) -> int:
        """Sink frames keep theirs for re-placing; other frames use scratch rows after it."""
        return frame if frame < self.sink else self.sink + offset

    def sink_shift(self, start: int, frames: int) -> int:
        if self.rope_span is None or self.sink == 0:
            return 0
        return max(0, start + frames - self.rope_span)

    def position(self, frame: int, shift: int) -> int:
        return frame + shift if frame < self.sink else frame
