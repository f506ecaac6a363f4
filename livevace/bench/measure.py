"""Measuring one row: a pipeline of the rig's run chunk after chunk, its per-chunk breakdown,
time to first frame, host copies, FLOP floor and MFU (the method: `bench.pipeline`'s doc)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from livevace.bench.dit import forward_flops
from livevace.bench.kernels import try_profile
from livevace.bench.memory import recorded
from livevace.bench.report import RESULTS_DIR, Timing, time_cpu
from livevace.bench.rig import Rig, Settings, free, snapshot, sync
from livevace.frames import Frame, now
from livevace.models.wan.codec import pixels_to_frames
from livevace.models.wan.recipe import LONGLIVE
from livevace.pipelines.vace import modes
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.settings import ChunkSettings
from livevace.pipelines.vace.staging import Staging
from livevace.stats import Stats

LOOP_STAGES = ("cache", "annotate_wait", "encode", "dit", "decode")
"""Stages the pipeline times on the calling thread, one sample per chunk, in order. `encode`
may have run ahead, beside the DiT: `encode_wait` is then what the chunk waited for it."""
FIRST_ANNOTATION = ("annotate", "annotate_ahead_wait")
"""A first chunk's annotation, reported beside the time to first frame: its time on the
annotator threads, and what the submitting call waited for it before planning the chunk's
context (with lookahead; host time inside the breakdown's `other`)."""
PROFILE_CALLS = 6
"""Steady calls `--profile` records per row."""
BREAKDOWN = {"cache": "text", "annotate_wait": "annotate_wait", "encode": "encode", "dit": "dit",
             "decode": "decode", "encode_wait": "encode_wait"}


class Feed:
    """Input frames from a clip, stamped now, numbered on."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images, self.k = images, 0

    def take(self, n: int) -> list[Frame]:
        t = now()
        frames = [Frame(self.images[(self.k + i) % len(self.images)], t, self.k + i)
                  for i in range(n)]
        self.k += n
        return frames


class StageLog(Stats):
    """Node statistics that also keep every stage sample in order (per-chunk breakdowns)."""

    def __init__(self) -> None:
        super().__init__(window=1e9)
        self.samples: list[tuple[str, float]] = []
        self._samples_lock = threading.Lock()

    def timing(self, stage: str, ms: float) -> None:
        super().timing(stage, ms)
        with self._samples_lock:
            self.samples.append((stage, ms))

    def since(self, start: int) -> list[tuple[str, float]]:
        with self._samples_lock:
            return self.samples[start:]


class ForwardCounter:
    """Counts the DiT's forwards (latent frames, with or without VACE, batch rows) while
    installed."""

    def __init__(self, dit: torch.nn.Module) -> None:
        self.forwards: list[tuple[int, bool, int]] = []
        self._hook = dit.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, _module: Any, args: tuple, kwargs: dict) -> None:
        x = args[0]
        self.forwards.append((int(x.shape[2]), kwargs.get("vace") is not None, int(x.shape[0])))

    def remove(self) -> None:
        self._hook.remove()


def call_until_output(pipeline: StreamingVace, feed: Feed, params: dict[str, Any]
                      ) -> list[Frame]:
    """Call with input frames in hand until a chunk comes out (the first call of a fresh
    pipeline with lookahead only submits its chunk)."""
    for _ in range(pipeline.lookahead + 2):
        out = pipeline(feed.take(pipeline.frames_per_call), params)
        if out:
            return out
    raise RuntimeError("the pipeline produced no frames")


def warm(pipeline: StreamingVace, feed: Feed, params: dict[str, Any], chunks: int) -> float:
    """Run `chunks` chunks through a new pipeline; seconds from now to its first frame."""
    t0 = time.perf_counter()
    call_until_output(pipeline, feed, params)
    first = time.perf_counter() - t0
    for _ in range(chunks - 1):
        call_until_output(pipeline, feed, params)
    return first


def prepare(rig: Rig, pipeline: StreamingVace, s: Settings, prompt: str) -> float:
    """What the node does before going live (`StreamingVace.prepare`: the prompt encode
    waited for, annotators loaded and run once, cuDNN tuned on every codec shape, and on the
    fast path compilation and every CUDA-graph capture), for the row's DiT variants only.
    Seconds spent (0 for an eager DiT on a CPU)."""
    return pipeline.prepare(vace_modes=s.vace_modes, progress=False)


def default_warmup(chunk: int) -> int:
    """Chunks to fill the cache window once, plus two (every graph state met)."""
    return -(-LONGLIVE.window // chunk) + 2


def time_to_first_frame(rig: Rig, s: Settings, trace: Path | None = None) -> dict[str, Any]:
    """A new pipeline on the warm model set: creation → first output frame, not counting
    `prepare` (see the module doc); where the first call's time went (`ttff_breakdown_ms`,
    the parts of `breakdown_ms`, and `ttff_annotation_ms`), since a first chunk runs parts a
    later one does not. With
    a `trace` path, another new pipeline's first calls are then profiled, the host's
    operators too (`ttff_profile_ms`; the trace there)."""
    log = StageLog()
    t0 = time.perf_counter()
    pipeline, overrides = rig.pipeline(s, log)
    created = time.perf_counter() - t0
    try:
        prepare_s = prepare(rig, pipeline, s, overrides["prompt"])
        mark = len(log.samples)
        t1 = time.perf_counter()
        out = call_until_output(pipeline, Feed(rig.clip(s.width, s.height)),
                                snapshot(overrides))
        called = time.perf_counter() - t1
        samples = log.since(mark)
        first = summarise_calls([(called * 1e3, len(out), samples)], 1)
        row = {"ttff_s": created + called, "ttff_create_s": created,
               "ttff_prepare_s": prepare_s, "ttff_breakdown_ms": first["breakdown_ms"],
               "ttff_annotation_ms": {name: sum(v for k, v in samples if k == name)
                                      for name in FIRST_ANNOTATION}}
    finally:
        pipeline.close()
    del pipeline
    return row if trace is None else {**row, **profile_first_calls(rig, s, trace)}


def profile_first_calls(rig: Rig, s: Settings, trace: Path) -> dict[str, Any]:
    """A new pipeline's calls up to its first output, profiled (`kernels.try_profile` with
    `first`): the device's busy and idle time and the trace of both sides."""
    pipeline, overrides = rig.pipeline(s, StageLog())
    try:
        prepare(rig, pipeline, s, overrides["prompt"])
        feed, params = Feed(rig.clip(s.width, s.height)), snapshot(overrides)
        kernels = try_profile(lambda: call_until_output(pipeline, feed, params), 1, rig.device,
                              f"{s.label}, first calls", trace, first=True)
    finally:
        pipeline.close()
    if kernels is None:
        return {}
    print("\n".join(kernels.lines(f"{s.label}, a new pipeline's calls to its first frame")))
    print(f"   trace: {trace}")
    return {"ttff_profile_ms": kernels.as_dict(), "ttff_profile_trace": str(trace)}


def copies_ms(rig: Rig, s: Settings, frames: int) -> dict[str, float]:
    """A chunk's input upload (pinned staging, uint8 → [-1, 1]) and output download
    ([-1, 1] → uint8 on the host), each timed alone (p50 of 10)."""
    from livevace.pipelines.vace.geometry import generation_size

    w, h = generation_size(s.width, s.height)
    images = np.stack([i[:h, :w] for i in rig.clip(s.width, s.height)[:frames]])
    staging = Staging(rig.device)
    pixels = torch.rand(1, 3, frames, h, w, device=rig.device) * 2 - 1

    def upload() -> None:
        staging.pixels("input", images)
        sync(rig.device)

    up = time_cpu(upload, 10, 2).p50
    down = time_cpu(lambda: pixels_to_frames(pixels)[0].cpu().numpy(), 10, 2).p50
    return {"upload": up, "download": down, "total": up + down}


def measure(rig: Rig, s: Settings, chunks: int, warmup: int | None = None,
            profile: Path | None = None, memory: Path | None = None) -> dict[str, Any]:
    """One row: `warmup` chunks, then `chunks` timed calls (see the module doc); with a
    `profile` trace path, then `PROFILE_CALLS` profiled calls (`bench.kernels`); with a
    `memory` path, the allocator's history of the whole row goes there and the row says
    who held the memory at its peak (`bench.memory`; recording slows the host, so such a
    row's times are not for quoting)."""
    if memory is None:
        return _measure(rig, s, chunks, warmup, profile)
    with recorded(rig.device, memory) as recording:
        row = _measure(rig, s, chunks, warmup, profile,
                       recording.phase if recording is not None else lambda name: None)
    if recording is None:
        print("   (no memory history on a CPU)")
        return row
    for name, report in recording.reports.items():
        print(f"   {name}:")
        print("\n".join(report.lines()))
    print(f"   memory history: {memory}")
    return {**row, "memory_peak": {name: report.as_dict()
                                   for name, report in recording.reports.items()},
            "memory_history": str(memory)}


def _measure(rig: Rig, s: Settings, chunks: int, warmup: int | None,
             profile: Path | None, phase: Callable[[str], None] = lambda name: None
             ) -> dict[str, Any]:
    device, dit = rig.device, rig.models.dit
    warmup = default_warmup(s.chunk) if warmup is None else warmup
    free(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    log = StageLog()
    feed = Feed(rig.clip(s.width, s.height))
    t0 = time.perf_counter()
    pipeline, overrides = rig.pipeline(s, log)
    params = snapshot(overrides)
    faded = snapshot({**overrides, "prompt": rig.prompt()}) if s.fade else params
    try:
        prepare(rig, pipeline, s, overrides["prompt"])
        ttff_cold = time.perf_counter() - t0 + warm(pipeline, feed, params, max(1, warmup))
        if s.fade:  # the other prompt encoded before timing, as a cued prompt would be
            rig.models.embeddings.request(faded["prompt"][0].text).result()
        warm_peak = peak_memory(device)  # the prepare's compiles and captures, the warm-up
        phase("warm-up")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        counter = ForwardCounter(dit)
        calls: list[tuple[float, int, list[tuple[str, float]]]] = []
        try:
            for i in range(chunks):
                mark = len(log.samples)
                fading = s.fade and (i // s.fade) % 2 == 0
                c0 = time.perf_counter()
                out = pipeline(feed.take(pipeline.frames_per_call), faded if fading else params)
                ms = (time.perf_counter() - c0) * 1e3
                calls.append((ms, len(out), log.since(mark)))
        finally:
            counter.remove()
        layout = pipeline.session.cache.layout
        peak = phase_peaks(warm_peak, peak_memory(device))
        phase("show")
        kernels = None if profile is None else try_profile(
            lambda: pipeline(feed.take(pipeline.frames_per_call), params), PROFILE_CALLS,
            device, s.label, profile)
    finally:
        pipeline.close()
    del pipeline  # its cache and buffers go before the next pipeline's are made (`ttff`)
    free(device)
    row = summarise_calls(calls, chunks)
    if kernels is not None:
        print("\n".join(kernels.lines(f"{s.label}, {PROFILE_CALLS} steady calls profiled")))
        print(f"   trace: {profile}")
        row.update(profile_ms=kernels.as_dict(), profile_trace=str(profile))
    row.update(key=s.label, model=rig.models.recipe.name, weights_dtype=rig.weights_dtype,
               settings=dataclasses.asdict(s),
               plan=modes.plan(ChunkSettings.of(params)).describe(),
               acceleration=rig.acceleration.label, warmup=warmup, ttff_cold_s=ttff_cold,
               **peak, estimate_gb=None if rig.tiny else rig.estimate_gb(s))
    row.update(flop_floor(rig, counter.forwards, layout, row))
    first_trace = None if profile is None else profile.with_name("first-" + profile.name)
    row.update(time_to_first_frame(rig, s, first_trace))
    phase("time to first frame")
    row["copies_ms"] = copies_ms(rig, s, int(round(row["frames_per_chunk"])) or 1)
    row["copies"] = row["copies_ms"]["total"]
    return row


def row_file(args: argparse.Namespace, s: Settings, what: str, suffix: str) -> Path:
    """A file of row `s` beside the results: `<what>-<row>-<time><suffix>`."""
    name = re.sub(r"[^a-z0-9]+", "-", s.label.lower()).strip("-")
    return (args.out or RESULTS_DIR) / f"{what}-{name}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"


def trace_path(args: argparse.Namespace, s: Settings) -> Path | None:
    """Where `--profile` writes a row's Chrome trace (None without `--profile`)."""
    return row_file(args, s, "trace", ".json.gz") if args.profile else None


def memory_path(args: argparse.Namespace, s: Settings) -> Path | None:
    """Where `--memory-history` writes a row's allocator snapshot (None without it)."""
    return row_file(args, s, "memory", ".pickle") if args.memory_history else None


def summarise_calls(calls: list[tuple[float, int, list[tuple[str, float]]]], chunks: int
                    ) -> dict[str, Any]:
    """fps, chunk latency (each call's too, in order: an outlier then says which chunk it
    was) and the per-chunk breakdown of the timed calls."""
    ms = [c[0] for c in calls]
    frames = sum(c[1] for c in calls)
    seconds = sum(ms) / 1e3
    per_stage = {name: [sum(v for k, v in samples if k == name) for _, _, samples in calls]
                 for name in (*LOOP_STAGES, "encode_wait")}
    hidden = [hidden_encode(samples) for _, _, samples in calls]
    other = [call_ms - sum(v for k, v in samples if k in LOOP_STAGES) + h
             for (call_ms, _, samples), h in zip(calls, hidden)]
    annotate = [v for _, _, samples in calls for k, v in samples if k == "annotate"]
    breakdown = {BREAKDOWN[name]: statistics.fmean(v) for name, v in per_stage.items()}
    breakdown["encode_hidden"] = statistics.fmean(hidden)
    breakdown["other"] = statistics.fmean(other)
    timing = Timing.of(ms)
    return {"chunks": chunks, "frames": frames, "seconds": seconds,
            "fps": frames / seconds if seconds > 0 else 0.0, "frames_per_chunk": frames / chunks,
            "chunk_p50_ms": timing.p50, "chunk_p95_ms": timing.p95, "chunk_ms": timing.as_dict(),
            "chunk_ms_each": ms, "breakdown_ms": breakdown, **breakdown,
            "annotate": statistics.fmean(annotate) if annotate else 0.0}


def hidden_encode(samples: list[tuple[str, float]]) -> float:
    """The part of a call's encode that ran beside other work (on the lane, CUDA): its encode
    time less what the DiT waited for it; 0 when it ran in line (no `encode_wait`)."""
    if not any(k == "encode_wait" for k, _ in samples):
        return 0.0
    encode = sum(v for k, v in samples if k == "encode")
    return max(0.0, encode - sum(v for k, v in samples if k == "encode_wait"))


def flop_floor(rig: Rig, forwards: list[tuple[int, bool, int]], layout: Any,
               row: dict[str, Any]) -> dict[str, Any]:
    """The DiT's FLOP floor per chunk for the forwards that ran (every row of a stream
    batch attends over its own cache), and its MFU."""
    cfg, chunks = rig.models.dit.cfg, row["chunks"]
    flops = sum(rows * forward_flops(cfg, dataclasses.replace(layout, chunk=frames), vace).total
                for frames, vace, rows in forwards) / chunks
    floor_ms = flops / rig.rate * 1e3
    dit_ms = row["breakdown_ms"]["dit"]
    return {"forwards_per_chunk": len(forwards) / chunks,
            "vace_forwards_per_chunk": sum(v for _, v, _ in forwards) / chunks,
            "dit_gflop_per_chunk": flops / 1e9, "dit_floor_ms": floor_ms,
            "dit_mfu_%": 100 * floor_ms / dit_ms if dit_ms > 0 else 0.0,
            "floor_fps": row["frames_per_chunk"] / (floor_ms / 1e3) if floor_ms > 0 else 0.0}


def phase_peaks(warm: dict[str, float], steady: dict[str, float]) -> dict[str, float]:
    """The row's peak (`peak_gb`, `reserved_gb`: the larger of its two phases) and each
    phase's: the warm-up (prepare's compiles and graph captures included) and the timed
    calls (the show's steady state)."""
    return {"peak_gb": max(warm["peak_gb"], steady["peak_gb"]),
            "reserved_gb": max(warm["reserved_gb"], steady["reserved_gb"]),
            "peak_warmup_gb": warm["peak_gb"], "peak_steady_gb": steady["peak_gb"]}


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak GPU memory since the last reset, GB (10⁹ bytes); 0 on a CPU."""
    if device.type != "cuda":
        return {"peak_gb": 0.0, "reserved_gb": 0.0}
    return {"peak_gb": torch.cuda.max_memory_allocated(device) / 1e9,
            "reserved_gb": torch.cuda.max_memory_reserved(device) / 1e9}
