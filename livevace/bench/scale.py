"""The DiT of one node on several GPUs: each split against one process, on real shapes.

For each split (`one`: this process alone, then `distributed.splits`) the recipe's DiT at its
real shape with random weights streams chunks through the very sampler the node runs (rank
0's `RankedSampler` for the splits), after a warm-up of one window. Per row: chunk time p50
and p95 (one chunk in flight, so this is the DiT's share of glass-to-glass latency: the
node adds the input encode, the decode and the pacer's hold), frames per second (4 pixel
frames a latent frame), the speed-up over `one`, and the output's largest difference from
`one` (same seed, same inputs). `--tiny` runs the recipe's tiny model on the CPU (gloo ranks;
tests). Random weights: speed does not depend on their values.

    livevace bench scale --gpus 2 --splits one,ulysses,vace --vace --size 832x480
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from livevace.bench.report import table, write_result
from livevace.distributed.facade import RankedStreams
from livevace.distributed.launch import Ranks, devices
from livevace.distributed.splits import SPLITS
from livevace.errors import UserError
from livevace.models.wan import zoo
from livevace.models.wan.compiled import COMPILE_MODES, Acceleration
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.sampler import StreamSampler
from livevace.pipelines.vace.random_models import random_dit
from livevace.stats import percentile

ONE = "one"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpus", default="2", help="ranks for the splits: a count or GPU list")
    p.add_argument("--splits", default=",".join((ONE, *SPLITS)),
                   help=f"comma list of {ONE} (this process alone), {', '.join(SPLITS)}")
    p.add_argument("--model", default="longlive", help="zoo recipe")
    p.add_argument("--size", default="832x480", help="pixel size WxH")
    p.add_argument("--chunk", type=int, default=3, help="latent frames a chunk")
    p.add_argument("--steps", default="", help="denoising steps (default: the recipe's)")
    p.add_argument("--vace", action="store_true", help="VACE control on every chunk")
    p.add_argument("--chunks", type=int, default=8, help="chunks timed after the warm-up")
    p.add_argument("--compile", choices=COMPILE_MODES, default="off",
                   help="torch.compile the blocks' phases (no CUDA graphs on several ranks)")
    p.add_argument("--tiny", action="store_true", help="the recipe's tiny model on the CPU")
    p.add_argument("--out", type=Path, default=None, help="JSON folder (bench/results)")


def run(args: argparse.Namespace) -> int:
    recipe = zoo.recipe(args.model)
    w, h = (int(v) for v in args.size.lower().split("x"))
    found = devices(args.gpus)
    device = found[0]
    if args.tiny:
        recipe = replace(recipe, config=recipe.tiny_config)
        model = WanDiT(recipe.config).eval().requires_grad_(False)
    else:
        if device.type != "cuda":
            raise UserError("bench scale needs CUDA GPUs (or --tiny on the CPU)")
        torch.cuda.set_device(device)
        model = random_dit(recipe, device, torch.bfloat16)
    model.accelerate(Acceleration(compile=args.compile))
    steps = tuple(int(s) for s in args.steps.split(",")) if args.steps else None
    rows, reference = [], None
    for split in args.splits.split(","):
        row, out = measure(split, found, recipe, model, h // 8, w // 8, args, steps)
        reference = out if reference is None else reference
        row["max_diff"] = float((out - reference).abs().max())
        rows.append(row)
    for row in rows:
        row["speedup"] = rows[0]["chunk_p50_ms"] / row["chunk_p50_ms"]
    columns = ("split", "ranks", "chunk_p50_ms", "chunk_p95_ms", "fps", "speedup", "max_diff")
    print(table(rows, columns))
    path = write_result("scale", {"args": vars(args), "rows": rows}, args.out)
    print(f"wrote {path}")
    return 0


def measure(split: str, found: list[torch.device], recipe: Any, model: WanDiT, h: int, w: int,
            args: argparse.Namespace, steps: tuple[int, ...] | None
            ) -> tuple[dict[str, Any], torch.Tensor]:
    """One row: `split` streaming `args.chunks` timed chunks; its last chunk's latents."""
    streams: RankedStreams | None = None
    if split != ONE:
        ranks = Ranks(found, split)
        ranks.start()
        streams = RankedStreams(ranks)
    try:
        opener = zoo.open_stream if streams is None else streams
        sampler: StreamSampler = opener(recipe, model, h, w, args.chunk, steps, 0)
        g = torch.Generator().manual_seed(0)
        text = torch.randn(1, min(20, model.cfg.text_len), model.cfg.text_dim, generator=g)
        sampler.set_text(text.to(found[0]))
        lay, cfg = sampler.cache.layout, model.cfg
        control = (torch.randn(1, cfg.vace_in_channels, lay.chunk, lay.height, lay.width,
                               generator=g).to(found[0]) if args.vace else None)
        sampler.warm_up(vace=args.vace)
        times, out = [], None
        for _ in range(args.chunks):
            start = time.perf_counter()
            out = sampler.generate_chunk(vace=control)
            if out.is_cuda:
                torch.cuda.synchronize(out.device)
            times.append(time.perf_counter() - start)
    finally:
        if streams is not None:
            streams.close()
    assert out is not None
    times.sort()
    p50 = percentile(times, 0.5)
    row = {"split": split, "ranks": 1 if split == ONE else len(found),
           "chunk_p50_ms": 1000 * p50, "chunk_p95_ms": 1000 * percentile(times, 0.95),
           "fps": 4 * args.chunk / p50}
    return row, out.float().cpu()
