"""DiT forward time per chunk (random weights, real shapes) against the FLOP floor and MFU.

One forward of one chunk (default 3 latent frames) with a full window cache (W = 12, sink 3),
with and without VACE, at each resolution; then whole chunks through `StreamSampler` (steps
+ the cache-write pass) after its warm-up. Speed does not depend on weight values, so the
weights are random at the real Wan2.1-(VACE-)1.3B shapes. The FLOP count is exact for the
config (main linears, self-attention over the window, text cross-attention, VACE branch; the
cached text K/V are not recomputed) and is divided by a measured large bf16 matmul rate to
give the floor; MFU = floor / measured time. `--tiny` runs a tiny config on the CPU (tests).

Speed variants (`compiled.Acceleration`): `--compile`, `--cuda-graph`, `--fp8`, or a sweep in
one process with `--variants eager,compile+graph,compile+graph+fp8`. Each row reports its
output's error against eager on the same inputs (`err`), the first forward's time (compile and
capture at that shape: `setup_s`) and the sampler's warm-up (`warmup_s`). `--profile` adds a
kernel-time breakdown per row (GEMM, attention, compiled Triton, other element-wise, idle).
"""

from __future__ import annotations

import argparse
import contextlib
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from livevace.bench.kernels import try_profile
from livevace.bench.report import Timing, table, time_cpu, time_cuda, write_result
from livevace.errors import UserError
from livevace.models.wan.config import TINY_VACE, WAN21_VACE_1_3B, WanConfig
from livevace.models.wan.compiled import COMPILE_MODES, FP8_BF16, Acceleration, CompileMode
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout, StreamCache
from livevace.models.wan.sampler import StreamSampler

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


VARIANT_WORDS = ("eager", "compile", "autotune", "graph", "fp8", "fp8all", "fa4", "unfused")


def parse_variant(text: str) -> Acceleration:
    """"compile+graph+fp8" → Acceleration (words: `VARIANT_WORDS`; fp8all: no block linear
    kept in bf16)."""
    words = [w for w in text.strip().lower().split("+") if w]
    bad = [w for w in words if w not in VARIANT_WORDS]
    if bad or not words:
        raise argparse.ArgumentTypeError(f"{text!r}: variants join {', '.join(VARIANT_WORDS)} "
                                         f"with '+'")
    mode: CompileMode = ("max-autotune" if "autotune" in words
                         else "default" if "compile" in words else "off")
    fp8 = [w for w in words if w.startswith("fp8")]
    if len(fp8) > 1:
        raise argparse.ArgumentTypeError(f"{text!r}: one of fp8, fp8all")
    return Acceleration(compile=mode, cuda_graph="graph" in words, fp8=bool(fp8),
                        fp8_bf16=() if "fp8all" in fp8 else FP8_BF16,
                        fuse_qkv="unfused" not in words, flash4="fa4" in words)


def parse_variants(text: str) -> list[Acceleration]:
    return [parse_variant(v) for v in text.split(",") if v.strip()]


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
    parser.add_argument("--vace", choices=("both", "yes", "no"), default="both",
                        help="rows with the VACE branch, without, or both")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="off",
                        help="torch.compile the block phases (see livevace.models.wan.compiled)")
    parser.add_argument("--cuda-graph", action="store_true", help="replay the step as a CUDA graph")
    parser.add_argument("--fp8", action="store_true",
                        help="FP8 e4m3 linear layers (quality-affecting; Ada/Hopper)")
    parser.add_argument("--no-fuse-qkv", action="store_true", help="separate q, k, v GEMMs")
    parser.add_argument("--variants", type=parse_variants, default=None,
                        help="sweep in one process, e.g. eager,compile+graph,compile+graph+fp8 "
                        f"(words: {', '.join(VARIANT_WORDS)}); overrides the four flags above")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per timed chunk")
    parser.add_argument("--chunks", type=int, default=8,
                        help="whole chunks timed through the sampler per row (0: none)")
    parser.add_argument("--profile", action="store_true",
                        help="kernel-time breakdown per row (and top kernels to a text file)")
    parser.add_argument("--repeat", type=int, default=20, help="timed forwards per row")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny random config at 64x64 (runs in seconds on a CPU)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (bench/results)")


@dataclass
class Bench:
    """What every row of one run shares."""

    model: WanDiT
    args: argparse.Namespace
    device: torch.device
    rate: float
    profile_lines: list[str]


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("bench dit: no CUDA GPU here; run with --tiny (CPU) or on a GPU machine")
    try:
        CacheLayout(16, 16, args.window, args.sink, args.chunk)
    except ValueError as exc:
        raise UserError(f"bench dit: {exc}") from None
    variants = args.variants or [Acceleration(args.compile, args.cuda_graph, args.fp8,
                                              not args.no_fuse_qkv)]
    if device.type != "cuda" and any(v.cuda_graph for v in variants):
        raise UserError("bench dit: CUDA graphs need a CUDA GPU")
    dtype = torch.float32 if args.tiny and device.type == "cpu" else DTYPES[args.dtype]
    cfg = TINY_VACE if args.tiny else WAN21_VACE_1_3B
    resolutions = args.resolution or ([(64, 64)] if args.tiny else [(576, 320), (832, 480)])
    vace_rows = {"both": (False, True), "yes": (True,), "no": (False,)}[args.vace]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = WanDiT(cfg)
    model.for_inference(dtype)
    model.attn_impl = args.attn
    print(f"random {cfg.name} on {device} ({dtype}) in {time.perf_counter() - t0:.1f} s; "
          f"measuring the matmul rate…")
    rate = matmul_rate(device, dtype, 256 if args.tiny else 8192, 5 if args.tiny else 20)
    bench = Bench(model, args, device, rate, [])
    shapes = [(w, h, v) for w, h in resolutions for v in vace_rows]
    backend = SDPA_BACKENDS[args.sdpa_backend]
    rows = []
    with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
        references = {shape: _reference(bench, *shape) for shape in shapes}
        for variant in variants:
            rows += _variant_rows(bench, variant, shapes, references)
    columns = ["variant", "resolution", "vace", "floor_ms", "p50_ms", "p95_ms", "mfu_%", "err",
               "chunk_ms", "dit_fps", "setup_s", "warmup_s", "peak_GB"]
    print(table([{**r, "err": f"{r['err']:.1e}"} if "err" in r else r for r in rows], columns))
    print(f"matmul rate {rate / 1e12:.3g} TFLOP/s ({dtype}); chunk_ms: one chunk of {args.chunk} "
          f"latent frames = {args.steps} steps + the cache write, through StreamSampler; "
          f"dit_fps: {4 * args.chunk} video frames per chunk_ms (DiT only); err: relative to eager")
    record: dict[str, Any] = {"config": cfg.name, "device": str(device), "dtype": str(dtype),
                              "matmul_tflops": rate / 1e12, "window": args.window,
                              "sink": args.sink, "chunk": args.chunk, "attn": args.attn,
                              "sdpa_backend": args.sdpa_backend, "steps": args.steps,
                              "rows": rows}
    path = write_result("dit", record, args.out)
    print(f"wrote {path}")
    if bench.profile_lines:
        prof = path.with_name(path.stem + "-profile.txt")
        prof.write_text("\n".join(bench.profile_lines) + "\n")
        print(f"wrote {prof}")
    return 0


def _variant_rows(bench: Bench, variant: Acceleration, shapes: list[tuple[int, int, bool]],
                  references: dict[tuple[int, int, bool], torch.Tensor]) -> list[dict[str, Any]]:
    """Rows of one variant; a variant that fails is reported as one row and the run goes on."""
    try:
        bench.model.accelerate(variant)
        return [_measure(bench, variant, *shape, references[shape]) for shape in shapes]
    except Exception as exc:  # noqa: BLE001 - a sweep on a lent GPU must not die on one variant
        traceback.print_exc()
        return [{"variant": variant.label, "resolution": "-", "vace": "-",
                 "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}]
    finally:
        bench.model.accelerate(Acceleration())
        _free(bench.device)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _layout(bench: Bench, width: int, height: int) -> CacheLayout:
    a = bench.args
    return CacheLayout(height // 8, width // 8, a.window, a.sink, a.chunk)


def _step_inputs(bench: Bench, width: int, height: int, vace: bool
                 ) -> tuple[StreamCache, Callable[[], torch.Tensor]]:
    """A full-window cache with random history and text, and one forward on seeded inputs:
    the same for every variant."""
    model, device, cfg = bench.model, bench.device, bench.model.cfg
    layout = _layout(bench, width, height)
    g = torch.Generator(device=device).manual_seed(width * 7 + height + vace)
    cache = model.new_cache(layout)
    for buf in (cache.k, cache.v):
        buf.copy_(torch.randn(buf.shape, generator=g, device=device))
    model.set_text(cache, torch.randn(1, cfg.text_len, cfg.text_dim, generator=g, device=device))
    for start in range(0, bench.args.window + 1, bench.args.chunk):  # ends with a full window
        cache.begin_chunk(start)
    shape = (1, cfg.in_channels, bench.args.chunk, layout.height, layout.width)
    x = torch.randn(shape, generator=g, device=device)
    t = torch.full((1, bench.args.chunk), 937.5, device=device)
    ctx = (torch.randn(1, cfg.vace_in_channels, *shape[2:], generator=g, device=device)
           if vace else None)
    scale = torch.ones(len(cfg.vace_layers), device=device)

    def step() -> torch.Tensor:
        with torch.no_grad():
            return model(x, t, cache, vace=ctx, hint_scale=scale)

    return cache, step


def _reference(bench: Bench, width: int, height: int, vace: bool) -> torch.Tensor:
    """The eager output every variant's output is compared with."""
    cache, step = _step_inputs(bench, width, height, vace)
    out = step()
    del cache
    return out


def _measure(bench: Bench, variant: Acceleration, width: int, height: int, vace: bool,
             reference: torch.Tensor) -> dict[str, Any]:
    args, device, model = bench.args, bench.device, bench.model
    layout = _layout(bench, width, height)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cache, step = _step_inputs(bench, width, height, vace)
    t0 = time.perf_counter()
    out = step()
    _sync(device)
    setup_s = time.perf_counter() - t0
    err = float((out.double() - reference.double()).norm() / reference.double().norm())
    timing = _timer(device)(step, args.repeat, args.warmup)
    row_name = f"{variant.label} {width}x{height} vace={'yes' if vace else 'no'}"
    profile = _profile(step, device, row_name, bench.profile_lines) if args.profile else {}
    del cache
    chunk = _chunk_timing(bench, layout, vace)
    flops = forward_flops(model.cfg, layout, vace)
    floor_ms = flops.total / bench.rate * 1e3
    video_frames = 4 * args.chunk  # a chunk of C latent frames decodes to 4·C video frames
    row = {"variant": variant.label, "resolution": f"{width}x{height}",
           "vace": "yes" if vace else "no", "tokens": args.chunk * layout.frame_tokens,
           "GFLOP": flops.total / 1e9, "floor_ms": floor_ms, "p50_ms": timing.p50,
           "p95_ms": timing.p95, "mfu_%": 100 * floor_ms / timing.p50, "err": err,
           "setup_s": setup_s,
           "peak_GB": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0,
           "flops": flops.__dict__, "timing_ms": timing.as_dict(), "profile_ms": profile,
           "acceleration": variant.__dict__}
    if chunk is not None:
        row.update(chunk_ms=chunk.timing.p50, chunk_p95_ms=chunk.timing.p95,
                   dit_fps=video_frames / (chunk.timing.p50 / 1e3), warmup_s=chunk.warmup_s,
                   forwards_per_chunk=chunk.forwards, captures=chunk.captures,
                   captures_timed=chunk.captures_timed, chunk_timing_ms=chunk.timing.as_dict())
    print(f"{row_name}: {timing.p50:.2f} ms/forward, err {err:.2g}, setup {setup_s:.1f} s"
          + (f", {chunk.timing.p50:.1f} ms/chunk of {chunk.forwards:g} forwards, "
             f"{chunk.captures} graphs captured in {chunk.warmup_s:.2f} s warm-up "
             f"(+{chunk.captures_timed} while timing)" if chunk else ""), flush=True)
    return row


@dataclass(frozen=True)
class ChunkStats:
    """Whole chunks through the sampler, and what its warm-up did."""

    warmup_s: float
    timing: Timing
    forwards: float
    """Model calls per timed chunk (steps + the cache write)."""
    captures: int
    """CUDA graphs captured by the warm-up."""
    captures_timed: int
    """Captured while timing (0 unless a cache state was missed by the warm-up)."""


def _chunk_timing(bench: Bench, layout: CacheLayout, vace: bool) -> ChunkStats | None:
    args, device, model, cfg = bench.args, bench.device, bench.model, bench.model.cfg
    if args.chunks <= 0:
        return None
    steps = [1000 - i * 1000 // args.steps for i in range(args.steps)]
    sampler = StreamSampler(model, model.new_cache(layout), steps=steps)
    sampler.set_text(torch.randn(1, cfg.text_len, cfg.text_dim, device=device))
    ctx = (torch.randn(1, cfg.vace_in_channels, args.chunk, layout.height, layout.width,
                       device=device) if vace else None)

    def captures() -> int:
        return model.graphs.captures if model.graphs is not None else 0

    before = captures()
    warmup_s = sampler.warm_up(vace=vace)
    warmed = captures()
    for _ in range(-(-args.window // args.chunk)):  # a full window before timing
        sampler.generate_chunk(vace=ctx)
    calls = [0]
    hook = model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        timing = _timer(device)(lambda: sampler.generate_chunk(vace=ctx), args.chunks, 1)
    finally:
        hook.remove()
    return ChunkStats(warmup_s, timing, calls[0] / (args.chunks + 1), warmed - before,
                      captures() - warmed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profile(step: Callable[[], Any], device: torch.device, title: str,
             lines: list[str], forwards: int = 3) -> dict[str, Any]:
    """Kernel time per forward by kind, busy and idle time (`bench.kernels`); {} if the
    profiler fails (profiling is an extra: the row is kept)."""
    prof = try_profile(step, forwards, device, title)
    if prof is None:
        return {}
    summary = {k: round(v, 3) for k, v in prof.by_kind().items()}
    summary.update(kernels_ms=round(prof.kernels_ms, 3), busy_ms=round(prof.busy_ms, 3),
                   wall_ms=round(prof.wall_ms, 3), idle_ms=round(prof.idle_ms, 3),
                   launches=round(prof.launches))
    print(f"{title}: profile ms/forward " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    lines += prof.lines(title)
    return summary
