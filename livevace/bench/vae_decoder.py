"""The Wan VAE decoder against its floor: convolution FLOPs per chunk, and where the time goes.

`livevace bench vae_decoder` takes one steady chunk (3 latents after the video's first ones,
decoded one latent per pass as the pipeline does) at each `--sizes` and reports:
- the operation count of every convolution the chunk runs, from its shapes: 2 · output
  elements · input channels · kernel volume (the causal convolutions see their two remembered
  frames as input); the mid block's attention (per frame, 4 · (h·w)² · channels) beside it;
- the floor: that count at the measured bf16 matmul rate (8192³), the time no decoder could
  beat on this GPU;
- measured: the eager decoder, the compiled one (`vae_compiled`, as `go_fast` sets it up,
  learned first; CUDA only), and every convolution timed alone at its real shape in
  channels-last memory (cuDNN tuned), summed — the gap from the convolutions alone to the whole
  decoder is the rest of its work (norms, SiLU, upsampling, the causal concatenations);
- the convolutions' own achieved rates, largest first (`--top`).
`--tiny` runs a narrow decoder at 64×64 on a CPU (tests).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from livevace.bench.dit import matmul_rate, parse_resolution
from livevace.bench.report import Timing, table, time_cpu, time_cuda, write_result
from livevace.models.wan.vae import WanVAE, WanVAEConfig
from livevace.models.wan.vae_compiled import SteadyCausal

TINY = WanVAEConfig(base_dim=8)
LATENTS = 3
"""Latents per chunk (the pipeline's 3-latent chunks: 12 frames)."""


@dataclass(frozen=True)
class Conv:
    """One convolution call of the chunk."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    @property
    def flops(self) -> int:
        conv: Any = self.module
        per_output = 2 * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)
        return per_output * math.prod(self.output_shape)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="832x480,576x320",
                        help="WIDTHxHEIGHT list (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=10, help="timed chunks (default 10)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=8, help="convolutions listed per size")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--tiny", action="store_true", help="a narrow decoder at 64x64 (CPU)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (bench/results)")


def chunk_latents(h: int, w: int, device: torch.device | str, dtype: torch.dtype,
                  frames: int = LATENTS) -> torch.Tensor:
    g = torch.Generator().manual_seed(frames * 7 + h)
    return torch.randn(1, 16, frames, h, w, generator=g).to(device, dtype)


def steady_decoder(vae: WanVAE, h: int, w: int) -> Any:
    """A causal decoder past its video's first chunk (every memory full)."""
    decoder = vae.causal_decoder()
    decoder.decode(chunk_latents(h, w, vae.encoder.conv_in.weight.device, vae.dtype, 1 + LATENTS))
    return decoder


def chunk_convs(vae: WanVAE, h: int, w: int) -> tuple[list[Conv], int]:
    """Every convolution call of one steady chunk of latents h×w, and the mid block's attention
    FLOPs (works on the meta device: shapes only)."""
    decoder = steady_decoder(vae, h, w)
    names = {m: n for n, m in vae.decoder.named_modules()}
    names[vae.post_quant_conv] = "post_quant_conv"
    calls: list[Conv] = []

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        shape = list(args[0].shape)
        if getattr(module, "time_pad", 0):  # what the convolution sees: the remembered frames too
            shape[2] += module.time_pad
        calls.append(Conv(names[module], module, tuple(shape), tuple(out.shape)))

    handles = [m.register_forward_hook(hook) for m in names if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    try:
        decoder.decode(chunk_latents(h, w, vae.encoder.conv_in.weight.device, vae.dtype))
    finally:
        for handle in handles:
            handle.remove()
    attention = [c for c in calls if c.name.endswith("to_qkv")]
    attn_flops = sum(4 * c.output_shape[0] * (c.output_shape[2] * c.output_shape[3]) ** 2
                     * (c.output_shape[1] // 3) for c in attention)
    return calls, attn_flops


def conv_alone(conv: Conv, device: torch.device, dtype: torch.dtype, timer: Callable) -> Timing:
    """One convolution at its real shape, channels-last, nothing around it."""
    module: Any = conv.module
    layout = torch.channels_last_3d if isinstance(module, nn.Conv3d) else torch.channels_last
    weight = module.weight.detach().contiguous(memory_format=layout)
    x = torch.randn(conv.input_shape, device=device, dtype=dtype).contiguous(memory_format=layout)
    op = torch.nn.functional.conv3d if isinstance(module, nn.Conv3d) else torch.nn.functional.conv2d
    return timer(lambda: op(x, weight, module.bias, module.stride, module.padding))


def measure_size(vae: WanVAE, width: int, height: int, args: argparse.Namespace, rate: float,
                 timer: Callable) -> dict[str, Any]:
    device, dtype = vae.encoder.conv_in.weight.device, vae.dtype
    h, w = height // 8, width // 8
    with torch.device("meta"):
        meta = WanVAE(vae.config).to(dtype)
    convs, attn_flops = chunk_convs(meta, h, w)
    conv_flops = sum(c.flops for c in convs)
    latents = chunk_latents(h, w, device, dtype)
    with torch.no_grad():
        decoder = steady_decoder(vae, h, w)
        eager = timer(lambda: decoder.decode(latents))
        compiled = None
        if device.type == "cuda":
            vae.steady_decoder = SteadyCausal(vae.decoder, "decoder", conv2d=True)
            with vae.steady_decoder.learning():
                decoder = steady_decoder(vae, h, w)
                decoder.decode(latents)
            compiled = timer(lambda: decoder.decode(latents))
            vae.steady_decoder = None
        real = {name: m for name, m in vae.decoder.named_modules()} | {
            "post_quant_conv": vae.post_quant_conv}
        alone = [(c, conv_alone(Conv(c.name, real[c.name], c.input_shape, c.output_shape),
                                device, dtype, timer).p50) for c in convs]
    alone_ms = sum(ms for _, ms in alone)
    floor_ms = (conv_flops + attn_flops) / rate * 1e3
    top = sorted(alone, key=lambda a: -a[1])[:args.top]
    return {"size": f"{width}x{height}", "conv_gflop": conv_flops / 1e9,
            "attention_gflop": attn_flops / 1e9, "convs": len(convs), "floor_ms": floor_ms,
            "convs_alone_ms": alone_ms, "eager_ms": eager.p50,
            "compiled_ms": compiled.p50 if compiled else None,
            "convs_tflops": conv_flops / (alone_ms / 1e3) / 1e12 if alone_ms else 0.0,
            "top": [{"conv": c.name, "input": "×".join(map(str, c.input_shape)),
                     "gflop": c.flops / 1e9, "ms": ms,
                     "tflops": c.flops / (ms / 1e3) / 1e12 if ms else 0.0} for c, ms in top]}


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # as the node runs (`fast.go_fast`)
    try:
        torch.manual_seed(0)
        vae = WanVAE(TINY if args.tiny else WanVAEConfig()).to(device, dtype).eval()
        vae.requires_grad_(False)
        rate = matmul_rate(device, dtype, 8192 if cuda else 256, 20 if cuda else 5)

        def timer(fn: Callable[[], Any]) -> Timing:
            return (time_cuda if cuda else time_cpu)(fn, args.repeat, args.warmup)

        sizes = [(64, 64)] if args.tiny else [parse_resolution(s) for s in args.sizes.split(",")]
        rows = [measure_size(vae, w, h, args, rate, timer) for w, h in sizes]
    finally:
        torch.backends.cudnn.benchmark = previous
    print(table(rows, ["size", "conv_gflop", "attention_gflop", "convs", "floor_ms",
                       "convs_alone_ms", "convs_tflops", "eager_ms", "compiled_ms"]))
    print(f"per chunk of {LATENTS} latents ({4 * LATENTS} frames), {device} {dtype}; floor: the "
          f"FLOPs at the matmul rate {rate / 1e12:.3g} TFLOP/s")
    for row in rows:
        print(f"\n{row['size']}: the slowest convolutions alone")
        print(table(row["top"], ["conv", "input", "gflop", "ms", "tflops"]))
    path = write_result("vae-decoder", {"device": str(device), "dtype": str(dtype),
                                        "matmul_tflops": rate / 1e12, "rows": rows}, args.out)
    print(f"wrote {path}")
    return 0
