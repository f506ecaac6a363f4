"""The VACE context of a chunk: 96 channels per latent frame, as Wan2.1-VACE was trained on.

    [ inactive 16 | reactive 16 | mask 64 ]

with the mask m binarised at 0.5 (1 = generate), inactive = VAE(video · (1 − m)) — the
part to keep — and reactive = VAE(video · m) — the part to generate, holding the control
signal when there is one — each from its own causal encoder; the mask folded from
8×8 pixel blocks into 64 channels at latent resolution and resized in time to the latent
frame count (nearest-exact), exactly as diffusers' `WanVACEPipeline` prepares it.

With no mask (a control video, or nothing but references) m = 1: inactive is all zeros,
whose latents are computed once per VAE and shared (`zeros`), and the mask channels are
a constant buffer. Reference images use `reference_context`: their latent as inactive, zeros
as reactive and mask 0 ("given, keep"), as in VACE.

`SessionEncoder` lets an encoder sit out chunks (VACE switched off, then on again) and start
in the middle of a session: a causal VAE encoder must begin with a 1 + 4k chunk, so one
(re)started on a later chunk of 4k frames is fed its first frame twice and the extra latent
dropped — the 4-frame groups then line up with the generator's latent frames again. An
encoder of zeros (re)started that way takes the latents of zeros since the start instead,
from the shared cache, rather than encoding zeros anew in every chunk that follows.

Encoding ahead (see `lane`): the pipeline may encode the *next* chunk's context while the DiT
still reads the current one, so `ContextEncoder` alternates between two buffers, and a buffer
is only rewritten after the CUDA stream that encodes waits for an event recorded after its
last reader (`release`). Such an encode is speculative — it uses the parameters of the call
that launched it — so `speculate` first saves the encoders' causal memory: `commit` keeps
the result, `rollback` restores the memory (the chunk is then encoded again with the
parameters it is generated with), `reset` drops it. The memory is a dict of tensors that
encoding replaces rather than modifies, so saving it is a shallow copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from livevace.models.wan.tae import TinyAutoencoder
from livevace.models.wan.vae import SPACE_STRIDE, WanVAE
from livevace.pipelines.vace.zeros import ZeroCachedEncoder, ZeroLatents, zero_latents

LATENT = 16
TIME_STRIDE = 4


def latent_frames(frames: int) -> int:
    """Latent frames of a pixel chunk (first chunks 1 + 4k → 1 + k, later 4k → k)."""
    return (frames + TIME_STRIDE - 1) // TIME_STRIDE


def mask_channels(mask: Tensor) -> Tensor:
    """Binary mask [T, H, W] → [1, 64, T', H/8, W/8] (8×8 blocks to channels, nearest in time)."""
    t, h, w = mask.shape
    hh, ww = h // SPACE_STRIDE, w // SPACE_STRIDE
    blocks = mask.view(t, hh, SPACE_STRIDE, ww, SPACE_STRIDE).permute(2, 4, 0, 1, 3)
    blocks = blocks.reshape(SPACE_STRIDE * SPACE_STRIDE, t, hh, ww)
    return F.interpolate(blocks[None], size=(latent_frames(t), hh, ww), mode="nearest-exact")


class SessionEncoder:
    """One causal VAE encoder of a generation session, chunk by chunk (see module doc).

    `encode(pixels, chunk, first)`: pixels [1, 3, T, H, W] in [-1, 1], or None for all-zero
    frames of `shape`; `chunk` counts the session's chunks and `first` says whether this is
    its first (1 + 4k frames). A skipped chunk restarts the encoder.
    """

    def __init__(self, vae: WanVAE, tae: TinyAutoencoder | None = None,
                 first_frames: int | None = None) -> None:
        self.vae = vae
        self.encoder: ZeroCachedEncoder | TAEContextEncoder = (
            TAEContextEncoder(tae) if tae is not None else
            ZeroCachedEncoder(vae, zero_latents(vae, first_frames)))
        self.last_chunk: int | None = None

    def reset(self) -> None:
        self.encoder.reset()
        self.last_chunk = None

    def save(self) -> tuple:
        """The causal memory (restored by `restore`; see the module doc)."""
        e = self.encoder
        return (None if e.state is None else dict(e.state), e.history, e.all_zeros,
                self.last_chunk)

    def restore(self, saved: tuple) -> None:
        state, self.encoder.history, self.encoder.all_zeros, self.last_chunk = saved
        self.encoder.state = None if state is None else dict(state)

    def encode(self, pixels: Tensor | None, shape: tuple[int, ...], device: torch.device,
               chunk: int, first: bool) -> Tensor:
        if self.last_chunk is not None and self.last_chunk != chunk - 1:
            self.reset()  # sat out a chunk: its causal memory no longer fits
        if pixels is None and not self.encoder.all_zeros:
            # back to zeros (after a keyframe or a mask): restart so the zeros come from the
            # VAE's shared cache again instead of a full encode per chunk
            self.reset()
        self.last_chunk = chunk
        restart = not self.encoder.history and not first
        if pixels is None and restart:
            return self._zeros_since_start(shape, device, chunk)
        if pixels is None:
            out = self.encoder.encode_zeros(shape, device)
        else:
            if restart:
                pixels = torch.cat([pixels[:, :, :1], pixels], dim=2)
            out = self.encoder.encode(pixels)
        return out[:, :, 1:] if restart else out

    def _zeros_since_start(self, shape: tuple[int, ...], device: torch.device,
                           chunk: int) -> Tensor:
        """Zeros for an encoder (re)started on a later chunk: the latents an all-zeros one has
        at chunk `chunk`, as if it had run from the start — served by the VAE's shared zeros
        cache (converged after the encoder's receptive field, ≈ 100 frames) instead of a
        full encode of zeros in every chunk that follows."""
        b, c, t, h, w = shape
        out = self.encoder.encode_zeros((b, c, t - (TIME_STRIDE - 1), h, w), device)
        for _ in range(min(chunk, getattr(self.encoder, "ZERO_MEMORY_CHUNKS",
                                          ZeroLatents.MAX_CHUNKS - 1))):
            if not self.encoder.all_zeros:  # the cache could not serve: stop encoding zeros
                break
            out = self.encoder.encode_zeros(shape, device)
        return out


class TAEContextEncoder:
    """QUALITY-AFFECTING option (`context_encoder="tae"`, off by default): the tiny
    autoencoder's encoder in place of the Wan VAE's for the control part of the VACE context
    (an order of magnitude cheaper: a far smaller network, BENCHMARKS.md "Codecs and text
    encoder"), behind the interface
    `SessionEncoder` expects of a Wan VAE causal encoder. VACE was trained on Wan VAE
    latents; the TAE approximates them, so the control is followed slightly less precisely.
    Zeros are encoded like any frames (no shared cache: they cost a TAE encode)."""

    ZERO_MEMORY_CHUNKS = 2
    """Chunks of zeros that stand for "zeros since the start" (the TAE's memory is short)."""

    def __init__(self, tae: TinyAutoencoder) -> None:
        self.tae = tae
        self.reset()

    def reset(self) -> None:
        self._encoder = self.tae.causal_encoder()
        self.history: tuple[int, ...] = ()
        self.all_zeros = True

    @property
    def state(self) -> dict:
        """The MemBlocks' memory (replaced per chunk, never modified in place)."""
        return self._encoder.memory

    @state.setter
    def state(self, memory: dict | None) -> None:
        self._encoder.memory = {} if memory is None else memory
        self._encoder.chunks = len(self.history)

    def encode(self, pixels: Tensor) -> Tensor:
        self.all_zeros = False
        self.history += (pixels.shape[2],)
        return self._encoder.encode(pixels)

    def encode_zeros(self, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        zeros_so_far = self.all_zeros
        out = self.encode(torch.zeros(shape, device=device, dtype=self.tae.dtype))
        self.all_zeros = zeros_so_far
        return out


def reference_context(latents: Tensor) -> Tensor:
    """Context of reference latents [1, 16, R, h, w]: inactive = the image, reactive = 0,
    mask = 0 (kept as given), i.e. VACE's encoding of reference frames."""
    b, _, r, h, w = latents.shape
    ctx = latents.new_zeros(b, 2 * LATENT + SPACE_STRIDE * SPACE_STRIDE, r, h, w)
    ctx[:, :LATENT] = latents
    return ctx


class ContextEncoder:
    """Builds a chunk's context into one of two preallocated buffers, alternately (the
    sampler copies what it keeps for recache; see the module doc for why two). `tae`: encode
    the reactive (control) part with the tiny encoder (`TAEContextEncoder`, quality-affecting)."""

    def __init__(self, vae: WanVAE, latent_count: int, height: int, width: int,
                 device: torch.device, tae: TinyAutoencoder | None = None) -> None:
        first = 1 + TIME_STRIDE * (latent_count - 1)
        self.inactive = SessionEncoder(vae, first_frames=first)
        self.reactive = SessionEncoder(vae, tae, first_frames=first)
        self.device = device
        hh, ww = height // SPACE_STRIDE, width // SPACE_STRIDE
        self.buffers = [torch.zeros(1, 2 * LATENT + SPACE_STRIDE ** 2, latent_count, hh, ww,
                                    device=device) for _ in range(2)]
        for buffer in self.buffers:
            buffer[:, 2 * LATENT:] = 1.0
        self._mask_is_ones = [True, True]
        self._read: list[torch.cuda.Event | None] = [None, None]
        self._next = 0
        self._saved: tuple | None = None

    def reset(self) -> None:
        self.inactive.reset()
        self.reactive.reset()
        self._saved = None

    def speculate(self) -> None:
        """Save the causal memory before an encode that may be taken back (`rollback`)."""
        self._saved = (self.inactive.save(), self.reactive.save(), self._next)

    def commit(self) -> None:
        self._saved = None

    def rollback(self) -> bool:
        """Undo the encodes since `speculate` (False: nothing to undo, e.g. reset since)."""
        if self._saved is None:
            return False
        inactive, reactive, self._next = self._saved
        self.inactive.restore(inactive)
        self.reactive.restore(reactive)
        self._saved = None
        return True

    def release(self, context: torch.Tensor) -> None:
        """The current CUDA stream has queued its last read of `context` (a buffer of ours)."""
        if self.device.type != "cuda":
            return
        for i, buffer in enumerate(self.buffers):
            if buffer is context:
                self._read[i] = event = torch.cuda.Event()
                event.record()

    def _buffer(self) -> tuple[int, torch.Tensor]:
        """The next buffer, once its last reader is done (waited for on the current CUDA
        stream)."""
        i = self._next
        self._next = 1 - i
        buffer = self.buffers[i]
        if self.device.type == "cuda":
            stream = torch.cuda.current_stream(self.device)
            if self._read[i] is not None:
                stream.wait_event(self._read[i])
            buffer.record_stream(stream)  # freed while the lane still writes: kept until done
        return i, buffer

    @torch.no_grad()
    def encode(self, shape: tuple[int, ...], chunk: int, first: bool, *,
               video: Tensor | None = None, source: Tensor | None = None,
               mask: Tensor | None = None) -> Tensor:
        """The context [1, 96, C, h, w] of a chunk of pixel `shape` [1, 3, T, H, W].

        video: what to generate from (control frames; None: zeros), source: the frames to keep
        where the mask is 0 (the input; keyframes written in), mask: [T, H, W], 1 = generate
        (None: generate everywhere, nothing kept)."""
        if mask is None:
            inactive = self.inactive.encode(None, shape, self.device, chunk, first)
            reactive = self.reactive.encode(video, shape, self.device, chunk, first)
        else:
            m = (mask > 0.5).to(torch.float32)
            keep = (1.0 - m)[None, None]
            assert source is not None, "a mask keeps part of the source"
            inactive = self.inactive.encode(source * keep.to(source.dtype), shape, self.device,
                                            chunk, first)
            reactive = (self.reactive.encode(video * m[None, None].to(video.dtype), shape,
                                             self.device, chunk, first)
                        if video is not None else
                        self.reactive.encode(None, shape, self.device, chunk, first))
        i, buffer = self._buffer()
        buffer[:, :LATENT] = inactive
        buffer[:, LATENT:2 * LATENT] = reactive
        if mask is None:
            if not self._mask_is_ones[i]:
                buffer[:, 2 * LATENT:] = 1.0
                self._mask_is_ones[i] = True
        else:
            buffer[:, 2 * LATENT:] = mask_channels(m)
            self._mask_is_ones[i] = False
        return buffer
