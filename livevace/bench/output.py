"""Output path speed: RIFE interpolation, the upscalers, and the two orders of the whole stage.

Rows (random weights at the real shapes: speed does not depend on their values):
- `interpolate`: IFNet v4.25 making a chunk's in-betweens in one batch, per output frame made;
- `sr <arch> <n>x`: each upscaling network on a chunk of frames, per frame (the catalogue's
  SPAN 2× and compact 4×), as the node runs it (channels-last on a GPU); on a GPU, for the
  `--upscaler`, also `… nchw` (without channels-last) and `… compiled` / `… compiled nchw`
  (compiled and replayed as a CUDA graph, in either layout: candidates for the node); then
  `lanczos` to the output size, per frame;
- `stage interpolate_first` / `stage upscale_first`: `OutputStage.process` on a chunk of
  generated frames (host upload, both steps, download to the host) at `--fps-out` and
  `--to`, per output frame. The stage's `auto` order upscales first when a network
  upscales and interpolates first with Lanczos (docs/output.md says why); these rows
  measure both with the network; on a GPU each again `prepared` (`OutputStage.prepare`, as
  the node runs it: the networks compiled into CUDA graphs for the chunk).
GPU rows are timed with CUDA events, the stage rows by the wall clock (they end in a copy to
the host); every row also counts its floating-point operations once (torch's
FlopCounterMode), which tells the orders apart on any machine. `--tiny` runs small frames on
a CPU to exercise the path.

`--random-files DIR` instead writes the catalogue's RIFE and SPAN files with random weights at
the real shapes into DIR (a models folder), so the whole node can run the output path on a
machine without the real files (`livevace bench probe --output-fps … --output-size …`, with
LIVEVACE_MODELS_DIR pointing at DIR).
"""

from __future__ import annotations

import argparse
import copy
import itertools
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from livevace.bench.report import Timing, table, time_cpu, time_cuda, write_result
from livevace.frames import Frame
from livevace.models.rife import IFNet
from livevace.output.interpolate import Interpolator, Schedule
from livevace.output.lanczos import resize
from livevace.output.stage import Order, OutputStage
from livevace.output.upscale import Network, import_spandrel, network_runner

ORDERS: tuple[Order, ...] = ("interpolate_first", "upscale_first")
"""The orders timed (the stage's `auto` picks one of them)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--size", default="832x480", help="generated WIDTHxHEIGHT (default: %(default)s)")
    add("--to", default="1920x1080", help="output WIDTHxHEIGHT (default: %(default)s)")
    add("--fps-in", type=float, default=30.0, help="generated rate (default: %(default)s)")
    add("--fps-out", type=float, default=60.0, help="output_fps (default: %(default)s)")
    add("--chunk", type=int, default=12, help="generated frames a burst (default: %(default)s)")
    add("--upscaler", default="span", choices=("span", "compact"),
        help="the network of the stage rows and of the nchw and compiled rows "
             "(default: %(default)s)")
    add("--repeat", type=int, default=20, help="timed calls per row (default: %(default)s)")
    add("--warmup", type=int, default=3, help="untimed calls first (default: %(default)s)")
    add("--device", default="auto", help="cuda, cpu or auto (default: %(default)s)")
    add("--tiny", action="store_true", help="small frames and networks on the CPU (smoke run)")
    add("--no-variants", action="store_true",
        help="on a GPU, skip the upscaler's nchw and compiled rows (each compiles)")
    add("--out", default=None, help="results folder (default: bench/results)")
    add("--random-files", metavar="DIR", default=None,
        help="write the catalogue's RIFE and SPAN files, random at the real shapes, into the "
             "models folder DIR and stop")


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def networks(tiny: bool) -> dict[str, torch.nn.Module]:
    """The catalogue's upscaler architectures (SPAN 2x with 48 channels, Real-ESRGAN's
    compact 4x with 64 features and 32 convs), random."""
    archs = import_spandrel().architectures
    if tiny:
        return {"span": archs.SPAN.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2),
                "compact": archs.Compact.Compact(num_feat=8, num_conv=2, upscale=4)}
    return {"span": archs.SPAN.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=2),
            "compact": archs.Compact.Compact(num_feat=64, num_conv=32, upscale=4)}


def _network(name: str, module: torch.nn.Module, scale: int, device: torch.device,
             dtype: torch.dtype) -> Network:
    """The network as the node runs a loaded one (`network_runner`)."""
    module = module.to(device, dtype).eval().requires_grad_(False)
    return Network(name, name, scale, network_runner(module, dtype))


def runner_variants(module: torch.nn.Module, dtype: torch.dtype,
                    batch: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """Other ways to run an upscaler on `batch` (a CUDA device): `nchw`, the runner without
    channels-last; `compiled` and `compiled nchw`, the runner in either layout compiled and
    captured as a CUDA graph for this batch (`ShapeGraphs`, as the depth network runs), each
    left out with the warning `ShapeGraphs` logs where the capture fails. Each on its own
    copy."""
    from livevace.cuda_graphs import ShapeGraphs

    nchw = network_runner(copy.deepcopy(module), dtype, channels_last=False)
    variants: dict[str, Callable[[], torch.Tensor]] = {"nchw": lambda: nchw(batch)}
    for name, channels_last in (("compiled", True), ("compiled nchw", False)):
        graphs = ShapeGraphs(network_runner(copy.deepcopy(module), dtype,
                                            channels_last=channels_last), "the upscaler")
        with graphs.learning():
            if graphs(batch) is not None:
                variants[name] = lambda graphs=graphs: graphs(batch)  # type: ignore[misc]
    return variants


def write_random_files(root: Path) -> list[Path]:
    """The catalogue's `rife_v4_25` (Practical-RIFE's `module.` keys) and `span_2x` files, random
    weights at the real shapes, in the catalogue's layout under the models folder `root`."""
    from safetensors.torch import save_file

    from livevace.store import catalog

    states = {"rife_v4_25": {f"module.{k}": v for k, v in IFNet().state_dict().items()},
              "span_2x": {k: v.contiguous() for k, v in networks(False)["span"].state_dict().items()}}
    written = []
    for key, state in states.items():
        weights = catalog.get(key).weights
        path = root / weights.folder / weights.files[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            save_file(state, str(path))
        else:
            torch.save(state, path)
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    if args.random_files:
        for path in write_random_files(Path(args.random_files).expanduser()):
            print(f"wrote {path} (random weights)")
        return 0
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    (w, h), (ow, oh) = ((64, 48), (128, 96)) if args.tiny else (_size(args.size), _size(args.to))
    torch.backends.cudnn.benchmark = device.type == "cuda"
    timed: Callable[[Callable[[], Any]], Timing] = (
        (lambda fn: time_cuda(fn, args.repeat, args.warmup)) if device.type == "cuda"
        else (lambda fn: time_cpu(fn, args.repeat, args.warmup)))
    g = torch.Generator().manual_seed(0)
    net = IFNet().to(device, dtype).eval().requires_grad_(False)
    frames = [Frame(np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8),
                    i / args.fps_in, i) for i in range(args.chunk)]
    pictures = torch.rand(args.chunk + 1, 3, h, w, generator=g).to(device, dtype)
    rows: list[dict[str, Any]] = []

    slots = Schedule().plan(frames, args.fps_out)
    made = sum(s.between for s in slots) or 1
    rows.append(_row("interpolate", f"{w}x{h}", timed,
                     lambda: Interpolator(net).render(pictures, slots), made, "per in-between"))
    mods = networks(args.tiny)
    scales = {"span": 2, "compact": 4}
    for name, module in mods.items():
        network = _network(name, module, scales[name], device, dtype)
        batch = pictures[:args.chunk]
        rows.append(_row(f"sr {name} {scales[name]}x", f"{w}x{h}", timed,
                         lambda: network.run(batch), args.chunk, "per frame"))
    if device.type == "cuda" and not args.no_variants:  # what the node's runner gains over the
        # plain layout, and what compiling it into a CUDA graph would add
        name, batch = args.upscaler, pictures[:args.chunk]
        for variant, run in runner_variants(mods[name], dtype, batch).items():
            rows.append(_row(f"sr {name} {scales[name]}x {variant}", f"{w}x{h}", timed,
                             run, args.chunk, "per frame"))
    rows.append(_row("lanczos", f"{w}x{h}->{ow}x{oh}", timed,
                     lambda: resize(pictures[:args.chunk], oh, ow), args.chunk, "per frame"))

    network = _network(args.upscaler, mods[args.upscaler], scales[args.upscaler], device, dtype)
    params = {"output_fps": args.fps_out, "output_size": (ow, oh),
              "upscale_model": args.upscaler}
    wall = (lambda fn: time_cpu(fn, args.repeat, args.warmup))
    prepared = (False, True) if device.type == "cuda" and not args.no_variants else (False,)
    for order, prepare in itertools.product(ORDERS, prepared):
        stage = OutputStage(lambda out: None, device=device, order=order,
                            rife=lambda d, dt: net, upscaler=lambda m, d, dt: network)
        if prepare:  # as the node runs it: its networks compiled into graphs for the chunk
            stage.prepare([args.chunk], (w, h), params)
        outputs = len(stage.process(frames, params))

        def call(stage: OutputStage = stage) -> None:
            stage.schedule.reset()
            stage.process(frames, params)

        what = f"stage {order}" + (" prepared" if prepare else "")
        rows.append({**_row(what, f"{w}x{h}->{ow}x{oh}", wall, call, outputs,
                            "per output frame"), "upscaler": stage.upscaling})
    columns = ["what", "size", "ms", "p95_ms", "per", "ms_each", "gflop_each", "upscaler"]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), {str(dtype).removeprefix('torch.')}, chunk {args.chunk} "
          f"generated frames at {args.fps_in:g} fps -> {args.fps_out:g} fps, "
          f"p50 over {args.repeat}")
    print(table(rows, columns))
    stages = [r for r in rows if r["what"].startswith("stage")]
    for key, what in (("ms_each", "time"), ("gflop_each", "operations")):
        best = min(stages, key=lambda r: r[key])["what"].removeprefix("stage ")
        print(f"cheaper order by {what}: {best}")
    path = write_result("output", {"device": str(device), "dtype": str(dtype), "tiny": args.tiny,
                                   "fps_in": args.fps_in, "fps_out": args.fps_out,
                                   "chunk": args.chunk, "rows": rows},
                        Path(args.out) if args.out else None)
    print(f"wrote {path}")
    return 0


def _row(what: str, size: str, timer: Callable[[Callable[[], Any]], Timing],
         fn: Callable[[], Any], count: int, per: str) -> dict[str, Any]:
    with FlopCounterMode(display=False) as flops:
        fn()
    t = timer(fn)
    return {"what": what, "size": size, "ms": t.p50, "p95_ms": t.p95, "per": per,
            "ms_each": t.p50 / count, "gflop_each": flops.get_total_flops() / 1e9 / count,
            "timing": t.as_dict()}
