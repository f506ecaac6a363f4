"""`livevace run`: start the node and keep it running until Ctrl-C (or a bound is met)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Callable, Iterator

from livevace.commands import node_options as run_config
from livevace.config import RunConfig
from livevace.control import service as control_service
from livevace.frames import Pipeline
from livevace.loop import Node
from livevace.params import ParamStore
from livevace.pipelines import create as create_pipeline
from livevace.pipelines.vace import choices as model_choices
from livevace.stats import Stats, status_line

log = logging.getLogger("livevace.run")

EXAMPLES = """\
examples:
  livevace run                                   test pattern -> NDI "livevace"
  livevace run --source camera:0 --pipeline controlmap --control edges
  livevace run --source ndi:"STUDIO (TouchDesigner)" --sink ndi:livevace --sink record:show.mp4
  livevace run --source video:clip.mp4 --preset 720p --duration 60
  livevace run --sink spout:livevace             Windows: Spout Out for TouchDesigner/Resolume

In TouchDesigner add an NDI In TOP and pick "<this machine> (livevace)"; in Resolume use
Sources > NDI; in OBS add an NDI Source (obs-ndi plugin). Stop with Ctrl-C: files are
finished properly.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="start the node (default: test pattern -> NDI 'livevace')",
        description="Start the live node: a source, a pipeline, paced output to sinks. "
        "With no options it runs the default preset (test pattern -> auto pipeline -> "
        "NDI 'livevace', plus a preview window when a display exists) until Ctrl-C.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_config.add_arguments(parser)
    model_choices.add_arguments(parser)
    parser.add_argument("--no-compile", action="store_true",
                        help="vace pipeline on a GPU: keep the DiT eager (no torch.compile, no "
                        "CUDA graphs; starts faster, runs much slower: for debugging)")
    parser.add_argument("--tae-context", action="store_true",
                        help="vace pipeline, QUALITY-AFFECTING: encode the VACE control with the "
                        "tiny autoencoder instead of the Wan VAE (much cheaper; the control is "
                        "followed a little less precisely)")
    parser.add_argument("--lookahead", type=int, choices=(0, 1),
                        help="vace pipeline: chunks annotated and encoded ahead, beside the "
                        "generation: 1 raises the frame rate of 1-latent-chunk models "
                        "(StreamDiffusionV2) by a chunk more latency (default: 1 for 3-latent "
                        "chunks, 0 for 1-latent ones)")
    parser.add_argument("--precision", choices=("bf16", "fp8"),
                        help="vace pipeline on a GPU with FP8 (Ada, Hopper or newer), "
                        "QUALITY-AFFECTING: fp8 multiplies the generator's block linears in "
                        "FP8 (default bf16)")
    parser.add_argument("--gpus", metavar="N|LIST",
                        help="vace pipeline: spread the DiT over N GPUs of this host (2), or the "
                        "GPUs listed (0,2), one process each; without CUDA, N CPU processes "
                        "(gloo: for trying and tests). See docs/scaling.md")
    parser.add_argument("--split", choices=("ulysses", "vace"),
                        help="with --gpus: ulysses (sequence parallel, default: cuts latency) or "
                        "vace (the VACE blocks on half the ranks beside the main blocks)")
    control_service.add_arguments(parser)
    parser.set_defaults(func=run)


@contextlib.contextmanager
def stop_signals(stop: Callable[[], None]) -> Iterator[Callable[[], None]]:
    """Ctrl-C and SIGTERM ask the node to stop. Once it is stopping, another one only says
    that files are being finished: the clean stop runs to its summary line, and after a
    stop by signal the process exits ignoring them (one more would cut that short; kill -9
    still ends it at once). Yields `closing()` to call when shutdown starts."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    signals = 0
    closing = told = False

    def handler(signum: int, frame: object) -> None:
        nonlocal signals, told
        signals += 1
        stop()
        if (closing or signals > 1) and not told:
            told = True  # once: the stderr pipe of a supervisor must not fill with it
            # not print(): the main thread may be inside a write to sys.stderr right now
            os.write(2, "\nlivevace: finishing files, one moment…\n".encode())

    def start_closing() -> None:
        nonlocal closing
        closing = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield start_closing
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_IGN if signals else h)


class StatusLine:
    """A live line on a terminal; a log line every few seconds otherwise."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else 5.0

    def show(self) -> None:
        line = status_line(self.stats.snapshot())
        if self.tty:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        else:
            log.info("%s", line)

    def end(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def describe(cfg: RunConfig, pipeline: Pipeline) -> dict[str, str]:
    """What runs, in words, for the control page."""
    models = getattr(pipeline, "models", None)
    recipe = getattr(models, "recipe", None)
    info = {"pipeline": pipeline.name, "source": cfg.source, "sinks": ", ".join(cfg.sinks),
            "size": f"{cfg.width}×{cfg.height} at {cfg.fps:g} fps"}
    if models is not None:
        info["model"] = " · ".join(str(x) for x in (getattr(models, "name", ""),
                                                    getattr(recipe, "name", "")) if x)
    return info


def run(args: argparse.Namespace) -> int:
    cfg = run_config.from_args(args)
    store = ParamStore()
    store.update(cfg.params)
    weights = model_choices.from_args(args, store)
    stats = Stats()
    for path in cfg.presets:
        log.info("preset %s", path)
    pipeline = create_pipeline(cfg.pipeline, cfg, store, weights=weights,
                               weights_dtype=args.weights_dtype,
                               compile=False if args.no_compile else None,
                               tae_context=args.tae_context or None, gpus=args.gpus,
                               split=args.split, precision=args.precision,
                               lookahead=args.lookahead)
    bind_stats = getattr(pipeline, "bind_stats", None)
    if bind_stats is not None:  # the generator times its stages into the node's stats
        bind_stats(stats)
    with contextlib.ExitStack() as opening:  # what is open so far closes if the rest fails
        opening.callback(pipeline.close)
        control = control_service.start(args, store, stats)
        opening.callback(control.close)
        control.info.update(describe(cfg, pipeline))
        node = Node.from_config(cfg, store, pipeline, stats, control, taps=[control.preview.put])
        opening.pop_all()
    status = StatusLine(stats)
    with stop_signals(node.stop) as closing:  # up to the summary: the whole clean stop
        try:
            node.start()
            while not node.wait(status.every):
                status.show()
        finally:
            closing()
            status.end()
            try:
                node.close()
            finally:
                control.close()
        s = stats.snapshot()
        log.info("stopped after %.1f s: %d frames out, %d held, %d dropped, latency p50 %.1f "
                 "ms p95 %.1f ms", s["uptime_s"], s["frames_out"], s["held"], s["dropped"],
                 s["latency_p50_ms"], s["latency_p95_ms"])
        failures = node.failures()
        for line in failures:
            log.error("%s", line)
    return 1 if failures else 0
