"""DiT forward time per chunk (random weights, real shapes) against the FLOP floor and MFU.

One forward of one chunk (default 3 latent frames) with a full window cache (W = 12, sink 3),
with and without VACE, at each resolution. Speed does not depend on weight values, so the
weights are random at the real Wan2.1-(VACE-)1.3B shapes. The FLOP count is exact for the
config (main linears, self-attention over the window, text cross-attention, VACE branch; the
cached text K/V are not recomputed) and is divided by a measured large bf16 matmul rate to
give the floor; MFU = floor / measured time. `--tiny` runs a tiny config on the CPU (tests).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from livevace.bench.report import Timing, table, time_cpu, time_cuda, write_result
from livevace.errors import UserError
from livevace.models.wan.config import TINY_VACE, WAN21_VACE_1_3B, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SDPA_BACKENDS = {"auto": None, "flash": SDPBackend.FLASH_ATTENTION,
                 "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                 "math": SDPBackend.MATH}


@dataclass(frozen=True)
class Flops:
    """Floating-point operations of one forward of one chunk."""

    linear: float
    self_attention: float
    cross_attention: float
    vace: float

    @property
    def total(self) -> float:
        return self.linear + self.self_attention + self.cross_attention + self.vace


def forward_flops(cfg: WanConfig, layout: CacheLayout, vace: bool) -> Flops:
    """Matmul FLOPs per forward (2 per multiply-add), text K/V cached."""
    d, n_q = cfg.dim, layout.chunk * layout.frame_tokens
    n_kv = layout.window * layout.frame_tokens
    per_block_linear = 2 * n_q * (6 * d * d + 2 * d * cfg.ffn_dim)  # q,k,v,o, cross q,o, ffn
    head = 2 * n_q * d * cfg.patch_channels
    cross = 4 * n_q * cfg.text_len * d
    linear = cfg.num_layers * per_block_linear + head
    vace_flops = 0.0
    if vace:
        n_v = len(cfg.vace_layers)
        proj = 2 * n_q * d * d * (n_v + 1)  # after_proj each, before_proj once
        embed = 2 * n_q * d * cfg.vace_in_channels * 4
        vace_flops = n_v * (per_block_linear + 4 * n_q * n_q * d + cross) + proj + embed
    return Flops(linear, cfg.num_layers * 4 * n_q * n_kv * d, cfg.num_layers * cross, vace_flops)


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeat: int) -> float:
    """Measured FLOP/s of a large square matmul: the ceiling MFU is quoted against."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timing = _timer(device)(lambda: a @ b, repeat, 3)
    return 2 * n**3 / (timing.p50 / 1e3)


def _timer(device: torch.device) -> Callable[..., Timing]:
    return time_cuda if device.type == "cuda" else time_cpu


def parse_resolution(text: str) -> tuple[int, int]:
    """"832x480" → (width, height) in pixels, multiples of 16."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None
    if w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"{text}: width and height must be multiples of 16")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", type=parse_resolution, action="append",
                        help="WIDTHxHEIGHT in pixels (repeatable; default 576x320 and 832x480)")
    parser.add_argument("--chunk", type=int, default=3, help="latent frames per forward")
    parser.add_argument("--window", type=int, default=12, help="cached latent frames")
    parser.add_argument("--sink", type=int, default=3, help="sink frames of the window")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--attn", choices=("sdpa", "explicit"), default="sdpa")
    parser.add_argument("--sdpa-backend", choices=sorted(SDPA_BACKENDS), default="auto",
                        help="force one SDPA kernel (default: PyTorch's choice)")
    parser.add_argument("--repeat", type=int, default=20, help="timed forwards per row")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny random config at 64x64 (runs in seconds on a CPU)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (bench/results)")


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("bench dit: no CUDA GPU here; run with --tiny (CPU) or on a GPU machine")
    try:
        CacheLayout(16, 16, args.window, args.sink, args.chunk)
    except ValueError as exc:
        raise UserError(f"bench dit: {exc}") from None
    dtype = torch.float32 if args.tiny and device.type == "cpu" else DTYPES[args.dtype]
    cfg = TINY_VACE if args.tiny else WAN21_VACE_1_3B
    resolutions = args.resolution or ([(64, 64)] if args.tiny else [(576, 320), (832, 480)])
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = WanDiT(cfg)
    model.for_inference(dtype)
    model.attn_impl = args.attn
    print(f"random {cfg.name} on {device} ({dtype}) in {time.perf_counter() - t0:.1f} s; "
          f"measuring the matmul rate…")
    rate = matmul_rate(device, dtype, 256 if args.tiny else 8192, 5 if args.tiny else 20)
    rows = []
    for width, height in resolutions:
        for vace in (False, True):
            rows.append(_measure(model, args, device, width, height, vace, rate))
    columns = ["resolution", "vace", "tokens", "GFLOP", "floor_ms", "p50_ms", "p95_ms", "mfu_%",
               "dit_fps_4step", "peak_GB"]
    print(table(rows, columns))
    print(f"matmul rate {rate / 1e12:.3g} TFLOP/s ({dtype}); dit_fps_4step: 4·chunk video "
          f"frames per 5 forwards (4 steps + the cache write), DiT only")
    record: dict[str, Any] = {"config": cfg.name, "device": str(device), "dtype": str(dtype),
                              "matmul_tflops": rate / 1e12, "window": args.window,
                              "sink": args.sink, "chunk": args.chunk, "attn": args.attn,
                              "sdpa_backend": args.sdpa_backend,
                              "rows": rows}
    path = write_result("dit", record, args.out)
    print(f"wrote {path}")
    return 0


def _measure(model: WanDiT, args: argparse.Namespace, device: torch.device, width: int,
             height: int, vace: bool, rate: float) -> dict[str, Any]:
    cfg = model.cfg
    layout = CacheLayout(height // 8, width // 8, args.window, args.sink, args.chunk)
    cache = model.new_cache(layout)
    model.set_text(cache, torch.randn(1, cfg.text_len, cfg.text_dim, device=device))
    for start in range(0, args.window, args.chunk):  # fill the window (values do not matter)
        cache.begin_chunk(start)
    cache.begin_chunk(args.window)
    shape = (1, cfg.in_channels, args.chunk, layout.height, layout.width)
    x = torch.randn(shape, device=device)
    t = torch.full((1, args.chunk), 937.5, device=device)
    ctx = torch.randn(1, cfg.vace_in_channels, *shape[2:], device=device) if vace else None
    scale = torch.ones(len(cfg.vace_layers), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        with torch.no_grad():
            model(x, t, cache, vace=ctx, hint_scale=scale)

    backend = SDPA_BACKENDS[args.sdpa_backend]
    with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
        timing = _timer(device)(step, args.repeat, args.warmup)
    flops = forward_flops(cfg, layout, vace)
    floor_ms = flops.total / rate * 1e3
    video_frames = 4 * args.chunk  # a chunk of C latent frames decodes to 4·C video frames
    return {"resolution": f"{width}x{height}", "vace": "yes" if vace else "no",
            "tokens": args.chunk * layout.frame_tokens, "GFLOP": flops.total / 1e9,
            "floor_ms": floor_ms, "p50_ms": timing.p50, "p95_ms": timing.p95,
            "mfu_%": 100 * floor_ms / timing.p50,
            "dit_fps_4step": video_frames / (5 * timing.p50 / 1e3),
            "peak_GB": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0,
            "flops": flops.__dict__, "timing_ms": timing.as_dict()}
