"""Motion interpolation: the generated stream made into `output_fps` frames a second.

`Schedule` decides, on the host, where output frames fall. Each generated frame f, following
the previous one p, owns the output slots between them: their count is the time between the
two captures × the output rate, rounded, with the remainder carried on (30 → 60 fps: 2 slots
a frame; 25 → 60: 2, 3, 2, 3, 2 — exactly 60 a second, robust to capture jitter). The last
slot is f itself; the others are in-betweens of p and f at k/n. So f goes out (n − 1) output
periods later than it would alone: less than one generated frame, the latency interpolation
adds (`interpolation_latency_ms` in the stats).

No in-between is made across a scene cut: a frame marked `meta["cut"]` (the pipeline marks
the first frame after a cache reset and after a hard prompt cut — a scene recall with 0
transition is one), a slate, a change of size, or a gap longer than `MAX_GAP` (a stalled
source). Those slots show p again (held; the cut lands on f's own slot, on time).

`Interpolator` renders a chunk's slots with IFNet in one batch: features of every frame
once, then every in-between together (frames padded to IFNet's multiple of 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from livevace.frames import Frame
from livevace.io.capture import is_slate
from livevace.models.rife import MULTIPLE, IFNet, pack

Runner = Callable[[Tensor], Tensor]

MAX_GAP = 0.25
"""Seconds between two generated frames beyond which nothing is interpolated (a stall)."""
MAX_SLOTS = 8
"""At most this many output slots per generated frame (a long gap is a hold, not a morph)."""


@dataclass(frozen=True)
class Slot:
    """One output frame: picture `a` (t = 0), or the in-between of `a` and `b` at `t`.
    Pictures are numbered in the chunk given with the previous frame first: 0 is the last
    frame of the chunk before, 1… this chunk's."""

    a: int
    b: int
    t: float
    frame: Frame
    """The output frame's stamp and meta (its image is rendered later)."""

    @property
    def between(self) -> bool:
        return 0.0 < self.t < 1.0


class Schedule:
    """Output slots for the generated frames, chunk by chunk (module doc)."""

    def __init__(self) -> None:
        self.prev: Frame | None = None
        self.carry = 0.0
        self.latency_ms = 0.0
        """How much later than without interpolation the latest generated frame goes out."""

    def reset(self) -> None:
        self.prev, self.carry = None, 0.0

    def plan(self, frames: list[Frame], rate: float) -> list[Slot]:
        slots: list[Slot] = []
        for i, f in enumerate(frames, start=1):
            p, self.prev = self.prev, f
            n = self._slots(p, f, rate)
            morph = p is not None and not self._cut(p, f)
            for k in range(1, n):
                t = k / n
                if morph:
                    assert p is not None
                    stamp = p.t_capture + (f.t_capture - p.t_capture) * t
                    slots.append(Slot(i - 1, i, t, Frame(f.image, stamp, p.index,
                                                         {"interpolated": t})))
                else:  # the previous picture again (a cut, or the first frame after one)
                    held = p or f
                    slots.append(Slot(i - 1, i - 1, 0.0, Frame(f.image, held.t_capture,
                                                               held.index, {"held": True})))
            slots.append(Slot(i, i, 0.0, f))
            self.latency_ms = (n - 1) / rate * 1e3
        return slots

    def _slots(self, p: Frame | None, f: Frame, rate: float) -> int:
        dt = 0.0 if p is None else f.t_capture - p.t_capture
        if p is None or dt <= 0 or dt > MAX_GAP:
            self.carry = 0.0
            return 1
        self.carry += dt * rate
        n = max(1, min(MAX_SLOTS, round(self.carry)))
        self.carry -= n
        return n

    @staticmethod
    def _cut(p: Frame, f: Frame) -> bool:
        return (bool(f.meta.get("cut")) or is_slate(p) or is_slate(f)
                or f.image.shape != p.image.shape)


BATCH_STEP = 4
"""In-betweens are made in batches of a multiple of this (the last one repeated): the batch
then takes a few shapes, so cuDNN's autotuning (on in the node) runs once per shape rather
than on every burst whose count of in-betweens is new."""


def pad(images: Tensor) -> Tensor:
    """Pad the bottom and right with zeros to IFNet's multiple (as Practical-RIFE does)."""
    h, w = images.shape[-2:]
    return F.pad(images, (0, -w % MULTIPLE, 0, -h % MULTIPLE))


class Interpolator:
    """Renders slots with IFNet (`net`), or, without one, shows each slot's own picture.
    `features` and `pairs` run the network's two parts (default: `net.encode`, `net.pairs`;
    the stage may hand replayed graphs of them, `Graphed`)."""

    def __init__(self, net: IFNet | None, features: Runner | None = None,
                 pairs: Runner | None = None) -> None:
        self.net = net
        self.features = features or (net.encode if net is not None else None)
        self.pairs = pairs or (net.pairs if net is not None else None)

    def render(self, pictures: Tensor, slots: list[Slot]) -> Tensor:
        """`pictures` [N + 1, 3, H, W] in [0, 1] (the previous frame first) → one picture
        per slot."""
        out = pictures[[s.a for s in slots]]
        between = [k for k, s in enumerate(slots) if s.between]
        if self.net is None or not between:
            return out
        h, w = pictures.shape[-2:]
        padded = pad(pictures)
        batch = between + between[-1:] * (-len(between) % BATCH_STEP)
        assert self.features is not None and self.pairs is not None
        with torch.inference_mode():
            feats = self.features(padded)
            a = torch.tensor([slots[k].a for k in batch], device=pictures.device)
            b = torch.tensor([slots[k].b for k in batch], device=pictures.device)
            t = torch.tensor([slots[k].t for k in batch], device=pictures.device)
            packed = pack(padded[a], padded[b], t, feats[a], feats[b])
            made = self.pairs(packed)[:len(between), :, :h, :w]
        out[between] = made.clamp(0.0, 1.0).to(out.dtype)
        return out
