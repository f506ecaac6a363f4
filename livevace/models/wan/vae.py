"""Wan2.1 VAE with streaming encode and decode: the causal-conv caches persist across chunks.

The network is Wan's 3D causal VAE (z 16, 4x time, 8x space). Every causal convolution keeps
the last two frames of its input between calls, so a video cut into chunks (first 1+4k
frames, then 4k) encodes to exactly the latents of the whole clip; decoding one latent frame
at a time yields 1 frame for the first latent and 4 for every later one. The causal memory
lives in a plain dict owned by a causal encoder or decoder (see `codec`), not in the modules,
so several of them (VACE's inactive and reactive videos, a wan and a tae decoder) share one
set of weights.

Latents leaving `VAECausalEncoder` and entering `VAECausalDecoder` are normalised per channel
((mu - mean) / std), the space the DiT and the tiny autoencoder work in. Pixels are NCTHW
in [-1, 1].

Module names follow diffusers' `AutoencoderKLWan`, so its state dicts load as they are; Wan's
original `Wan2.1_VAE.pth` layout is converted by `convert_original_keys`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from livevace.models.wan.codec_weights import check_state_dict, read_state_dict
from livevace.models.wan.vae_compiled import SteadyCausal

LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)
TIME_STRIDE = 4
SPACE_STRIDE = 8

State = dict[nn.Module, Any]
"""Causal memory of one causal encoder or decoder: per module, what it must remember of the
past."""


@dataclass(frozen=True)
class WanVAEConfig:
    """Shape of the VAE; the defaults are Wan2.1's (`Wan2.1_VAE.pth`, 127M parameters)."""

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latents_mean: tuple[float, ...] = LATENT_MEAN
    latents_std: tuple[float, ...] = LATENT_STD

    @property
    def time_stride(self) -> int:
        return 2 ** sum(self.temporal_downsample)


class CausalConv3d(nn.Conv3d):
    """3D convolution, zero-padded in space, causal in time.

    With a `state`, the last `2 * padding_t` input frames are kept for the next call (zeros
    before the first), so chunked input gives the same output as one long input.
    """

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] = 1, padding: int | tuple[int, int, int] = 0) -> None:
        pt, ph, pw = (padding,) * 3 if isinstance(padding, int) else padding
        super().__init__(cin, cout, kernel, stride, padding=(0, ph, pw))  # space: in the conv
        self.time_pad = 2 * pt

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:  # type: ignore[override]
        if self.time_pad:
            past = state.get(self) if state is not None else None
            if past is None:
                past = x.new_zeros(*x.shape[:2], self.time_pad, *x.shape[3:])
            x = torch.cat([past, x], dim=2)
            if state is not None:
                state[self] = remember(x[:, :, -self.time_pad:])
        return super().forward(x)


def remember(frames: Tensor) -> Tensor:
    """A copy of the last frames for the next chunk, in standard strides whatever the chunk
    length (a plain `clone` keeps the source's batch stride when the batch is 1, and the
    compiled encoder would then need one graph per previous chunk length)."""
    return frames.clone(memory_format=torch.contiguous_format)


class RMSNorm(nn.Module):
    """Wan's RMS norm over channels (dim 1), computed in fp32 for half-precision input."""

    def __init__(self, dim: int, images: bool) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))

    def forward(self, x: Tensor) -> Tensor:
        y = F.normalize(x.float(), dim=1).to(x.dtype)
        return y * self.scale * self.gamma


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cin, images=False)
        self.conv1 = CausalConv3d(cin, cout, 3, padding=1)
        self.norm2 = RMSNorm(cout, images=False)
        self.conv2 = CausalConv3d(cout, cout, 3, padding=1)
        self.conv_shortcut = CausalConv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, state: State) -> Tensor:
        h = self.conv_shortcut(x)
        x = self.conv1(F.silu(self.norm1(x)), state)
        x = self.conv2(F.silu(self.norm2(x)), state)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention within each frame (no mixing across time)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(y)).reshape(b * t, 1, c * 3, h * w).transpose(2, 3)
        q, k, v = qkv.chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        y = self.proj(y).reshape(b, t, c, h, w).transpose(1, 2)
        return x + y


class Resample(nn.Module):
    """2x spatial up/down sampling, and 2x in time for the *3d modes.

    Time handling reproduces Wan's chunked behaviour in one pass: the first frame of a video
    is never doubled (upsample) and passes through undecimated (downsample), so 1 latent
    frame decodes to 1 frame and 1+4k frames encode to 1+k latents.
    """

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode.startswith("up"):
            self.resample = nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest-exact"),
                                          nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: Tensor, state: State) -> Tensor:
        if self.mode == "upsample3d":
            x = self._double_time(x, state)
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)
        if self.mode.startswith("up"):  # nearest upsampling in fp32, as Wan does for bf16
            y = self.resample[1](self.resample[0](y.float()).to(y.dtype))
        else:
            y = self.resample(y)
        x = y.reshape(b, t, *y.shape[1:]).transpose(1, 2)
        if self.mode == "downsample3d":
            x = self._halve_time(x, state)
        return x

    def _double_time(self, x: Tensor, state: State) -> Tensor:
        head = None
        if self not in state:  # the video's first frame: kept single, not remembered
            state[self] = True
            head, x = x[:, :, :1], x[:, :, 1:]
        if x.shape[2]:
            b, c, t, h, w = x.shape
            y = self.time_conv(x, state).reshape(b, 2, c, t, h, w)
            x = torch.stack((y[:, 0], y[:, 1]), dim=3).reshape(b, c, 2 * t, h, w)
        return x if head is None else torch.cat([head, x], dim=2)

    def _halve_time(self, x: Tensor, state: State) -> Tensor:
        last = state.get(self)
        state[self] = remember(x[:, :, -1:])
        if last is None:  # first frame passes through; later frames pair up behind it
            return torch.cat([x[:, :, :1], self.time_conv(x)], dim=2) if x.shape[2] > 1 else x
        return self.time_conv(torch.cat([last, x], dim=2))


class MidBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(dim, dim), ResidualBlock(dim, dim)])
        self.attentions = nn.ModuleList([AttentionBlock(dim)])

    def forward(self, x: Tensor, state: State) -> Tensor:
        x = self.resnets[0](x, state)
        return self.resnets[1](self.attentions[0](x), state)


class Encoder(nn.Module):
    def __init__(self, cfg: WanVAEConfig) -> None:
        super().__init__()
        dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
        self.conv_in = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(cin, cout))
                cin = cout
            if i != len(cfg.dim_mult) - 1:
                blocks.append(Resample(cout, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock(dims[-1])
        self.norm_out = RMSNorm(dims[-1], images=False)
        self.conv_out = CausalConv3d(dims[-1], cfg.z_dim * 2, 3, padding=1)

    def forward(self, x: Tensor, state: State) -> Tensor:
        x = self.conv_in(x, state)
        for block in self.down_blocks:
            x = block(x, state)
        x = self.mid_block(x, state)
        return self.conv_out(F.silu(self.norm_out(x)), state)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_res_blocks: int, upsample: str | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(cin if i == 0 else cout, cout)
                                      for i in range(num_res_blocks + 1)])
        self.upsamplers = nn.ModuleList([Resample(cout, upsample)] if upsample else [])

    def forward(self, x: Tensor, state: State) -> Tensor:
        for block in (*self.resnets, *self.upsamplers):
            x = block(x, state)
        return x


class Decoder(nn.Module):
    def __init__(self, cfg: WanVAEConfig) -> None:
        super().__init__()
        dims = [cfg.base_dim * m for m in (cfg.dim_mult[-1], *cfg.dim_mult[::-1])]
        upsample_in_time = cfg.temporal_downsample[::-1]
        self.conv_in = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.mid_block = MidBlock(dims[0])
        blocks = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                cin //= 2  # the previous upsampler halves the channels
            last = i == len(cfg.dim_mult) - 1
            mode = None if last else ("upsample3d" if upsample_in_time[i] else "upsample2d")
            blocks.append(UpBlock(cin, cout, cfg.num_res_blocks, mode))
        self.up_blocks = nn.ModuleList(blocks)
        self.norm_out = RMSNorm(dims[-1], images=False)
        self.conv_out = CausalConv3d(dims[-1], 3, 3, padding=1)

    def forward(self, z: Tensor, state: State) -> Tensor:
        x = self.mid_block(self.conv_in(z, state), state)
        for block in self.up_blocks:
            x = block(x, state)
        return self.conv_out(F.silu(self.norm_out(x)), state)


class WanVAE(nn.Module):
    """Weights and latent statistics; the work is done by the causal encoders and decoders it
    hands out."""

    def __init__(self, cfg: WanVAEConfig = WanVAEConfig()) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.quant_conv = CausalConv3d(cfg.z_dim * 2, cfg.z_dim * 2, 1)
        self.post_quant_conv = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Decoder(cfg)
        self._stats: dict[torch.device, tuple[Tensor, Tensor]] = {}
        self.steady: SteadyCausal | None = None
        """The encoder compiled for the steady state (`vae_compiled`), or None: eager."""
        self.steady_decoder: SteadyCausal | None = None
        """The decoder compiled for the steady state (`vae_compiled`), or None: eager."""

    def causal_encoder(self) -> "VAECausalEncoder":
        return VAECausalEncoder(self)

    def causal_decoder(self, latents_per_pass: int = 1) -> "VAECausalDecoder":
        return VAECausalDecoder(self, latents_per_pass)

    def latent_stats(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """Per-channel (mean, std) in fp32 on `device` (kept out of the module's dtype)."""
        if device not in self._stats:
            shape = (1, self.config.z_dim, 1, 1, 1)
            self._stats[device] = (torch.tensor(self.config.latents_mean, device=device).view(shape),
                                   torch.tensor(self.config.latents_std, device=device).view(shape))
        return self._stats[device]

    def encode_step(self, pixels: Tensor, state: State) -> Tensor:
        """One chunk through the encoder: normalised latent mean (the posterior's mode). The
        chunk goes through in passes of one latent's frames, as Wan encodes (a video's first
        frame alone, then `time_stride` at a time): the same latents as one pass, since the
        causal memory carries across, with a fraction of one pass's feature maps (a 12-frame
        chunk's were most of the codec's memory), and one compiled shape for every chunk."""
        x = pixels.to(self.dtype)
        stride = self.config.time_stride
        cuts = [1] if not state else []
        cuts += [stride] * ((x.shape[2] - sum(cuts)) // stride)
        if sum(cuts) != x.shape[2]:  # not on latent boundaries (`check_chunk` refuses those)
            cuts = [x.shape[2]]
        mu = torch.cat([self._encode_pass(part.contiguous(), state)
                        for part in x.split(cuts, dim=2)], dim=2)
        mean, std = self.latent_stats(mu.device)
        return ((mu.float() - mean) / std).to(mu.dtype)

    def _encode_pass(self, x: Tensor, state: State) -> Tensor:
        """Frames in standard strides (see `vae_compiled`) → the latent mean, through the
        compiled steady state where one was learned."""
        h = self.steady(x, state) if self.steady is not None else None
        return self.quant_conv(self.encoder(x, state) if h is None else h)[:, : self.config.z_dim]

    def decode_step(self, latents: Tensor, state: State) -> Tensor:
        """Normalised latents through the decoder: pixels in [-1, 1]."""
        mean, std = self.latent_stats(latents.device)
        z = self.post_quant_conv((latents.float() * std + mean).to(self.dtype)).contiguous()
        steady = self.steady_decoder
        x = steady(z, state) if steady is not None else None
        return (self.decoder(z, state) if x is None else x).clamp_(-1.0, 1.0)

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.conv_in.weight.dtype


def check_chunk(shape: tuple[int, ...], first: bool, time_stride: int = TIME_STRIDE) -> None:
    """Pixel chunks [B, 3, T, H, W] that encode seamlessly: T = 1+4k first, then multiples of
    4; H and W multiples of 8."""
    frames, height, width = shape[2], shape[3], shape[4]
    if frames <= 0 or frames % time_stride != (1 % time_stride if first else 0):
        want = f"1+{time_stride}k" if first else f"a multiple of {time_stride}"
        raise ValueError(f"{'first' if first else 'later'} chunk has {frames} frames; needs {want}")
    if height % SPACE_STRIDE or width % SPACE_STRIDE:
        raise ValueError(f"frames of {width}x{height}: both sides must be multiples of {SPACE_STRIDE}")


class VAECausalEncoder:
    """Encodes one video chunk by chunk, with its own causal memory."""

    def __init__(self, vae: WanVAE) -> None:
        self.vae = vae
        self.reset()

    def reset(self) -> None:
        self.state: State = {}

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """[B, 3, T, H, W] in [-1, 1] → normalised latents [B, 16, T', H/8, W/8]."""
        check_chunk(tuple(pixels.shape), not self.state, self.vae.config.time_stride)
        return self.vae.encode_step(pixels, self.state)


class VAECausalDecoder:
    """Decodes normalised latents chunk by chunk: first latent → 1 frame, others → 4."""

    def __init__(self, vae: WanVAE, latents_per_pass: int = 1) -> None:
        self.vae = vae
        self.latents_per_pass = latents_per_pass
        self.reset()

    def reset(self) -> None:
        self.state: State = {}

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """[B, 16, T, h, w] normalised → pixels [B, 3, T', 8h, 8w] in [-1, 1]."""
        outs = [self.vae.decode_step(part, self.state)
                for part in latents.split(self.latents_per_pass, dim=2)]
        return torch.cat(outs, dim=2)


# --- weights -------------------------------------------------------------------------

_RESNET_KEYS = {"residual.0.gamma": "norm1.gamma", "residual.2.": "conv1.", "residual.3.gamma": "norm2.gamma",
                "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}


def convert_original_keys(sd: dict[str, Tensor], cfg: WanVAEConfig = WanVAEConfig()) -> dict[str, Tensor]:
    """Wan's original VAE layout (`Wan2.1_VAE.pth`) → this module's (= diffusers') names.

    Original: encoder.conv1, encoder.downsamples.N (flat), encoder.middle.{0,1,2},
    encoder.head.{0,2}, conv1/conv2 (quant), decoder.upsamples.N (flat: per level
    num_res_blocks+1 residual blocks, then a resample), ResidualBlock.residual.{0,2,3,6},
    shortcut; AttentionBlock names are shared.
    """
    per_level = cfg.num_res_blocks + 2  # residual blocks + the resample
    out = {}
    for key, value in sd.items():
        new = key
        new = re.sub(r"^conv1\.", "quant_conv.", new)
        new = re.sub(r"^conv2\.", "post_quant_conv.", new)
        new = re.sub(r"^(encoder|decoder)\.conv1\.", r"\1.conv_in.", new)
        new = re.sub(r"^(encoder|decoder)\.head\.0\.", r"\1.norm_out.", new)
        new = re.sub(r"^(encoder|decoder)\.head\.2\.", r"\1.conv_out.", new)
        new = re.sub(r"^(encoder|decoder)\.middle\.([02])\.",
                     lambda m: f"{m[1]}.mid_block.resnets.{int(m[2]) // 2}.", new)
        new = re.sub(r"^(encoder|decoder)\.middle\.1\.", r"\1.mid_block.attentions.0.", new)
        new = re.sub(r"^encoder\.downsamples\.", "encoder.down_blocks.", new)
        m = re.match(r"^decoder\.upsamples\.(\d+)\.(.*)$", new)
        if m:
            level, j = divmod(int(m[1]), per_level)
            inner = "upsamplers.0" if j == cfg.num_res_blocks + 1 else f"resnets.{j}"
            new = f"decoder.up_blocks.{level}.{inner}.{m[2]}"
        for old_part, new_part in _RESNET_KEYS.items():
            new = new.replace("." + old_part, "." + new_part)
        out[new] = value
    return out


def load_wan_vae(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 cfg: WanVAEConfig = WanVAEConfig()) -> WanVAE:
    """Load Wan2.1's VAE from `Wan2.1_VAE.pth`, a safetensors copy (original or diffusers
    layout), or a diffusers `vae/` folder. Wrong files raise ModelError naming the problem."""
    sd = read_state_dict(path, "Wan VAE", folder_file="diffusion_pytorch_model.safetensors")
    if any(k.startswith("decoder.middle.") or k.startswith("decoder.upsamples.") for k in sd):
        sd = convert_original_keys(sd, cfg)
    with torch.device("meta"):
        vae = WanVAE(cfg)
    check_state_dict(vae, sd, path, "Wan2.1 VAE (Wan2.1_VAE.pth)")
    vae.load_state_dict(sd, assign=True)
    return vae.to(device=device, dtype=dtype).eval().requires_grad_(False)

