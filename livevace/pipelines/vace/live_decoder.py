"""The output decoder that switches between `wan` and `tae` while the show runs.

Both codecs share one latent space (Wan's, normalised per channel) and one pixel convention
(NCTHW, [-1, 1]), and both turn a session's first latent into 1 frame and every later one
into 4. So a decoder switch changes nothing upstream: no cache reset, no change in frame
count. What it does need is the new decoder's causal memory, which a cold decoder lacks: on a
switch `LiveDecoder` primes it by decoding the last few latents it kept (output discarded)
before decoding the current chunk. The cost is one extra decode of `prime_latents` latents, once.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from livevace.models.wan.codec import Codec


class LiveDecoder:
    """The output decoder, switchable at any chunk boundary.

    Call `decode(latents, settings.decoder)` once per chunk with the denoised latents; it
    returns pixels for exactly the frames of that chunk, whichever decoder is chosen.
    """

    def __init__(self, codecs: Mapping[str, Codec], name: str, prime_latents: int = 4) -> None:
        self.codecs = dict(codecs)
        self.prime_latents = prime_latents
        self.name = name
        self.current = self.codecs[name].causal_decoder()
        """The causal decoder in use."""
        self.history: Tensor | None = None

    def reset(self) -> None:
        """Start a new video (the next latent is a first latent again)."""
        self.current = self.codecs[self.name].causal_decoder()
        self.history = None

    @torch.no_grad()
    def decode(self, latents: Tensor, name: str | None = None) -> Tensor:
        if name is not None and name != self.name:
            self._switch(name)
        out = self.current.decode(latents)
        kept = latents if self.history is None else torch.cat([self.history, latents], 2)
        self.history = kept[:, :, -self.prime_latents:] if self.prime_latents else None
        return out

    def _switch(self, name: str) -> None:
        if name not in self.codecs:
            raise KeyError(f"decoder {name!r} is not loaded (have {', '.join(self.codecs)})")
        self.name = name
        self.current = self.codecs[name].causal_decoder()
        if self.history is not None:
            self.current.decode(self.history)
