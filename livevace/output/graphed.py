"""The output stage's networks compiled and replayed as CUDA graphs, for the shapes a steady
show meets, learned before it (`OutputStage.prepare`).

The stage runs in line between the generator's calls, and its time is the generator's: a
compiled network fuses its element-wise work into fewer kernels (each of which, beside the
annotators' and the encoder's streams, waits for a turn on the GPU), and a graph launches
them at once. Compiling takes tens of seconds, which a show cannot spend, so shapes are
learned only before it; a shape met later (a first burst, an in-between count not seen
before) runs the plain network. On a CPU, or where the compiler or the capture fails (said
once, by `ShapeGraphs`), everything runs plain.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from livevace.cuda_graphs import ShapeGraphs

Runner = Callable[[Tensor], Tensor]


class Graphed:
    """`fn` ([B, C, H, W] → a tensor) from a compiled CUDA graph for the shapes `learn` was
    given, plain for any other."""

    def __init__(self, fn: Runner, name: str) -> None:
        self.fn = fn
        self.graphs = ShapeGraphs(fn, name, dynamic=True)  # one compile serves every batch

    def __call__(self, x: Tensor) -> Tensor:
        out = self.graphs(x)
        return self.fn(x) if out is None else out

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes replayed from a graph."""
        return self.graphs.shapes

    def learn(self, shapes: Iterable[tuple[int, ...]], device: torch.device,
              dtype: torch.dtype) -> None:
        """Compile and capture for each shape (a grey input of it; nothing on a CPU)."""
        if device.type != "cuda":
            return
        with self.graphs.learning():
            for shape in shapes:
                self(torch.full(shape, 0.5, device=device, dtype=dtype))
