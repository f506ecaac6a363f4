"""Live LoRAs: what one change costs at the chunk boundary where it lands, and that a chunk
costs the same with LoRAs playing.

The model set is the one `livevace bench pipeline` runs (`--model`, `--weights`, `--compile`,
`--weights-dtype fp8` …: the DiT at its real shape, random weights unless the files are
there). Merge rows, per LoRA rank (`--ranks`; a random LoRA on every Linear of the main
blocks, as LongLive's and most published Wan LoRAs are), each the wall time of one change
around a CUDA synchronise, after warm-up:
- `scale`: one scale change of one LoRA (W += Δs·α/r·up·down on every weight it touches;
  on FP8-stored weights a re-derivation, see `rederive`);
- `rederive`: the periodic re-derivation from the exact base copy on the host;
- `swap`: one file swapped for another at the same scale, both ready (the last step of a
  crossfade, the heaviest);
- `upload`: a file read into memory made ready on the GPU (on the slots' reader thread in
  the show, beside the chunks);
- `restore`: every scale back to 0 (the base copies written back), then a scale up again
  (the copies stay while the LoRA is held, so that touch copies nothing), together.
`base_copy_MB`: memory the exact copies of one LoRA's weights take (host; GPU with
`--base-on-gpu`).

Pipeline rows (unless `--no-pipeline`): the default settings' row (`bench pipeline`'s options)
measured `--repeat` times without LoRAs and with two LoRAs playing in slots 1 and 2 (rank
`--ranks`' first), alternately; the fps spread of each says whether they differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import save_file

from livevace.bench.measure import measure
from livevace.bench.report import spread, table, time_cpu, write_result
from livevace.bench.rig import Assets, Rig, Settings, add_setting_arguments, rig_for, settings_from
from livevace.models.wan.lora import Delta, LoraFile
from livevace.models.wan.lora_live import LiveLoras
from livevace.models.wan.recipe import Recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_arguments(parser)
    add = parser.add_argument
    add("--ranks", nargs="+", type=int, default=[32, 128], help="LoRA ranks (default: "
        "%(default)s)")
    add("--changes", type=int, default=10, help="timed changes per merge row (default: "
        "%(default)s)")
    add("--chunks", type=int, default=16, help="timed chunks per pipeline row (default: "
        "%(default)s)")
    add("--repeat", type=int, default=3, help="pipeline rows each way (default: %(default)s)")
    add("--no-pipeline", action="store_true", help="the merge rows only")
    add("--base-on-gpu", action="store_true", help="the merge rows with the exact base copies "
        "kept on the GPU instead of the host")


def random_lora(model: torch.nn.Module, rank: int, seed: int) -> LoraFile:
    """A LoRA of `rank` on every Linear of the main blocks, random, in bf16 on the host
    (`model` may live on the meta device: only its shapes are read)."""
    g = torch.Generator().manual_seed(seed)
    deltas = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and name.startswith("blocks."):
            out, inp = m.weight.shape
            deltas[name] = Delta((torch.randn(rank, inp, generator=g) * 0.01).to(torch.bfloat16),
                                 (torch.randn(out, rank, generator=g) * 0.01).to(torch.bfloat16),
                                 float(rank))
    return LoraFile(Path(f"random-r{rank}-{seed}.safetensors"), "random", deltas)


def save_lora(lora: LoraFile, path: Path) -> Path:
    """`lora` written in the original Wan / ComfyUI layout."""
    tensors = {}
    for module, d in lora.deltas.items():
        key = f"diffusion_model.{module}"
        tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = d.down, d.up
        tensors[f"{key}.alpha"] = torch.tensor(d.alpha)
    save_file(tensors, path)
    return path


@dataclasses.dataclass(frozen=True)
class WithLoras(Settings):
    """A pipeline row with LoRA files playing in the first slots."""

    loras: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{super().label} + {len(self.loras)} LoRAs"

    def overrides(self, assets: Assets, recipe: Recipe) -> dict[str, Any]:
        return {**super().overrides(assets, recipe),
                **{f"lora_{i + 1}": path for i, path in enumerate(self.loras)}}


def run(args: argparse.Namespace) -> int:
    with rig_for(args) as rig, tempfile.TemporaryDirectory(prefix="livevace-lora-") as folder:
        name = f"{rig.models.recipe.name} {rig.weights_dtype}"
        rows = [row for rank in args.ranks
                for row in merge_rows(rig, name, rank, args.changes, args.base_on_gpu)]
        print(table(rows, ["model", "rank", "row", "p50_ms", "max_ms", "weights",
                           "base_copy_MB"]))
        record: dict[str, Any] = {"merge": rows}
        if not args.no_pipeline:
            files = tuple(str(save_lora(random_lora(rig.models.dit, args.ranks[0], seed),
                                        Path(folder) / f"lora{seed}.safetensors"))
                          for seed in (1, 2))
            record.update(pipeline_rows(rig, settings_from(args), files, args))
        record = {**rig.describe(), **record}
    print(f"wrote {write_result('lora', record, args.out)}")
    return 0


def merge_rows(rig: Rig, name: str, rank: int, changes: int, base_on_device: bool
               ) -> list[dict[str, Any]]:
    model, device = rig.models.dit, rig.device
    a, b = random_lora(model, rank, 1), random_lora(model, rank, 2)
    live = LiveLoras(model, every=10 ** 9, base_on_device=base_on_device)
    live.add("a", a)
    live.add("b", b)
    flip = iter(range(10 ** 9))

    def timed(row: str, fn: Callable[[], Any]) -> dict[str, Any]:
        def step() -> None:
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        t = time_cpu(step, changes, warmup=2)
        return {"model": name, "rank": rank, "row": row, "p50_ms": t.p50, "max_ms": t.max,
                "weights": len(a.deltas), "base_copy_MB": live.base_bytes / 1e6}

    def scale() -> None:
        live.apply({"a": 0.5 + 0.25 * (next(flip) % 2)})

    out = [timed("scale", scale)]
    live.every = 1
    out.append(timed("rederive", scale))
    live.every = 10 ** 9
    out.append(timed("swap", lambda: live.apply(
        {"a": 1.0, "b": 0.0} if next(flip) % 2 else {"a": 0.0, "b": 1.0})))
    out.append(timed("upload", lambda: live.add("c", a)))
    live.remove("c")
    out.append(timed("restore", lambda: (live.apply({}), live.apply({"a": 1.0}))))
    for key in ("a", "b"):
        live.remove(key)  # the base, bit for bit, for the pipeline rows
    return out


def pipeline_rows(rig: Rig, s: Settings, files: tuple[str, ...], args: argparse.Namespace
                  ) -> dict[str, Any]:
    with_loras = WithLoras(**dataclasses.asdict(s), loras=files)
    rows: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for _ in range(args.repeat):
        for key, settings in (("without", s), ("with", with_loras)):
            row = measure(rig, settings, args.chunks, args.warmup)
            rows[key].append(row)
            print(f"{row['key']}: {row['fps']:.2f} fps")
    fps = {key: spread([r["fps"] for r in rs]) for key, rs in rows.items()}
    for key, f in fps.items():
        print(f"{key} LoRAs: median {f['median']:.2f} fps, {f['min']:.2f}–{f['max']:.2f} "
              f"(spread {f['spread_%']:.1f} %)")
    return {"pipeline": rows, "fps": fps}
