"""One generation session: the state that lives from one cache reset to the next.

A session owns the static KV cache and its sampler (schedule, cache policy and window from
the model set's recipe through `zoo.open_stream`, e.g. LongLive's 12-frame window with a
3-frame sink; chunks of 1 or 3 latent frames), the output decoder and the causal
encoders of the VACE context and of the video-to-video input. `reset` starts it afresh in
place (same buffers, text K/V kept — so the *current* prompt survives a reset); a chunk size
change makes a new session (new static shapes).

Chunk sizes in pixel frames: a session's first chunk is 1 + 4(C − 1) frames (the causal VAE
turns its first frame alone into a latent): 9 for C = 3, 1 for C = 1; every later one 4C.
"""

from __future__ import annotations

from typing import Sequence

import torch

from livevace.pipelines.vace.live_decoder import LiveDecoder
from livevace.models.wan.rebuild import PIXEL_HISTORY, RebuildSampler
from livevace.pipelines.vace.context import ContextEncoder, SessionEncoder
from livevace.pipelines.vace.first_frame import DecodedFrames
from livevace.pipelines.vace.geometry import BLOCK
from livevace.pipelines.vace.motion import MotionNoise
from livevace.models.wan.vace import VaceStrength
from livevace.pipelines.vace.models import ModelSet

def pixel_frames(chunk: int, first: bool) -> int:
    """Input/output frames of a chunk of `chunk` latent frames."""
    return 1 + 4 * (chunk - 1) if first else 4 * chunk


class GenerationSession:
    """See the module doc."""

    def __init__(self, models: ModelSet, width: int, height: int, chunk: int, decoder: str,
                 steps: Sequence[int], seed: int, strength: VaceStrength,
                 context_encoder: str = "wan") -> None:
        h, w = height // (BLOCK // 2), width // (BLOCK // 2)
        self.chunk = chunk
        self.sampler = models.streams(models.recipe, models.dit, h, w, chunk, steps, seed)
        self.cache = self.sampler.cache
        self.sampler.set_strength(strength)
        self.decoder = LiveDecoder({"wan": models.vae, "tae": models.tae}, decoder)
        self.decoded: DecodedFrames | None = None
        """The decoded frames a rebuilt cache (Krea's) re-encodes its first frame from."""
        if isinstance(self.sampler, RebuildSampler):
            self.decoded = DecodedFrames(models.vae, PIXEL_HISTORY)
            self.sampler.first_latent = self.decoded.first_latent
        self.context = ContextEncoder(models.vae, chunk, height, width, models.device,
                                      models.tae if context_encoder == "tae" else None)
        self.input = SessionEncoder(models.vae)
        self.motion = MotionNoise()
        self.chunks = 0
        """Chunks generated since the session started."""
        self.sink_written = False
        """The references occupy the sink."""

    @property
    def first(self) -> bool:
        return self.chunks == 0

    @property
    def frames_needed(self) -> int:
        return pixel_frames(self.chunk, self.first)

    @property
    def text_ready(self) -> bool:
        return self.cache.text_ready

    def reset(self) -> None:
        """Start afresh (cache, codecs, controller); the text K/V and settings stay."""
        self.sampler.reset()
        self.decoder.reset()
        if self.decoded is not None:
            self.decoded.reset()
        self.context.reset()
        self.input.reset()
        self.motion.reset()
        self.chunks = 0
        self.sink_written = False

    def keep_decoded(self, pixels: torch.Tensor) -> None:
        """The chunk's decoded pixels, for a sampler that re-encodes them (see `decoded`)."""
        if self.decoded is not None:
            self.decoded.push(pixels)

    @torch.no_grad()
    def encode_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Latents of the input video (video-to-video), on this session's encoder."""
        return self.input.encode(pixels, tuple(pixels.shape), pixels.device, self.chunks,
                                 self.first)
