"""Live LoRA merges: what one change costs at the chunk boundary where it lands.

Rows, per model (the zoo's 1.3B and 14B DiTs at their real shapes, random weights; `--fp8`
stores the blocks' linears in FP8) and LoRA rank (a random LoRA on every Linear of the main
blocks, as LongLive's and most published Wan LoRAs are):
- `scale`: one scale change of one LoRA (W += Δs·α/r·up·down on every weight it touches);
- `rederive`: the periodic re-derivation from the exact base copy (and, on FP8 storage,
  what every change costs: dequantise, add, re-quantise);
- `swap`: one file swapped for another at the same scale, both read (the crossfade's
  last step, the heaviest);
- `upload`: a file read into memory made ready on the GPU (beside the show, on its reader
  thread in the pipeline);
- `restore`: every scale back to 0 (the base copies written back), and the first touch
  after it (the copies taken again), together.
Wall-clock times around a CUDA synchronise, after warm-up. `base copy` is the host memory the
exact copies take. `--tiny` runs the tiny model on the CPU (a smoke run).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch

from livevace.bench.report import table, time_cpu, write_result
from livevace.models.wan.config import TINY, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.fp8_weights import store_fp8
from livevace.models.wan.lora import Delta, LoraFile
from livevace.models.wan.lora_live import LiveLoras
from livevace.models.wan.zoo import recipe
from livevace.pipelines.vace.random_models import materialise

MODELS = ("longlive", "krea-realtime")
"""A 1.3B and the 14B model of the zoo."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--models", nargs="+", default=list(MODELS), help="zoo models (default: %(default)s)")
    add("--ranks", nargs="+", type=int, default=[32, 128], help="LoRA ranks (default: "
        "%(default)s)")
    add("--fp8", action="store_true", help="the 14B-wide models' block linears stored in FP8")
    add("--repeat", type=int, default=10, help="timed changes per row (default: %(default)s)")
    add("--warmup", type=int, default=2, help="untimed changes first (default: %(default)s)")
    add("--tiny", action="store_true", help="the tiny model on the CPU (smoke run)")
    add("--out", default=None, help="results folder (default: bench/results)")


def random_lora(model: torch.nn.Module, rank: int, seed: int) -> LoraFile:
    """A LoRA of `rank` on every Linear of the main blocks, random, in bf16 on the host."""
    g = torch.Generator().manual_seed(seed)
    deltas = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and name.startswith("blocks."):
            out, inp = m.weight.shape
            deltas[name] = Delta(torch.randn(rank, inp, generator=g).to(torch.bfloat16) * 0.01,
                                 torch.randn(out, rank, generator=g).to(torch.bfloat16) * 0.01,
                                 float(rank))
    return LoraFile(Path(f"random-r{rank}-{seed}.safetensors"), "random", deltas)


def _model(cfg: WanConfig, device: torch.device, fp8: bool) -> torch.nn.Module:
    with torch.device("meta"):
        dit = WanDiT(cfg)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    dit = materialise(dit, device, dtype).for_inference(dtype)
    return store_fp8(dit) if fp8 else dit


def run(args: argparse.Namespace) -> int:
    device = torch.device("cpu" if args.tiny else "cuda")
    configs = {"tiny": TINY} if args.tiny else {m: recipe(m).config for m in args.models}
    rows: list[dict[str, Any]] = []
    for name, cfg in configs.items():
        fp8 = args.fp8 and cfg.dim >= 5120
        model = _model(cfg, device, fp8)
        for rank in args.ranks:
            rows += _rows(model, f"{name}{' fp8' if fp8 else ''}", rank, device, args)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    columns = ["model", "rank", "row", "p50_ms", "max_ms", "weights", "base_copy_MB"]
    print(table(rows, columns))
    print(f"wrote {write_result('lora', {'rows': rows}, Path(args.out) if args.out else None)}")
    return 0


def _rows(model: torch.nn.Module, name: str, rank: int, device: torch.device,
          args: argparse.Namespace) -> list[dict[str, Any]]:
    a, b = random_lora(model, rank, 1), random_lora(model, rank, 2)
    live = LiveLoras(model, every=10 ** 9)
    live.add("a", a)
    live.add("b", b)

    def timed(row: str, fn: Callable[[], Any]) -> dict[str, Any]:
        def step() -> None:
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()

        t = time_cpu(step, args.repeat, args.warmup)
        return {"model": name, "rank": rank, "row": row, "p50_ms": t.p50, "max_ms": t.max,
                "weights": len(a.deltas), "base_copy_MB": live.base_bytes / 1e6}

    flip = iter(range(10 ** 9))
    out = [timed("scale", lambda: live.apply({"a": 0.5 + 0.25 * (next(flip) % 2)}))]
    live.every = 1
    out.append(timed("rederive", lambda: live.apply({"a": 0.5 + 0.25 * (next(flip) % 2)})))
    live.every = 10 ** 9
    live.apply({"a": 1.0, "b": 0.0})
    out.append(timed("swap", lambda: live.apply(
        {"a": 1.0, "b": 0.0} if next(flip) % 2 else {"a": 0.0, "b": 1.0})))
    out.append(timed("upload", lambda: live.add("c", a)))
    live.remove("c")
    out.append(timed("restore", lambda: (live.apply({}), live.apply({"a": 1.0}))))
    live.apply({})
    return out
