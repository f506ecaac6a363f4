"""Reference images (1–3) in the conditioning path: written once into the KV cache's sink.

Original VACE puts reference frames in front of the video *inside* the denoised latents
([refs | video], denoised together, refs stripped afterwards). That cannot stream: the
sequence length would depend on the number of references, and every chunk would re-denoise
them. Seed 004's answer is to keep references *alongside* the latents; here is how livevace
does it, training-free with the released weights:

- each reference is VAE-encoded alone (one latent frame), once per set of paths;
- the encoded references are written, at t = 0 with VACE's reference context (inactive =
  the image, reactive = 0, mask = 0: "given, keep"), into the **sink** of the self-attention
  cache — the frames every chunk attends to for ever (LongLive keeps its first chunk there).
  The sink has 3 frame slots and VACE takes up to 3 references: references fill the slots in
  turn (1 → r1 r1 r1, 2 → r1 r2 r1, 3 → r1 r2 r3), so every slot is occupied and the cache
  still reaches its full, maskless steady state (the static shape CUDA graphs capture);
- generation then starts at frame 3, so every generated frame attends to the references
  through the main blocks' self-attention, exactly the path by which VACE's video tokens
  see the reference tokens in front of them — only causal, and computed once instead of in
  every denoising step. The chunk size never changes.

Why not hints from the references added to each chunk? A VACE hint is a per-token residual
for the token at the same position; reference tokens have no position in a chunk, so their
hints have nowhere to go without averaging them into something the weights never saw. The
sink is where a causal model keeps what every frame should see.

Live changes: new paths re-encode and rewrite the sink in place (no reset, the session goes
on); adding references mid-session overwrites the sink's opening frames the same way;
removing them all resets the session (the sink must stop steering, and what it held before
is gone), which the log says. A path that cannot be read is rejected with its path and the
others are used.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from livevace.models.wan.codec import frames_to_pixels
from livevace.models.wan.sampler import StreamSampler
from livevace.models.wan.vae import WanVAE
from livevace.pipelines.vace.context import reference_context
from livevace.pipelines.vace.images import ImageCache

log = logging.getLogger("livevace.vace")


class References:
    """The encoded reference set for the current `reference_images` paths."""

    def __init__(self, vae: WanVAE, images: ImageCache, device: torch.device) -> None:
        self.vae, self.images, self.device = vae, images, device
        self.paths: tuple[str, ...] = ()
        self.used: tuple[str, ...] = ()
        self.latents: Tensor | None = None
        """[1, 16, R, h, w], one latent frame per usable reference, or None."""

    def update(self, paths: tuple[str, ...]) -> bool:
        """Follow the parameter; True when the usable set changed (the sink needs rewriting)."""
        if paths == self.paths:
            return False
        self.paths = paths
        usable = [(p, self.images.rgb(p, "reference image")) for p in paths]
        used = tuple(p for p, image in usable if image is not None)
        if used == self.used:
            return False
        self.used = used
        self.latents = (torch.cat([self._encode(image) for _, image in usable if image is not None],
                                  dim=2) if used else None)
        log.info("reference images: %s", ", ".join(used) if used else "none")
        return True

    @torch.no_grad()
    def _encode(self, image) -> Tensor:
        pixels = frames_to_pixels(torch.from_numpy(image)[None].to(self.device))
        return self.vae.causal_encoder().encode(pixels).float()

    def sink_frames(self, slots: int) -> tuple[Tensor, Tensor]:
        """(latents, context) [1, C, slots, h, w]: the references in turn over the sink slots."""
        assert self.latents is not None
        order = [i % self.latents.shape[2] for i in range(slots)]
        latents = self.latents[:, :, order]
        return latents, reference_context(latents)


def write_sink(sampler: StreamSampler, latents: Tensor, context: Tensor | None) -> None:
    """Write clean frames into the sink slots at t = 0 (a refinement pass, VACE hints scaled
    as refinement), in groups of at most a chunk. Mid-session the chunk bookkeeping is put
    back afterwards, so the next chunk continues where the session was (as `recache` does)."""
    cache = sampler.cache
    lay = cache.layout
    last = (cache.chunk_start, cache.chunk_frames)
    for start in range(0, lay.sink, lay.chunk):
        n = min(lay.chunk, lay.sink - start)
        cache.begin_chunk(start, n)
        part = slice(start, start + n)
        sampler.forward_pass(latents[:, :, part], 0.0,
                             None if context is None else context[:, :, part], "refinement")
    if last[0] is not None:
        cache.chunk_start, cache.chunk_frames = last
