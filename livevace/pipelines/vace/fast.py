"""The live node's fast path on a CUDA GPU, and why no CUDA graph is ever captured mid-show.

    go_fast(models)              # cuDNN autotuning, compiled DiT phases, CUDA graphs (LiveGraphs)
    pipeline = StreamingVace(models, ...)
    pipeline.prepare()           # compile, capture, tune — all before the first frame

`go_fast` is what `livevace run` (the `vace` factory) does on a CUDA device unless told
`--no-compile`: `torch.backends.cudnn.benchmark` (the Wan VAE's 3D convolutions are
faster with tuned algorithms; the shapes are static per chunk size, so tuning happens once,
in `prepare`), the Wan VAE encoder compiled for later chunks (`vae_compiled`: faster than
eager, compiled in `prepare` too) and its decoder likewise (the `wan` output decoder), and
`Acceleration(compile="default", cuda_graph=True)` for
the DiT (much faster than eager, BENCHMARKS.md "Model core: speed work").

A CUDA-graph capture is global to the process: another thread's CUDA call that is not
allowed during a capture (an allocation, a synchronisation — the depth annotator and the
prompt encoder run on their own threads and CUDA streams) invalidates it. So captures
belong to `prepare`, which runs before the annotators start and after the prompt encodes are done.
`LiveGraphs` enforces it: outside `warming()` a step state that has no graph yet runs
eagerly instead of being captured (counted in `eager_steps`, logged once per `StreamCache`);
so does a text K/V rebuild without its graph.
What that means for states first met live (see `StreamingVace.prepare`):
- reset: the same cache, the same states — replayed;
- recache and references written into the sink: the states a fresh session passes through
  (captured by the warm-up) or, for a replay over a wrapped ring, a masked step that never
  had a graph (eager by design);
- VACE switched on or off: both are warmed up;
- a chunk size not prepared (`chunk_frames` switched live): its new cache steps eagerly for
  the rest of the run — slower, never a glitch. `prepare(chunk_sizes=(1, 3))` warms both.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from typing import ContextManager

import torch

from livevace.cuda_graphs import PrepareOnly
from livevace.errors import UserError
from livevace.models.wan.compiled import Acceleration, StepGraphs
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import StreamCache
from livevace.models.wan.vae_compiled import SteadyCausal
from livevace.pipelines.vace.models import ModelSet

log = logging.getLogger("livevace.vace")

FAST = Acceleration(compile="default", cuda_graph=True, flash4=True)
"""The DiT's fast path (see `livevace.models.wan.compiled`)."""


class LiveGraphs(StepGraphs):
    """`StepGraphs` that capture only while warming up (see the module doc)."""

    def __init__(self, model: WanDiT) -> None:
        super().__init__(model)
        self.eager_steps = 0
        """Steps that ran eagerly because their state had no graph (outside warm-up)."""
        self._window = PrepareOnly()
        self._told: weakref.WeakSet[StreamCache] = weakref.WeakSet()

    def warming(self) -> ContextManager[None]:
        """Captures are allowed inside (nothing else may use the GPU meanwhile)."""
        return self._window.opened()

    def may_capture(self) -> bool:
        return self._window.open

    def stepped_eagerly(self, cache: StreamCache) -> None:
        self.eager_steps += 1
        if cache not in self._told:
            self._told.add(cache)
            log.warning("a DiT step state of this stream was not prepared before the show: it "
                        "runs without its CUDA graph (slower; nothing is captured while live)")


def accelerate(dit: WanDiT, settings: Acceleration) -> Acceleration:
    """`dit.accelerate(settings)`, its CUDA graphs as `LiveGraphs`; the settings in force
    (FlashAttention-4 drops out where it cannot run)."""
    dit.accelerate(settings)
    if settings.cuda_graph:
        dit.graphs = LiveGraphs(dit)
    return dit.acceleration


def go_fast(models: ModelSet, compile: bool = True, fp8: bool = False) -> Acceleration:
    """The node's settings on a CUDA device (see the module doc); eager DiT with
    `compile=False` (debugging); `fp8`: its FP8 linear layers (QUALITY-AFFECTING; UserError on
    a GPU without FP8). Nothing changes on a CPU."""
    if models.device.type != "cuda":
        return models.dit.acceleration
    torch.backends.cudnn.benchmark = True
    compile_vae(models, compile)
    settings = dataclasses.replace(FAST if compile else Acceleration(), fp8=fp8)
    try:
        settings = accelerate(models.dit, settings)
    except ValueError as exc:
        raise UserError(f"--precision fp8: {exc}") from None
    log.info("attention: %s", "FlashAttention-4, cuDNN where a mask is needed" if settings.flash4
             else "cuDNN (PyTorch SDPA)")
    return settings


def compile_vae(models: ModelSet, on: bool = True) -> None:
    """The Wan VAE encoder and decoder compiled for later chunks (`vae_compiled`; graphs made
    in `prepare`) on a CUDA device, or eager (`on=False`, and always on a CPU)."""
    on = on and models.device.type == "cuda"
    vae = models.vae
    vae.steady = SteadyCausal(vae.encoder, from_start=True) if on else None
    vae.steady_decoder = SteadyCausal(vae.decoder, "decoder", conv2d=True) if on else None


def live_graphs(dit: WanDiT) -> LiveGraphs | None:
    return dit.graphs if isinstance(dit.graphs, LiveGraphs) else None
