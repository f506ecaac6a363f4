"""Weighted prompt lists and prompt transitions, turned into one text embedding per chunk.

Mixing works row by row (one row per token position, 512 rows, padding rows zero):
- `linear`: the weighted mean, rescaled so each row's norm is the weighted mean of the
  inputs' norms (a plain mean of two different directions is shorter than either, which the
  DiT reads as a weaker prompt);
- `slerp` (two prompts): along the great circle between the two directions, with the norm
  interpolated linearly; more than two prompts fall back to `linear`.
Weights (1, 0, …) and a finished transition return the input tensor itself: endpoints exact.

`TextConditioner` is what the pipeline calls once per chunk with the live parameters
`prompt`, `prompt_blend` and `transition_chunks`. It requests embeddings it lacks without
waiting (the old prompt plays until they are ready), walks transitions over N chunks, and
tells the model core what to do with the result (see `TextUpdate`).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from livevace.errors import ModelError
from livevace.params import Prompt

_EPS = 1e-8


def pad(embedding: Tensor, text_len: int) -> Tensor:
    """[tokens, D] → [text_len, D] with zero rows, as Wan feeds the DiT."""
    return F.pad(embedding, (0, 0, 0, text_len - embedding.shape[0]))


def _row_norms(x: Tensor) -> Tensor:
    return x.norm(dim=-1, keepdim=True)


def linear(embeddings: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Norm-preserving weighted mean (weights already summing to 1)."""
    xs = [e.float() for e in embeddings]
    mix = sum(w * x for w, x in zip(weights, xs))
    target = sum(w * _row_norms(x) for w, x in zip(weights, xs))
    norm = _row_norms(mix)
    out = torch.where(norm > _EPS, mix * (target / norm.clamp(min=_EPS)), mix)
    return out.to(embeddings[0].dtype)


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation of directions, linear of norms; rows where either input is
    zero (padding of the shorter prompt) are mixed linearly, which keeps the norm rule."""
    af, bf = a.float(), b.float()
    na, nb = _row_norms(af), _row_norms(bf)
    ua, ub = af / na.clamp(min=_EPS), bf / nb.clamp(min=_EPS)
    theta = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0).acos()
    sin = theta.sin()
    straight = sin < 1e-6
    s = sin.masked_fill(straight, 1.0)
    ca = torch.where(straight, 1.0 - t, ((1.0 - t) * theta).sin() / s)
    cb = torch.where(straight, torch.full_like(theta, t), (t * theta).sin() / s)
    direction = ca * ua + cb * ub
    out = direction / _row_norms(direction).clamp(min=_EPS) * ((1.0 - t) * na + t * nb)
    flat = (na <= _EPS) | (nb <= _EPS)
    return torch.where(flat, (1.0 - t) * af + t * bf, out).to(a.dtype)


def blend(embeddings: Sequence[Tensor], weights: Sequence[float], method: str = "linear") -> Tensor:
    """Mix prompt embeddings by weight; `method` is `linear` or `slerp` (two prompts)."""
    total = float(sum(weights))
    if len(embeddings) != len(weights) or not embeddings or total <= 0:
        raise ValueError("blend needs one positive-sum weight per embedding")
    ws = [float(w) / total for w in weights]
    active = [i for i, w in enumerate(ws) if w > 0]
    if len(active) == 1:
        return embeddings[active[0]]
    if method == "slerp" and len(embeddings) == 2:
        return slerp(embeddings[0], embeddings[1], ws[1])
    return linear(embeddings, ws)


class EmbeddingSource(Protocol):
    """`text.PromptEmbeddings` (anything handing out futures of [tokens, D] embeddings)."""

    def request(self, text: str) -> Future[Tensor]: ...


@dataclass(frozen=True)
class TextUpdate:
    """The text conditioning of one chunk, and what the model core must do with it.

    - `changed`: differs from the previous chunk's embeddings (or is the first): rebuild the
      cross-attention K/V cache from `embeddings`. Every chunk of a transition is changed.
    - `recache`: a cut (transition_chunks = 0) to a new prompt: also re-run the frames kept
      in the self-attention KV cache at t = 0 with the new embeddings (LongLive's recache),
      so the past stops pulling toward the old prompt.
    """

    embeddings: Tensor  # [1, text_len, D]
    changed: bool
    recache: bool
    pending: bool  # a requested prompt is still being encoded; the previous one plays
    transition: float  # progress of the running transition, 1.0 when none
    error: str | None = None  # why the last requested prompt could not be used (one line)


class TextConditioner:
    """Per-chunk text embeddings from the live prompt parameters."""

    def __init__(self, source: EmbeddingSource, text_len: int = 512) -> None:
        self.source = source
        self.text_len = text_len
        self.current: Tensor | None = None
        self._target: tuple[tuple[Prompt, ...], str] | None = None
        self._futures: list[Future[Tensor]] | None = None
        self._from: Tensor | None = None
        self._to: Tensor | None = None
        self._method = "linear"
        self._step = self._steps = 0
        self._error: str | None = None
        self._stale = False

    def invalidate(self) -> None:
        """The model core's caches were reset (reset_cache, new steps): the next update says
        `changed`, so the cross-attention K/V of the current prompt are rebuilt. The prompt
        itself is kept, and a running transition goes on."""
        self._stale = True

    def update(self, prompts: Sequence[Prompt], blend_method: str = "linear", transition_chunks: int = 0,
               wait: bool = False) -> TextUpdate:
        """Call once per chunk. `wait` blocks until the prompts are encoded (a session's start,
        when there is nothing yet to play)."""
        target = (tuple(prompts), blend_method)
        if target != self._target:
            self._target = target
            self._futures = [self.source.request(p.text) for p in target[0]]
            self._error = None
        recache, changed, self._stale = False, self._stale, False
        if self._futures is not None and (wait or self.current is None or all(f.done() for f in self._futures)):
            arrived, recache = self._arrive(transition_chunks)
            changed |= arrived
        if self._to is not None:
            self._step += 1
            t = self._step / self._steps
            self.current = self._to if self._step >= self._steps else blend([self._from, self._to], [1 - t, t],
                                                                             self._method)
            changed = True
            if self._step >= self._steps:
                self._from = self._to = None
        if self.current is None:
            raise ModelError(self._error or "no prompt encoded yet")
        running = self._to is not None
        return TextUpdate(self.current, changed, recache, self._futures is not None,
                          self._step / self._steps if running else 1.0, self._error)

    def _arrive(self, transition_chunks: int) -> tuple[bool, bool]:
        """The requested prompts are (or are now waited) ready: cut or start a transition."""
        assert self._futures is not None and self._target is not None
        futures, self._futures = self._futures, None
        try:
            parts = [pad(f.result(), self.text_len) for f in futures]
        except Exception as e:  # the previous prompt keeps playing
            self._error = f"prompt could not be encoded: {type(e).__name__}: {str(e)[:160]}"
            return False, False
        prompts, method = self._target
        new = blend(parts, [p.weight for p in prompts], method)[None]
        if self.current is None:
            self.current = new
            return True, False
        if transition_chunks <= 0:
            self.current, self._from, self._to = new, None, None
            return True, True
        self._from, self._to, self._method = self.current, new, method
        self._step, self._steps = 0, transition_chunks
        return False, False
