"""Codec speed: wan and tae encode/decode per 12-frame chunk, and UMT5-XXL prompt encoding.

Random weights at the real shapes (speed does not depend on their values), causal memory
carried from chunk to chunk exactly as in the pipeline: a 9-frame first chunk warms the
causal encoder, then every timed call encodes 12 more frames or decodes 3 more latents. `--tiny`
runs narrow models at a small size so the whole path can be exercised on a CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from livevace.bench.report import Timing, table, time_cpu, time_cuda, write_result
from livevace.models.wan.tae import TAEConfig, TinyAutoencoder
from livevace.models.wan.text import TEXT_LEN, WanTextEncoder, umt5_config
from livevace.models.wan.vae import WanVAE, WanVAEConfig

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TINY_VAE = WanVAEConfig(base_dim=8)
TINY_TAE = TAEConfig(encoder_width=8, decoder_widths=(16, 8, 8, 8))
TINY_TEXT = dict(vocab_size=1000, d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2)
PROMPT_TOKENS = 64  # a typical VJ prompt; all 512 positions are computed regardless


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="576x320,832x480", help="WIDTHxHEIGHT list (default: %(default)s)")
    parser.add_argument("--codecs", default="wan,tae", help="codecs to time (default: %(default)s)")
    parser.add_argument("--latents-per-pass", default="1,3",
                        help="wan decode: latent frames per decoder pass, one row each (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=20, help="timed chunks per row (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed chunks first (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default: %(default)s)")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES), help="(default: %(default)s)")
    parser.add_argument("--no-text", action="store_true", help="skip the UMT5-XXL prompt encoder")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="keep cuDNN's default algorithm choice (the pipeline's shapes are static, so it tunes)")
    parser.add_argument("--tiny", action="store_true", help="narrow random models at 32x32 (CPU smoke run)")
    parser.add_argument("--out", default=None, help="results folder (default: bench/results)")


def run(args: argparse.Namespace) -> int:
    previous = torch.backends.cudnn.benchmark
    try:
        return _run(args)
    finally:
        torch.backends.cudnn.benchmark = previous


def _run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    dtype = DTYPES[args.dtype]
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    sizes = ["32x32"] if args.tiny else args.sizes.split(",")
    timer = _timer(device, args.repeat, args.warmup)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        for name in args.codecs.split(","):
            model = _codec(name, args.tiny).to(device=device, dtype=dtype)
            passes = [int(n) for n in args.latents_per_pass.split(",")] if name == "wan" else [0]
            for lpp in passes:
                rows.append(_time_codec(model, name, lpp, width, height, device, dtype, timer))
            del model
            _free(device)
    text = None if args.no_text else _time_text(args.tiny, device, dtype, timer)
    _free(device)
    columns = ["codec", "size", "encode_ms", "encode_p95_ms", "decode_ms", "decode_p95_ms", "decode_fps",
               "peak_mem_gb"]
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}), {args.dtype}, "
          f"per chunk of 12 frames (3 latents), p50 over {args.repeat}, "
          f"cudnn.benchmark {torch.backends.cudnn.benchmark}")
    print(table(rows, columns))
    if text:
        print(f"UMT5 {'tiny' if args.tiny else 'XXL'} prompt encode ({TEXT_LEN} tokens): "
              f"p50 {text['encode_ms']:.1f} ms, p95 {text['encode_p95_ms']:.1f} ms, "
              f"peak {text['peak_mem_gb']:.1f} GB")
    path = write_result("codecs", {"device": str(device), "dtype": args.dtype, "tiny": args.tiny,
                                   "cudnn_benchmark": torch.backends.cudnn.benchmark,
                                   "rows": rows, "text": text}, Path(args.out) if args.out else None)
    print(f"wrote {path}")
    return 0


def _timer(device: torch.device, repeat: int, warmup: int) -> Callable[[Callable[[], Any]], Timing]:
    if device.type == "cuda":
        return lambda fn: time_cuda(fn, repeat, warmup)
    return lambda fn: time_cpu(fn, repeat, warmup)


def _codec(name: str, tiny: bool) -> nn.Module:
    if name == "wan":
        return WanVAE(TINY_VAE if tiny else WanVAEConfig()).eval()
    if name == "tae":
        return TinyAutoencoder(TINY_TAE if tiny else TAEConfig()).eval()
    raise SystemExit(f"unknown codec {name!r} (wan, tae)")


def _time_codec(model: Any, name: str, latents_per_pass: int, width: int, height: int, device: torch.device,
                dtype: torch.dtype, timer: Callable[[Callable[[], Any]], Timing]) -> dict[str, Any]:
    g = torch.Generator(device).manual_seed(0)
    first = torch.rand(1, 3, 9, height, width, device=device, generator=g, dtype=dtype) * 2 - 1
    chunk = torch.rand(1, 3, 12, height, width, device=device, generator=g, dtype=dtype) * 2 - 1
    latents = torch.randn(1, 16, 3, height // 8, width // 8, device=device, generator=g, dtype=dtype)
    _reset_peak(device)
    encoder = model.causal_encoder()
    encoder.encode(first)
    enc = timer(lambda: encoder.encode(chunk))
    decoder = model.causal_decoder(latents_per_pass) if name == "wan" else model.causal_decoder()
    decoder.decode(latents)
    dec = timer(lambda: decoder.decode(latents))
    label = f"{name} ({latents_per_pass}/pass)" if name == "wan" else name
    return {"codec": label, "size": f"{width}x{height}", "encode_ms": enc.p50, "encode_p95_ms": enc.p95,
            "decode_ms": dec.p50, "decode_p95_ms": dec.p95, "decode_fps": 12e3 / dec.p50,
            "peak_mem_gb": _peak(device), "encode": enc.as_dict(), "decode": dec.as_dict()}


def _time_text(tiny: bool, device: torch.device, dtype: torch.dtype,
               timer: Callable[[Callable[[], Any]], Timing]) -> dict[str, Any]:
    from transformers import UMT5EncoderModel

    config = umt5_config(**(TINY_TEXT if tiny else {}))
    with torch.device("meta"):
        model = UMT5EncoderModel(config).to(dtype)
    model = model.to_empty(device=device).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if "layer_norm" in name else p.normal_(0.0, 1.0 if "shared" in name else 0.02)
    model.encoder.embed_tokens.weight = model.shared.weight
    encoder = WanTextEncoder(model, tokenizer=None)
    ids = torch.zeros(1, TEXT_LEN, dtype=torch.long, device=device)
    ids[0, :PROMPT_TOKENS] = torch.randint(3, config.vocab_size, (PROMPT_TOKENS,), device=device)
    mask = (ids > 0).long()
    _reset_peak(device)
    t = timer(lambda: encoder.encode_ids(ids, mask))
    result = {"config": "tiny" if tiny else "umt5-xxl", "encode_ms": t.p50, "encode_p95_ms": t.p95,
              "peak_mem_gb": _peak(device), "timing": t.as_dict()}
    return result


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else 0.0


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
