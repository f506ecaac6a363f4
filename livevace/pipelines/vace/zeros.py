"""The latents of all-zeros videos, computed once per VAE and shared by its encoders.

VACE's inactive video is all zeros whenever there is no mask, so most chunks of a show
encode zeros. Their latents depend only on the chunk history, and an all-zeros input is
constant in time, so once the causal receptive field has passed they (and the encoder's
memory) repeat. `ZeroLatents` keeps them per chunk index; `zero_latents` hands out the one
cache of a VAE (per first-chunk length) to every pipeline that uses it; `ZeroCachedEncoder`
is a Wan VAE causal encoder that takes its latents from that cache while it has seen only
zeros, and replays the zeros when it turns to real frames without their memory.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor

from livevace.models.wan.vae import State, VAECausalEncoder, WanVAE, check_chunk


class ZeroLatents:
    """Latents of all-zeros videos per chunk index, computed once and shared.

    Only the memory after the newest chunk is kept (it is about a gigabyte at 832×480): an
    encoder that takes older latents gets none and replays the zeros if it ever turns to real
    frames.
    """

    MAX_CHUNKS = 64

    def __init__(self) -> None:
        self._runs: dict[tuple[Any, ...], list[tuple[tuple[int, ...], Tensor]]] = {}
        self._frontier: dict[tuple[Any, ...], tuple[State, bool]] = {}  # memory after the last, converged

    def get(self, vae: WanVAE, shape: tuple[int, ...], device: torch.device,
            history: tuple[int, ...]) -> tuple[Tensor, State | None] | None:
        """(latents, memory after them or None) for an all-zeros video with these chunk lengths,
        or None when this history is not the cached one (the caller then encodes by itself)."""
        key = (shape[0], *shape[3:], device, vae.dtype)
        run = self._runs.setdefault(key, [])
        state, converged = self._frontier.get(key, ({}, False))
        i = len(history) - 1
        if i < len(run):
            if run[i][0] != history:
                return None
            return run[i][1], (state if i >= len(run) - (2 if converged else 1) else None)
        if run and run[-1][0] != history[: len(run)]:
            return None
        if converged and set(history[len(run):]) == {run[-1][0][-1]}:
            return run[-1][1], state
        if i > len(run) or len(run) >= self.MAX_CHUNKS:
            return None
        new_state = dict(state)
        zeros = torch.zeros(*shape[:2], history[-1], *shape[3:], device=device, dtype=vae.dtype)
        latents = vae.encode_step(zeros, new_state)
        same = bool(run) and run[-1][0][-1] == history[-1] and _close(run[-1][1], latents) and all(
            m in state and _close(state[m], t) for m, t in new_state.items() if isinstance(t, Tensor))
        run.append((history, latents))
        self._frontier[key] = (new_state, same)
        return latents, new_state


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5)


_CACHES: weakref.WeakKeyDictionary[WanVAE, dict[int | None, ZeroLatents]] = weakref.WeakKeyDictionary()


def zero_latents(vae: WanVAE, first_frames: int | None = None) -> ZeroLatents:
    """The cache of `vae`'s zeros for encoders whose first chunk has `first_frames` frames
    (None: any). A cache follows one chunk history per frame size, so encoders of 1- and
    3-latent chunks at one size (a live `chunk_frames` switch, the benchmark's rows) would
    evict each other and encode zeros in full every chunk: each first-chunk length has its
    own. The caches live as long as the VAE (shared by its pipelines)."""
    return _CACHES.setdefault(vae, {}).setdefault(first_frames, ZeroLatents())


class ZeroCachedEncoder(VAECausalEncoder):
    """A Wan VAE causal encoder whose all-zeros chunks come from a shared `ZeroLatents`."""

    state: State | None  # type: ignore[assignment]  # None: cached latents, memory not kept

    def __init__(self, vae: WanVAE, zeros: ZeroLatents) -> None:
        self.zeros = zeros
        super().__init__(vae)

    def reset(self) -> None:
        super().reset()
        self.history: tuple[int, ...] = ()  # frames per chunk encoded so far
        self.all_zeros = True  # every chunk so far was zeros (the shared zero latents apply)

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        if self.state is None:  # took cached zero latents without their memory: replay them
            check_chunk(tuple(pixels.shape), False, self.vae.config.time_stride)
            self.state = {}
            for frames in self.history:
                zeros = torch.zeros(*pixels.shape[:2], frames, *pixels.shape[3:], device=pixels.device,
                                    dtype=self.vae.dtype)
                self.vae.encode_step(zeros, self.state)
        out = super().encode(pixels)
        self.all_zeros = False
        self.history += (pixels.shape[2],)
        return out

    @torch.no_grad()
    def encode_zeros(self, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        """The latents of an all-zeros chunk [B, 3, T, H, W] (VACE's inactive video when the
        mask is 1 everywhere). The tensor may be shared: never modify it in place.

        While this encoder has only ever seen zeros, its latents come from the shared cache,
        computed once per chunk index until they repeat and then reused for ever; real frames
        that follow continue from the zeros' causal memory.
        """
        device = torch.device(device)
        check_chunk(tuple(shape), not self.history, self.vae.config.time_stride)
        if self.all_zeros:
            history = self.history + (shape[2],)
            hit = self.zeros.get(self.vae, tuple(shape), device, history)
            if hit is not None:
                self.history, self.state = history, None if hit[1] is None else dict(hit[1])
                return hit[0]
        return self.encode(torch.zeros(shape, device=device, dtype=self.vae.dtype))
