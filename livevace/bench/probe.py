"""Glass-to-glass latency of the vace pipeline through the whole node (`livevace bench probe`).

A test-pattern source at a camera's rate (each frame stamped when it is complete) feeds the
real node — capture thread, loop, the pipeline, pacer, a sink thread — and the latency is
the node's own: capture stamp → the sink has finished with the frame (`Stats.latencies`,
the same numbers the status line shows). The sink does nothing with the frame, so this is
everything the node and the pipeline add before a real output (NDI, Spout) takes over.
What it includes that `livevace bench pipeline` does not: waiting for a chunk's frames to
be captured (4 per 1-latent chunk, 12 per 3-latent chunk, at the source's rate), the chunk
annotated ahead (`lookahead`: one more chunk of capture), and the pacer playing a burst out
one frame period at a time. The pipeline is warmed up first (the same settings as
`livevace bench pipeline`; defaults to 1-latent-frame chunks), samples from the first
`--probe-settle` seconds are dropped, then `--probe-seconds` are measured.

`--output-fps` / `--output-size` turn the node's output stage on (motion interpolation,
upscaling; its files from the models folder, `livevace bench output --random-files` writes
random ones): the row then also says what the stage took, and the same row without them is
the generator's cost of the stage (`pipeline_ms`, `fps_pipeline`). `--with-baseline` measures
that row first, on the same loaded and compiled models (one process: the pair compares on one
machine, and the second row's compile comes from the first's).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from livevace.bench.measure import Feed, default_warmup, prepare, warm
from livevace.bench.report import Timing, table, write_result
from livevace.bench.rig import (Rig, Settings, add_setting_arguments, rig_for, settings_from,
                                snapshot)
from livevace.config import RunConfig
from livevace.frames import Frame, Pipeline
from livevace.io.pattern import PatternSource
from livevace.loop import Node
from livevace.params import ParamStore
from livevace.stats import Stats


class ProbeSink:
    """A sink that only counts: what is measured is the node, not an output's encoder."""

    name = "probe"
    queue_size = 8

    def __init__(self) -> None:
        self.written = 0

    def open(self, width: int, height: int, fps: float) -> None:
        self.written = 0

    def write(self, frame: Frame) -> None:
        self.written += 1

    def close(self) -> None:
        pass


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--probe-fps", type=float, default=30.0,
                        help="source (camera) and output rate of the probe (default: %(default)s)")
    parser.add_argument("--probe-seconds", type=float, default=8.0,
                        help="measured seconds per probe (default: %(default)s)")
    parser.add_argument("--probe-settle", type=float, default=2.0,
                        help="seconds run before measuring (default: %(default)s)")
    parser.add_argument("--output-fps", type=int, default=0,
                        help="the node's output_fps: motion interpolation to this rate "
                             "(default: 0, off)")
    parser.add_argument("--output-size", type=output_resolution, default=None,
                        metavar="WIDTHxHEIGHT",
                        help="the node's output_size: upscaling to this size (default: off)")
    parser.add_argument("--with-baseline", action="store_true",
                        help="with --output-fps/--output-size: first the same row without them, "
                             "on the same models (the generator's cost of the output stage)")


OUTPUT_KEYS = ("output_degraded", "output_slots", "output_bypassed", "interpolation_latency_ms",
               "frames_interpolated", "output_cuts", "dropped_output", "output_errors",
               "output_prepare_s")
"""The output stage's stats a probe row keeps (stage_output_ms is among `stages_ms`)."""


def output_resolution(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT of the output (any even size: the upscaler's, not the model's grid)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    return w, h


def output_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The live parameters of `--output-fps` / `--output-size` (none when both are off)."""
    out: dict[str, Any] = {}
    if args.output_fps:
        out["output_fps"] = args.output_fps
    if args.output_size:
        out["output_size"] = tuple(args.output_size)
    return out


def capture_wait_ms(frames: int, lookahead: int, fps: float) -> float:
    """What capture alone adds to every frame's latency: a chunk is complete only when its
    last frame is (frames − 1 periods after its first), and with `lookahead` it is generated
    only once the next chunk(s) are complete too. The pacer then plays the chunk out one
    period per frame, so each of its frames waits the same."""
    return ((frames - 1) + lookahead * frames) * 1000.0 / fps


def glass_to_glass(pipeline: Pipeline, overrides: dict[str, Any], width: int, height: int,
                   fps: float, seconds: float, settle: float) -> dict[str, Any]:
    """Run the node around a warmed-up `pipeline` (its live parameters: `overrides`) and
    measure; the node closes the pipeline at the end."""
    store = ParamStore()
    store.update(overrides)
    stats = Stats(window=seconds)
    bind = getattr(pipeline, "bind_stats", None)
    if bind is not None:
        bind(stats)  # the pipeline's stage times land beside the node's
    config = RunConfig(width=width, height=height, fps=fps, sinks=(), preview="off")
    sink = ProbeSink()
    node = Node(config, store, pipeline, PatternSource(width, height, fps), [sink], stats)
    node.start()
    try:
        time.sleep(settle)
        skip = len(stats.latencies())
        before = stats.snapshot()
        t0 = time.perf_counter()
        time.sleep(seconds)
        wall = time.perf_counter() - t0
        after = stats.snapshot()
        latencies = stats.latencies()[skip:]
    finally:
        node.close()
    if not latencies:
        raise RuntimeError(f"no frame reached the sink in {seconds:g} s (pipeline too slow?)")
    timing = Timing.of(latencies)
    capture_ms = capture_wait_ms(pipeline.frames_per_call, getattr(pipeline, "lookahead", 0),
                                 fps)
    call_ms = after.get("stage_pipeline_ms", 0.0)
    return {"latency_p50_ms": timing.p50, "latency_p95_ms": timing.p95,
            "latency_p99_ms": timing.p99, "latency_ms": timing.as_dict(),
            "capture_wait_ms": capture_ms, "pipeline_ms": call_ms,
            "rest_ms": timing.p50 - capture_ms - call_ms,
            "fps_out": (after["frames_out"] - before["frames_out"]) / wall,
            "fps_pipeline": after["fps_pipeline"],
            "held": after["held"] - before["held"],
            "dropped": after["dropped"] - before["dropped"],
            "annotated_early": after.get("annotated_early", 0) - before.get("annotated_early", 0),
            "stages_ms": {k: v for k, v in after.items() if k.startswith("stage_")},
            "output": {k: after.get(k, 0.0) for k in OUTPUT_KEYS},
            "source_fps": fps, "seconds": seconds, "settle_s": settle}


def probe_row(rig: Rig, s: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Glass to glass through the node (`probe`) for a warmed-up pipeline of `s`."""
    pipeline, overrides = rig.pipeline(s)
    try:
        prepare(rig, pipeline, s, overrides["prompt"])
        warm(pipeline, Feed(rig.clip(s.width, s.height)), snapshot(overrides),
             default_warmup(s.chunk) if args.warmup is None else max(1, args.warmup))
    except BaseException:
        pipeline.close()
        raise
    row = glass_to_glass(pipeline, {**overrides, **output_overrides(args)}, s.width, s.height,
                         args.probe_fps, args.probe_seconds, args.probe_settle)
    return {"row": s.label, "key": s.label, "settings": dataclasses.asdict(s),
            "output_fps": args.output_fps, "output_size": args.output_size,
            "acceleration": rig.acceleration.label, **row}


PROBE_NOTE = ("capture_wait_ms: waiting for the chunk's frames (and the chunk ahead) to be "
              "captured; pipeline_ms: one pipeline call; rest_ms: p50 minus both (pacer, "
              "queues, sink); annotated_early: frames annotated as they were captured.")
PROBE_COLUMNS = ["row", "output_fps", "output_size", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "capture_wait_ms",
                 "pipeline_ms", "rest_ms", "fps_pipeline", "fps_out", "held", "dropped",
                 "annotated_early", "acceleration"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_arguments(parser)
    add_probe_arguments(parser)
    parser.set_defaults(chunk=1)


def without_output(args: argparse.Namespace) -> argparse.Namespace:
    """The same probe with the output stage off (`--with-baseline`)."""
    return argparse.Namespace(**{**vars(args), "output_fps": 0, "output_size": None})


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    probes = [args]
    if args.with_baseline and output_overrides(args):
        probes.insert(0, without_output(args))
    with rig_for(args) as rig:
        rows = [probe_row(rig, settings, probe) for probe in probes]
        record = rig.describe()
    print(table(rows, PROBE_COLUMNS))
    print(f"glass to glass: capture stamp → sink, {args.probe_fps:g} fps source, "
          f"{args.probe_seconds:g} s after {args.probe_settle:g} s settling. {PROBE_NOTE}")
    path = write_result("probe", {**record, "rows": rows}, args.out)
    print(f"wrote {path}")
    return 0
