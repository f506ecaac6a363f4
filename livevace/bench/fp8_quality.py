"""FP8's quality cost: the same stream in bf16 and with FP8 linear layers, chunk by chunk.

`livevace bench fp8_quality` streams `--chunks` chunks (64 by default) through one model,
first with bf16 linear layers, then with FP8 ones (`compiled.Acceleration.fp8`), both times
from the same start: the same seed, text embedding and, with `--mode vace`, the same control
context per chunk. Every chunk's latents and its frames decoded by the Wan VAE (`--decoder
wan`, a causal decoder per stream) or the tiny one are set against bf16's:
- relative error ‖fp8 − bf16‖ / ‖bf16‖ of the latents and of the frames, per chunk;
- PSNR of the frames (pixels in [-1, 1], a peak-to-peak range of 2).
Reported: median, 95th percentile and worst over the chunks, and the first and last chunk's
(errors that grow along the stream show as a last chunk worse than the first).

Weights: random at the model's real shapes (`--weights random`, the default; the catalogue's
with `--weights auto`), `--weights tiny-random` on a CPU (tests). The DiT runs with the
node's compiled phases (`--compile`, a CUDA GPU), where FP8's activation quantisation sits
inside them as it does live. Quality only: speed is `bench pipeline`'s (its FP8 rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any, Iterator

import torch

from livevace.bench.dit import parse_resolution
from livevace.bench.report import table, write_result
from livevace.bench.rig import Settings, load_model_set
from livevace.errors import UserError
from livevace.models.wan import zoo
from livevace.models.wan.compiled import FP8_BF16, Acceleration
from livevace.pipelines.vace.choices import RANDOM, TINY_RANDOM, WEIGHTS
from livevace.pipelines.vace.model_set import ModelSet

Chunk = tuple[torch.Tensor, torch.Tensor]
"""A chunk's latents and decoded frames, both float32 on the host."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", type=parse_resolution, default=(832, 480),
                        help="WIDTHxHEIGHT, multiples of 16 (default 832x480)")
    parser.add_argument("--chunks", type=int, default=64, help="chunks compared (default 64)")
    parser.add_argument("--mode", choices=("t2v", "vace"), default="t2v",
                        help="t2v, or vace with a random control context per chunk")
    parser.add_argument("--fp8-bf16", type=lambda t: tuple(n for n in t.split(",") if n),
                        default=FP8_BF16, metavar="NAMES",
                        help="block linears FP8 keeps in bf16 ('' for none; default "
                        f"{','.join(FP8_BF16)})")
    parser.add_argument("--decoder", choices=("wan", "tae"), default="wan",
                        help="the decoder of the compared frames (default wan)")
    parser.add_argument("--compile", action="store_true",
                        help="the DiT's compiled phases (+ CUDA graphs), as the node runs it")
    parser.add_argument("--model", default="longlive", help="zoo recipe (default longlive)")
    parser.add_argument("--weights", choices=WEIGHTS, default=RANDOM,
                        help=f"{RANDOM} (default): real shapes; {TINY_RANDOM}: toy sizes, a CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (bench/results)")


def stream(models: ModelSet, args: argparse.Namespace) -> Iterator[Chunk]:
    """The stream of `args.chunks` chunks with the model's current acceleration, each chunk's
    latents and frames; every call starts from the same seed, text and controls."""
    recipe, dit, device = models.recipe, models.dit, models.device
    width, height = args.resolution
    sampler = zoo.open_stream(recipe, dit, height // 8, width // 8, None, None, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    cfg = dit.cfg
    sampler.set_text(torch.randn(1, cfg.text_len, cfg.text_dim, generator=g).to(device,
                                                                                  dit.compute_dtype))
    decoder = (models.vae if args.decoder == "wan" else models.tae).causal_decoder()
    chunk = sampler.cache.layout.chunk
    if args.compile and device.type == "cuda":
        sampler.warm_up(vace=args.mode == "vace")
    for _ in range(args.chunks):
        ctx = None
        if args.mode == "vace":
            ctx = torch.randn(1, cfg.vace_in_channels, chunk, height // 8, width // 8,
                              generator=g).to(device, dit.compute_dtype)
        with torch.no_grad():
            latents = sampler.generate_chunk(vace=ctx)
            frames = decoder.decode(latents.to(models.vae.dtype))
        yield latents.float().cpu(), frames.float().cpu()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of pixels in [-1, 1] (peak-to-peak 2); inf where they are equal."""
    mse = float((a.double() - b.double()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {"median": statistics.median(values), "p95": p95, "first": values[0],
            "last": values[-1]}


def compare(reference: list[Chunk], chunks: Iterator[Chunk]) -> dict[str, Any]:
    """Per-chunk errors of `chunks` against `reference`, and their summaries."""
    lat, pix, db = [], [], []
    for (ref_lat, ref_pix), (got_lat, got_pix) in zip(reference, chunks, strict=True):
        lat.append(rel_err(got_lat, ref_lat))
        pix.append(rel_err(got_pix, ref_pix))
        db.append(psnr(got_pix, ref_pix))
    return {"latents": {**summary(lat), "worst": max(lat)},
            "frames": {**summary(pix), "worst": max(pix)},
            "psnr_db": {**summary(db), "worst": min(db)},
            "per_chunk": {"latents": lat, "frames": pix, "psnr_db": db}}


def run(args: argparse.Namespace) -> int:
    if args.chunks < 1:
        raise UserError("bench fp8_quality: --chunks must be at least 1")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    width, height = args.resolution
    models = load_model_set(args.model, args.weights, device, "random",
                            Settings(width, height, decoder=args.decoder))
    try:
        base = Acceleration(compile="default" if args.compile else "off",
                            cuda_graph=args.compile and device.type == "cuda")
        try:
            models.dit.accelerate(base)
            reference = list(stream(models, args))
            models.dit.accelerate(dataclasses.replace(base, fp8=True, fp8_bf16=args.fp8_bf16))
            rows = [{"acceleration": models.dit.acceleration.label,
                     **compare(reference, stream(models, args))}]
        except ValueError as exc:
            raise UserError(f"bench fp8_quality: {exc}") from None
    finally:
        models.close()
    print(table([flat(r) for r in rows], ["fp8", "latents median", "latents p95",
                                          "latents worst", "frames median", "frames p95",
                                          "frames worst", "PSNR median", "PSNR worst",
                                          "frames first", "frames last"]))
    print(f"{args.chunks} chunks at {width}x{height} ({args.mode}, {models.name}, "
          f"{args.decoder} decoder): relative error against bf16 per chunk; PSNR in dB")
    path = write_result("fp8-quality", {"args": {k: v for k, v in vars(args).items()
                                                 if k != "func"},
                                        "model": models.name, "device": str(device),
                                        "rows": rows}, args.out)
    print(f"wrote {path}")
    return 0


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """The table line of the FP8 stream."""
    lat, pix, db = row["latents"], row["frames"], row["psnr_db"]
    return {"fp8": row["acceleration"], "latents median": f"{lat['median']:.2e}",
            "latents p95": f"{lat['p95']:.2e}", "latents worst": f"{lat['worst']:.2e}",
            "frames median": f"{pix['median']:.2e}", "frames p95": f"{pix['p95']:.2e}",
            "frames worst": f"{pix['worst']:.2e}", "PSNR median": f"{db['median']:.1f}",
            "PSNR worst": f"{db['worst']:.1f}", "frames first": f"{pix['first']:.2e}",
            "frames last": f"{pix['last']:.2e}"}
