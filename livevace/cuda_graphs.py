"""CUDA graphs made the same way everywhere, and only while the node prepares.

A capture runs the step twice on a side stream first (compilation, cuBLAS/cuDNN plans and
workspaces are made there, outside the capture), then records it once. A capture must not
meet another thread's GPU work (see `pipelines.vace.fast`), so every graph-making object
here captures only inside its `learning()` window, which `prepare` opens; a shape first
met live runs eagerly instead.

    steady = ShapeGraphs(network_fn)       # fn(x) -> Tensor, x's shape fixed per graph
    with steady.learning():
        steady(x)                          # compiled, captured, run
    out = steady(x2)                       # replayed (None: no graph, run fn yourself)
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, TypeVar

import torch

from livevace.errors import describe

log = logging.getLogger("livevace")

T = TypeVar("T")
WARMUP = 2
"""Runs before a capture: compilation, library plans and workspaces."""


class PrepareOnly:
    """A switch that is on only inside `opened()`: what must never happen live (compiling a
    shape, capturing a CUDA graph) is allowed only while the node prepares."""

    def __init__(self) -> None:
        self.open = False

    @contextmanager
    def opened(self) -> Iterator[None]:
        self.open = True
        try:
            yield
        finally:
            self.open = False


def capture(step: Callable[[], T], device: torch.device,
            pool: tuple[int, int] | None = None) -> tuple[torch.cuda.CUDAGraph, T]:
    """`step` warmed up on a side stream, then captured; (graph, the step's output tensors,
    which every replay rewrites)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, pool=pool):
            out = step()
    except BaseException:
        release_rng(device)
        raise
    torch.cuda.synchronize(device)
    return graph, out


def serving(key: tuple, keys: list[tuple]) -> tuple | None:
    """Of the captured `keys` (shape, dtype, device), the one whose graph serves an input
    `key` by its first rows (`ShapeGraphs.rows_independent`): the same rest of the shape,
    dtype and device, and the fewest rows at least as many as the input's; None if none."""
    shape, rest = key[0], key[1:]
    fits = [k for k in keys if shape and len(k[0]) == len(shape) and k[0][1:] == shape[1:]
            and k[1:] == rest and k[0][0] >= shape[0]]
    return min(fits, key=lambda k: k[0][0], default=None)


def release_rng(device: torch.device) -> None:
    """After a failed capture: PyTorch marks the device's default random generator as
    capturing when a capture begins and unmarks it only when one succeeds, so every later
    random op on the device would fail ("Offset increment outside graph capture"). A copy of
    its state (same seed and offset) is not marked."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    generator = torch.cuda.default_generators[index]
    generator.graphsafe_set_state(generator.clone_state())


@dataclass
class _Entry:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    out: torch.Tensor


class ShapeGraphs:
    """`fn(x)` (one tensor in, one out) replayed from a CUDA graph per input shape.

    With `compile`, the captured function is `torch.compile(fn)` (with `dynamic`, compiled
    once for sizes of every kind rather than once per shape): fused kernels, and a graph
    launch instead of hundreds of Python-issued ones (a network on an annotator thread holds
    the GIL while it launches, which delays the generator's thread). If compiling fails (no
    compiler on the machine), the graph captures `fn` as it is, after one warning. `name`
    appears in that warning.

    With `rows_independent` (each row of the first dimension is computed from that row alone,
    as a network's batch of pictures is), a batch smaller than a captured one replays the
    smallest such graph on its rows (`serving`): the rest keep what they held, which changes
    nothing in the rows read back. A first chunk, shorter than the later ones, then needs no
    graph of its own and never runs the network's Python.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str,
                 compile: bool = True, dynamic: bool = False,
                 rows_independent: bool = False) -> None:
        self.fn, self.name = fn, name
        self.rows_independent = rows_independent
        self._compiled = torch.compile(fn, dynamic=dynamic) if compile else None
        self._graphs: dict[tuple, _Entry] = {}
        self._failed: set[tuple] = set()
        self._pool: tuple[int, int] | None = None
        self._window = PrepareOnly()
        self.replays = 0

    def learning(self) -> ContextManager[None]:
        """New input shapes are compiled and captured inside (seconds each)."""
        return self._window.opened()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [key[0] for key in self._graphs]

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor | None:
        """fn(x) from a graph, or None where the caller runs `fn` itself (no graph for this
        shape and not learning, x not on a CUDA device, or this shape failed to capture)."""
        key = (tuple(x.shape), x.dtype, x.device)
        entry = self._graphs.get(key)
        if entry is None and not self._window.open and self.rows_independent:
            entry = self._graphs.get(serving(key, list(self._graphs)))
        if entry is None:
            if not self._window.open or x.device.type != "cuda" or key in self._failed:
                return None
            try:
                entry = self._graphs[key] = self._capture(x)
            except Exception as exc:  # noqa: BLE001 - eager is slower, never wrong
                self._failed.add(key)
                log.warning("%s: no CUDA graph for chunks of %s (%s); they run eagerly",
                            self.name, "×".join(map(str, key[0])), describe(exc))
                return None
        rows = len(x)
        entry.x[:rows].copy_(x)
        entry.graph.replay()
        self.replays += 1
        return entry.out[:rows].clone()

    def _capture(self, x: torch.Tensor) -> _Entry:
        static = x.clone()
        if self._pool is None:  # one pool: this object's graphs replay one at a time
            self._pool = torch.cuda.graph_pool_handle()
        if self._compiled is not None:
            try:
                fn = self._compiled
                graph, out = capture(lambda: fn(static), x.device, self._pool)
                return _Entry(graph, static, out)
            except Exception as exc:  # noqa: BLE001 - a missing compiler must not stop the show
                log.warning("%s could not be compiled (%s); its CUDA graph runs it uncompiled",
                            self.name, describe(exc))
                self._compiled = None
        graph, out = capture(lambda: self.fn(static), x.device, self._pool)
        return _Entry(graph, static, out)
