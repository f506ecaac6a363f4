"""Tiny autoencoder for Wan2.1 (`taew2_1.pth`, madebyollin/taehv layout), streaming.

TAEHV is a stack of 2D convolutions over frames plus three kinds of time-aware blocks:
`MemBlock` (sees its own input one step back in time, zeros before the first), `TPool` (the
encoder folds groups of 2 frames into 1) and `TGrow` (the decoder unfolds 1 frame into 2). For
Wan2.1: 4 frames → 1 latent in the encoder, 1 latent → 4 frames in the decoder, ~25x cheaper
than the full VAE. It works directly in the *normalised* Wan latent space (the DiT's space: no
mean/std to apply) with pixels in [0, 1]; the causal encoder and decoder below speak the VAE's
conventions (NCTHW, pixels in [-1, 1]) so the two are interchangeable.

Time alignment with the Wan VAE (latent k ↔ frames 4k-3 … 4k, latent 0 ↔ frame 0):
- decoding drops the first 3 frames the decoder makes for a video's first latent (taehv's
  `frames_to_trim`), so latent 0 → 1 frame and every later latent → 4 frames;
- encoding front-pads a video's first chunk (1+4k frames) with 3 copies of its first frame,
  so every 4-frame group the encoder pools is exactly the Wan VAE's group. (taehv's own
  `encode_video` pads at the end instead, which cannot stream a 1+4k first chunk.)
Streaming carries each MemBlock's last input frame across chunks, so chunk-by-chunk output
equals running the whole clip at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from livevace.errors import ModelError
from livevace.models.wan.codec_weights import check_state_dict, read_state_dict
from livevace.models.wan.vae import check_chunk


@dataclass(frozen=True)
class TAEConfig:
    """Shape of a TAEHV model; the defaults are taew2_1's."""

    latent_channels: int = 16
    encoder_width: int = 64
    decoder_widths: tuple[int, int, int, int] = (256, 128, 64, 64)
    encoder_time_downscale: tuple[bool, bool, bool] = (True, True, False)
    decoder_time_upscale: tuple[bool, bool, bool] = (False, True, True)

    @property
    def time_stride(self) -> int:
        return 2 ** sum(self.encoder_time_downscale)

    @property
    def time_upscale(self) -> int:
        return 2 ** sum(self.decoder_time_upscale)


def _conv(cin: int, cout: int, **kw: object) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, **kw)  # type: ignore[arg-type]


def _pixels_last(x: Tensor) -> Tensor:
    """[N, C, H, W] → the [N, H, W, C] view of its memory (a view when x is channels-last)."""
    return x.permute(0, 2, 3, 1)


def _channels_first(x: Tensor) -> Tensor:
    """[N, H, W, C] (contiguous) → [N, C, H, W] in channels-last memory, without a copy."""
    return x.contiguous().permute(0, 3, 1, 2)


class Clamp(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    """Residual conv block fed with its input and its input one time step earlier."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(cin * 2, cout), nn.ReLU(inplace=True), _conv(cout, cout),
                                  nn.ReLU(inplace=True), _conv(cout, cout))
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, past: Tensor) -> Tensor:
        return self.act(self.conv(torch.cat([x, past], 1)) + self.skip(x))


class TPool(nn.Module):
    """Folds `stride` consecutive frames (stacked on channels) into one."""

    def __init__(self, width: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(width * stride, width, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        s = self.stride  # NHWC [nt, h, w, c] → [nt/s, h, w, s·c] (frame j → channels j·c…)
        grouped = _pixels_last(x).reshape(nt // s, s, h, w, c).permute(0, 2, 3, 1, 4)
        return self.conv(_channels_first(grouped.reshape(nt // s, h, w, s * c)))


class TGrow(nn.Module):
    """Unfolds each frame into `stride` consecutive frames."""

    def __init__(self, width: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(width, width * stride, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        s = self.stride  # NHWC [nt, h, w, s·c] → [nt·s, h, w, c] (channels j·c… → frame j)
        y = _pixels_last(self.conv(x)).reshape(nt, h, w, s, c).permute(0, 3, 1, 2, 4)
        return _channels_first(y.reshape(nt * s, h, w, c))


def _encoder(cfg: TAEConfig) -> nn.Sequential:
    w = cfg.encoder_width
    layers: list[nn.Module] = [_conv(3, w), nn.ReLU(inplace=True)]
    for down in cfg.encoder_time_downscale:
        layers += [TPool(w, 2 if down else 1), _conv(w, w, stride=2, bias=False),
                   MemBlock(w, w), MemBlock(w, w), MemBlock(w, w)]
    return nn.Sequential(*layers, _conv(w, cfg.latent_channels))


def _decoder(cfg: TAEConfig) -> nn.Sequential:
    n = cfg.decoder_widths
    layers: list[nn.Module] = [Clamp(), _conv(cfg.latent_channels, n[0]), nn.ReLU(inplace=True)]
    for i, up in enumerate(cfg.decoder_time_upscale):
        layers += [MemBlock(n[i], n[i]), MemBlock(n[i], n[i]), MemBlock(n[i], n[i]),
                   nn.Upsample(scale_factor=2), TGrow(n[i], 2 if up else 1), _conv(n[i], n[i + 1], bias=False)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True), _conv(n[3], 3))


Memory = dict[int, Tensor]
"""Per MemBlock index: its last input frame, [N, C, H, W]."""


def run_layers(layers: nn.Sequential, x: Tensor, batch: int, memory: Memory) -> Tensor:
    """Apply `layers` to frames [N*T, C, H, W] (all T at once), MemBlocks seeing the previous
    frame: inside the chunk from `x`, across chunks from `memory` (updated in place).

    Everything stays channels-last (NHWC), cuDNN's native layout: in NCHW each convolution
    is wrapped in two layout transposes, a large part of a chunk's decode
    (`bench/NOTES_pipeline_speed.md` part 5).
    (Weights too: see `TinyAutoencoder.nhwc`.)"""
    x = x.contiguous(memory_format=torch.channels_last)
    for i, layer in enumerate(layers):
        if isinstance(layer, MemBlock):
            frames = x.view(batch, -1, *x.shape[1:])
            past = torch.empty_like(x)  # channels-last like x
            before = past.view(frames.shape)
            prev = memory.get(i)
            if prev is None:
                before[:, 0].zero_()
            else:
                before[:, 0].copy_(prev)
            before[:, 1:].copy_(frames[:, :-1])
            memory[i] = frames[:, -1].clone()
            x = layer(x, past)
        else:
            x = layer(x)
    return x


class TinyAutoencoder(nn.Module):
    """TAEHV weights; the work is done by the causal encoders and decoders it hands out."""

    def __init__(self, cfg: TAEConfig = TAEConfig()) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = _encoder(cfg)
        self.decoder = _decoder(cfg)

    def causal_encoder(self) -> "TAECausalEncoder":
        return TAECausalEncoder(self.nhwc())

    def causal_decoder(self) -> "TAECausalDecoder":
        return TAECausalDecoder(self.nhwc())

    def nhwc(self) -> "TinyAutoencoder":
        """Itself, convolution weights in channels-last memory (once): the layout the causal
        encoders and decoders run in (`run_layers`), so cuDNN converts neither input nor
        weights per call."""
        return self.to(memory_format=torch.channels_last)

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder[1].weight.dtype


def _frames(x: Tensor) -> tuple[Tensor, int]:
    """NCTHW → ([N*T, C, H, W], N)."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w), n


def _video(x: Tensor, n: int) -> Tensor:
    """[N*T, C, H, W] → NCTHW."""
    return x.reshape(n, -1, *x.shape[1:]).transpose(1, 2)


class TAECausalEncoder:
    """Encodes one video chunk by chunk (first 1+4k frames, then 4k)."""

    def __init__(self, tae: TinyAutoencoder) -> None:
        self.tae = tae
        self.reset()

    def reset(self) -> None:
        self.memory: Memory = {}
        self.chunks = 0

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """[B, 3, T, H, W] in [-1, 1] → normalised latents [B, 16, T', H/8, W/8]."""
        stride = self.tae.config.time_stride
        check_chunk(tuple(pixels.shape), self.chunks == 0, stride)
        if self.chunks == 0:  # align 4-frame groups with the Wan VAE's (frame 0 alone)
            pixels = torch.cat([pixels[:, :, :1].expand(-1, -1, stride - 1, -1, -1), pixels], 2)
        self.chunks += 1
        x, n = _frames(pixels.to(self.tae.dtype) * 0.5 + 0.5)
        return _video(run_layers(self.tae.encoder, x, n, self.memory), n)


class TAECausalDecoder:
    """Decodes normalised latents chunk by chunk: first latent → 1 frame, others → 4."""

    def __init__(self, tae: TinyAutoencoder) -> None:
        self.tae = tae
        self.reset()

    def reset(self) -> None:
        self.memory: Memory = {}
        self.latents_seen = 0

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """[B, 16, T, h, w] normalised → pixels [B, 3, T', 8h, 8w] in [-1, 1]."""
        x, n = _frames(latents.to(self.tae.dtype))
        frames = _video(run_layers(self.tae.decoder, x, n, self.memory), n)
        if self.latents_seen == 0:
            frames = frames[:, :, self.tae.config.time_upscale - 1:]
        self.latents_seen += latents.shape[2]
        return frames.clamp(0.0, 1.0).mul_(2.0).sub_(1.0)


# --- weights -------------------------------------------------------------------------

def config_from_state_dict(sd: dict[str, Tensor], path: str | Path) -> TAEConfig:
    """Read widths and time strides off the tensors (taehv files carry no config)."""
    try:
        enc_w, dec0 = sd["encoder.0.weight"].shape[0], sd["decoder.1.weight"]
        latent = dec0.shape[1]
        widths = (dec0.shape[0], sd["decoder.8.weight"].shape[0], sd["decoder.14.weight"].shape[0],
                  sd["decoder.20.weight"].shape[0])
        enc_down = tuple(sd[f"encoder.{i}.conv.weight"].shape[1] == 2 * enc_w for i in (2, 7, 12))
        dec_up = (False,) + tuple(sd[f"decoder.{i}.conv.weight"].shape[0] == 2 * widths[k]
                                  for k, i in ((1, 13), (2, 19)))
    except KeyError as e:
        raise ModelError(f"{Path(path).name} is not a TAEHV (taehv layout) checkpoint: no {e.args[0]}") from None
    if latent != 16:
        raise ModelError(f"{Path(path).name} makes {latent}-channel latents; Wan2.1 needs 16 "
                         "(use taew2_1.pth, not taew2_2 / taehv1_5)")
    return TAEConfig(latent, enc_w, widths, enc_down, dec_up)  # type: ignore[arg-type]


def load_tae(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> TinyAutoencoder:
    """Load `taew2_1.pth` (or its .safetensors copy). Wrong files raise ModelError."""
    sd = dict(read_state_dict(path, "tiny autoencoder"))
    cfg = config_from_state_dict(sd, path)
    for i in (7, 13, 19):  # stride-1 TGrow shipped with a 2-frame kernel: keep the last frame's
        key, want = f"decoder.{i}.conv.weight", cfg.decoder_widths[(i - 7) // 6]
        if key in sd and not cfg.decoder_time_upscale[(i - 7) // 6] and sd[key].shape[0] > want:
            sd[key] = sd[key][-want:]
    with torch.device("meta"):
        tae = TinyAutoencoder(cfg)
    check_state_dict(tae, sd, path, "TAEHV tiny autoencoder for Wan2.1 (taew2_1.pth)")
    tae.load_state_dict(sd, assign=True)
    return tae.to(device=device, dtype=dtype).eval().requires_grad_(False)

