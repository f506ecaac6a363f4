"""The Wan VAE encoder and decoder compiled for their steady state, never compiled mid-show.

    vae.steady = SteadyCausal(vae.encoder, from_start=True)  # what `fast.go_fast` does
    vae.steady_decoder = SteadyCausal(vae.decoder, "decoder", conv2d=True)
    with vae.steady.learning():                  # in `StreamingVace.prepare`
        ...encode every later-chunk shape once   # compiles one graph per shape
    ...live: known shapes replay the compiled graph, anything else runs eagerly

The decoder is the same kind of network run the same way (a causal memory per conv, one
latent per call), so it is compiled by the same class: its later latents all have one shape,
its first latent (empty memory) runs eagerly. Its heavy part is at full resolution, where
the spatial upsamplers' 2D convolutions work too, so its twin has those channels-last as
well (`conv2d`).

Why: the VACE context is a Wan VAE encode of every chunk's control frames, and eager it is
mostly memory traffic — fp32 RMS norms, SiLU, the causal concatenations, cuDNN's layout
transposes around each 3D convolution. `torch.compile` fuses those, so a chunk's encode
takes far less time than eager at both sizes (`bench/NOTES_pipeline_speed.md` part 4).

The steady state is compiled: a causal encoder whose memory is full (`state` holds every
conv's past frames). The encoder is called a latent's frames at a time (`WanVAE.encode_step`:
a video's first frame alone, then 4 frames per pass), so one shape serves every chunk size
and every pass after a video's first frame. That first frame (empty memory) runs eagerly,
unless `from_start` gives it a graph of its own: the node's encoder does, since a first chunk
comes at every start and cache reset and at every restart of the VACE context, and eagerly
its one frame costs the encoder's launches (hundreds of them) and unfused element-wise work
on the first chunk's path.
A graph is made only while `learning()` (the node's `prepare`): a compile takes seconds, so
a shape first met live (another frame size), or a learned shape whose inputs fail a guard of
its graph, runs eagerly instead of stalling the show. (The causal memory is kept in standard strides, `vae.remember`, so one
graph serves a shape whatever the previous chunk's length.)

The graph runs a twin of the encoder whose 3D-convolution weights are channels-last
(NDHWC, cuDNN's native layout): from the weights' layout the compiled graph makes every
convolution's input in that layout inside its fused kernels, instead of cuDNN transposing
around each convolution (faster again at both sizes, `bench/NOTES_pipeline_speed.md` part 5).
The eager first chunks keep the standard weights: eager, channels-last is slower. The twin
costs a second copy of the encoder's weights (small beside the DiT's); the causal memory is
keyed by module, so each call maps it to the twin's modules and back.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable, ContextManager

import torch
from torch import Tensor, nn

from livevace.cuda_graphs import PrepareOnly

log = logging.getLogger("livevace.vace")

Key = tuple[Any, ...]


class SteadyCausal:
    """`module(x, state)` (the VAE's encoder or decoder) through a compiled graph where one
    was learned (see module doc). `name`: for the log; `conv2d`: the twin's 2D convolutions
    channels-last too; `from_start`: a video's first pass (empty memory) compiled as well;
    `backend`: torch.compile's (tests use "aot_eager" on a CPU)."""

    def __init__(self, module: nn.Module, name: str = "encoder", conv2d: bool = False,
                 backend: str | Callable[..., Any] = "inductor",
                 from_start: bool = False) -> None:
        self.name, self.from_start = name, from_start
        self.twin = channels_last_twin(module, conv2d)
        self._to_twin = dict(zip(module.modules(), self.twin.modules()))
        self._from_twin = {t: m for m, t in self._to_twin.items()}
        self._compiled: Callable[..., Tensor] = torch.compile(self.twin.forward, dynamic=False,
                                                              backend=backend)
        self.shapes: set[Key] = set()
        """Input shapes with a compiled graph."""
        self.calls = 0
        """Encodes that went through a compiled graph."""
        self._window = PrepareOnly()

    def learning(self) -> ContextManager[None]:
        """New shapes are compiled inside (seconds each)."""
        return self._window.opened()

    def __call__(self, x: Tensor, state: dict[nn.Module, Any]) -> Tensor | None:
        """The module's output, or None where the caller must run it eagerly."""
        if not state and not self.from_start:  # a video's first pass: no memory yet
            return None
        key = (tuple(x.shape), x.dtype, x.device, len(state))
        if self._window.open:
            out = self._run(x, state)
            self.shapes.add(key)
        elif key in self.shapes:
            try:  # a guard the key did not foresee must not compile mid-show
                with torch.compiler.set_stance("fail_on_recompile"):
                    out = self._run(x, state)
            except RuntimeError as exc:
                if "recompile" not in str(exc):
                    raise
                self.shapes.discard(key)  # eager from now on: said once, not tried per chunk
                log.warning("the compiled VAE %s does not fit chunks of %s any more; "
                            "they run eagerly (slower)", self.name, "×".join(map(str, key[0])))
                return None
        else:
            return None
        self.calls += 1
        return out

    def _run(self, x: Tensor, state: dict[nn.Module, Any]) -> Tensor:
        """The twin's graph on the encoder's causal memory (mapped to the twin's modules and
        back)."""
        memory = {self._to_twin[m]: v for m, v in state.items()}
        out = self._compiled(x, memory)
        state.update({self._from_twin[t]: v for t, v in memory.items()})
        return out


def channels_last_twin(module: nn.Module, conv2d: bool = False) -> nn.Module:
    """A copy of `module` with its 3D-convolution weights (and with `conv2d` its 2D ones) in
    channels-last memory."""
    twin = copy.deepcopy(module)
    for conv in twin.modules():
        if isinstance(conv, nn.Conv3d):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last_3d)
        elif conv2d and isinstance(conv, nn.Conv2d):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    return twin
