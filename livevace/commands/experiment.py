"""`livevace experiment stratify`: render one clip under several cache-stratified VACE
strategies and measure how they differ.

    livevace experiment stratify --source video:dance.mp4
    livevace experiment stratify --source video:dance.mp4 --strategies baseline,inverse \\
        --custom 0.5/0.5 --control pose --preset scenes/ink_wash

Strategies are the files of presets/stratification/ (read, never re-declared here; `--custom
R/G` adds refinement/generation pairs). Every strategy renders the same frames with the same
seed, through a fresh `vace` pipeline each; the output folder gets
`output_<strategy>.mp4`, a labelled side-by-side `grid.mp4`, and `metrics.json` /
`metrics.md` (temporal warp error, control adherence, drift, fps, chunk latency: see
`livevace.experiment.metrics`).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from livevace.commands.node_options import find_preset, read_preset
from livevace.control.tomlfiles import presets_root
from livevace.errors import UserError
from livevace.io.specs import parse_source
from livevace.params import ParamStore, param
from livevace.pipelines.vace import choices as model_choices

log = logging.getLogger("livevace.experiment")

STRATEGY_DIR = "stratification"
SCALES = ("vace_refinement_scale", "vace_generation_scale")


@dataclass(frozen=True)
class Strategy:
    name: str
    params: dict[str, float]

    @property
    def refinement(self) -> float:
        return float(self.params.get(SCALES[0], param(SCALES[0]).default))

    @property
    def generation(self) -> float:
        return float(self.params.get(SCALES[1], param(SCALES[1]).default))


@dataclass
class Render:
    """One strategy's output: frames per chunk and each chunk's generation time."""

    chunks: list[list[np.ndarray]]
    chunk_ms: list[float]

    @property
    def frames(self) -> list[np.ndarray]:
        return [f for chunk in self.chunks for f in chunk]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("experiment", help="experiments on the generator",
                            description="Experiments that render and measure the generator.")
    kinds = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    p = kinds.add_parser(
        "stratify", help="compare cache-stratified VACE strategies on one clip",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Strategies on disk: " + ", ".join(strategy_names()))
    p.add_argument("--source", required=True, metavar="video:PATH", help="the clip to render")
    p.add_argument("--strategies", metavar="A,B,…", help="strategy files to compare "
                   "(default: all: " + ",".join(strategy_names()) + ")")
    p.add_argument("--custom", action="append", default=[], metavar="R/G",
                   help="a refinement/generation scale pair, e.g. 0.5/0.5; repeatable")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: experiments/stratify-<date-time>)")
    model_choices.add_arguments(p)
    p.add_argument("--control", help="control signal (default: the registry's)")
    p.add_argument("--prompt", help="prompt (default: the registry's)")
    p.add_argument("--chunks", type=int, default=8, metavar="N",
                   help="chunks to render per strategy (default 8; fewer if the clip is short)")
    p.add_argument("--width", type=int, default=576, help="frame width (default 576)")
    p.add_argument("--height", type=int, default=320, help="frame height (default 320)")
    p.add_argument("--fps", type=float, default=16.0, help="frame rate of the videos written")
    p.add_argument("--preset", action="append", default=[], metavar="NAME|PATH",
                   help="live parameters for every strategy from a preset or scene file "
                   "(e.g. scenes/ink_wash); repeatable, later ones win")
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------- strategies
def strategy_names() -> list[str]:
    """The strategy files, baseline first."""
    names = sorted(p.stem for p in (presets_root() / STRATEGY_DIR).glob("*.toml"))
    return sorted(names, key=lambda n: n != "baseline")


def load_strategies(names: list[str], custom: list[str]) -> list[Strategy]:
    out = []
    for name in names:
        _, params = read_preset(find_preset(f"{STRATEGY_DIR}/{name}"))
        out.append(Strategy(name, {k: float(v) for k, v in params.items()}))
    for pair in custom:
        r, sep, g = pair.partition("/")
        try:
            values = [param(n).coerce(v)[0] for n, v in zip(SCALES, (r, g))] if sep else []
        except UserError as exc:
            raise UserError(f"--custom {pair}: {exc}") from None
        if len(values) != 2:
            raise UserError(f"--custom {pair!r}: expected REFINEMENT/GENERATION, e.g. 0.5/1.0")
        out.append(Strategy(f"r{values[0]:g}_g{values[1]:g}", dict(zip(SCALES, values))))
    if not out:
        raise UserError("no strategies to compare")
    return out


# ----------------------------------------------------------------------------- rendering
def read_clip(source: str, width: int, height: int, frames: int) -> list[np.ndarray]:
    """Up to `frames` frames of a video file, crop-to-filled to width × height."""
    from livevace.experiment.report import read_video
    from livevace.imaging import fit

    spec = parse_source(source if ":" in source else f"video:{source}")
    path = Path(spec.arg)
    if spec.kind != "video" or not path.is_file():
        raise UserError(f"--source {source}: expected video:PATH of an existing clip")
    out = []
    try:
        for frame in read_video(path):
            out.append(fit(frame, width, height))
            if len(out) == frames:
                break
    except Exception as exc:  # PyAV raises many types for files it cannot decode
        raise UserError(f"--source {source}: cannot decode ({type(exc).__name__}: {exc})") from None
    if not out:
        raise UserError(f"--source {source}: no video frames")
    return out


def chunk_sizes(frames: int, chunks: int, chunk_frames: int) -> list[int]:
    """Pixel frames of each chunk that fits in `frames` (first 1 + 4(C−1), then 4C)."""
    from livevace.pipelines.vace.session import pixel_frames

    sizes, used = [], 0
    while len(sizes) < chunks:
        n = pixel_frames(chunk_frames, not sizes)
        if used + n > frames:
            break
        sizes.append(n)
        used += n
    return sizes


def render(models: Any, clip: list[np.ndarray], params: dict[str, Any], sizes: list[int]) -> Render:
    """The clip through a fresh `vace` pipeline, chunk by chunk, with fixed parameters."""
    from livevace.frames import Frame
    from livevace.pipelines.vace.pipeline import StreamingVace

    h, w = clip[0].shape[:2]
    pipeline = StreamingVace(models, w, h, params, lookahead=0)
    chunks, times, start = [], [], 0
    try:
        for n in sizes:
            frames = [Frame(clip[i], float(i), i) for i in range(start, start + n)]
            start += n
            t0 = time.perf_counter()
            out = pipeline(frames, params)
            times.append((time.perf_counter() - t0) * 1e3)
            chunks.append([f.image for f in out])
    finally:
        pipeline.close()
    return Render(chunks, times)


def control_frames(params: dict[str, Any], clip: list[np.ndarray]) -> tuple[
        str, list[np.ndarray] | None, Callable[[], Callable[[np.ndarray], np.ndarray]] | None]:
    """The control every strategy runs with — the requested one, or edges when it cannot be
    made here (said once, for the whole experiment) —, the control video it gives, and a
    maker of fresh annotators to run on the outputs (None when VACE has no control video)."""
    name = str(params["control"])
    if not params["vace_enabled"]:
        return name, None, None
    from livevace.annotators import make_annotator
    from livevace.errors import ModelError

    def fresh(control: str) -> Callable[[np.ndarray], np.ndarray]:
        return make_annotator(control, **({"model": params["depth_model"]}
                                          if control == "depth" else {}))

    try:
        annotate = fresh(name)
    except ModelError as exc:
        log.warning("control %s unavailable (%s); every strategy runs and is measured with edges",
                    name, exc)
        name, annotate = "edges", fresh("edges")
    return name, [annotate(f) for f in clip], lambda: fresh(name)


def run(args: argparse.Namespace) -> int:
    from livevace.experiment.metrics import measure
    from livevace.experiment.report import StrategyResult, write_grid, write_metrics, write_video
    from livevace.pipelines.vace.geometry import generation_size
    from livevace.pipelines.vace.models import load_models, vram_settings

    strategies = load_strategies(
        [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies
        else strategy_names(), args.custom)
    store = ParamStore()
    for preset in args.preset:
        store.update(read_preset(find_preset(preset))[1])
    for name in ("control", "prompt"):
        if getattr(args, name) is not None:
            store.set(name, getattr(args, name))
    weights = model_choices.from_args(args, store)
    base = store.snapshot()
    sizes = chunk_sizes(10**9, args.chunks, int(base["chunk_frames"]))
    clip = read_clip(args.source, args.width, args.height, sum(sizes))
    sizes = chunk_sizes(len(clip), args.chunks, int(base["chunk_frames"]))
    if not sizes:
        raise UserError(f"--source {args.source}: {len(clip)} frames, too short for one chunk")
    clip = clip[:sum(sizes)]
    out_dir = args.out or Path("experiments") / f"stratify-{datetime.now():%Y%m%d-%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)

    models = load_models(base["model"], weights, vram_settings(
        *generation_size(args.width, args.height), base["chunk_frames"], base["model"]))
    control, controls, annotator = control_frames(base, clip)
    label = control if control == base["control"] else f"{control} (in place of {base['control']})"
    base = {**base, "control": control}
    results, videos = [], []
    try:
        for strategy in strategies:
            log.info("rendering %s (refinement %g, generation %g)", strategy.name,
                     strategy.refinement, strategy.generation)
            params = {**base, **strategy.params}
            result = render(models, clip, params, sizes)
            metrics = measure(result.chunks, controls, annotator() if annotator else None,
                              result.chunk_ms)
            video = out_dir / f"output_{strategy.name}.mp4"
            write_video(result.frames, video, args.fps)
            videos.append((strategy.name, result.frames))
            results.append(StrategyResult(strategy.name, strategy.refinement, strategy.generation,
                                          video.name, metrics))
    finally:
        models.close()
    write_grid(videos, out_dir / "grid.mp4", args.fps)
    settings = {"source": args.source, "model": args.model, "size": f"{args.width}x{args.height}",
                "frames": len(clip), "chunks": len(sizes), "control": label,
                "prompt": str(base["prompt"][0].text), "seed": base["seed"]}
    json_path, md_path = write_metrics(results, out_dir, settings)
    print(md_path.read_text())
    print(f"videos, grid.mp4, {json_path.name} and {md_path.name} in {out_dir}")
    return 0
