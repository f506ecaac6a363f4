"""Whole-pipeline speed: the vace pipeline chunk after chunk, its breakdown, FLOP floor and MFU.

`livevace bench pipeline` runs the real `StreamingVace` (annotation a chunk ahead on its
threads, the cache stage, VACE context encode, DiT, decode, the host copies) on a moving test
pattern, called back to back with its input frames in hand — the pipeline's capacity; a live
node is further paced by its camera (`livevace bench probe` measures that, glass to glass).
Weights: the catalogue's when present, else random at the real Wan2.1-1.3B + VACE-1.3B,
Wan VAE and taew2_1 shapes (`--model random-1.3b`; speed does not depend on weight values),
random text embeddings in place of UMT5-XXL unless `--text-encoder umt5`, and the depth
control from Depth-Anything-V2-Small at its real config (random weights without the files).
`--model tiny-random` runs every path on a CPU at toy sizes (tests).

Per row, after `--warmup` chunks, `--chunks` timed calls (one chunk each):
- fps = output frames / the calls' wall time; chunk latency p50/p95 = one call's wall time;
- time to first frame (`ttff_s`): a NEW pipeline on the warm model set (weights resident,
  kernels compiled by the row's run), from its creation to its first output frame, input
  frames in hand, its prompt never encoded before. On a GPU (and for a compiled DiT) it
  is first prepared as the node prepares before going live (`StreamingVace.prepare`: the
  prompt encode waited for, ≈ 1 ms with random embeddings, 30 ms with UMT5-XXL; annotators
  loaded and run once; cuDNN tuned; with `--compile` the VAE encoder compiled and every
  CUDA graph of its new stream cache captured), reported as `ttff_prepare_s` and not
  counted. `ttff_cold_s`: the row's first pipeline, creation → first frame, everything
  counted (compilation, capture, autotuning, allocator growth). Neither counts camera time
  (the probe does);
- breakdown per chunk (means): text (`stage_cache`: text K/V, transitions, references),
  annotate_wait (what the generator waited for its control frames), encode (VACE context /
  video-to-video input, host→device copy included; the context of a chunk is usually
  encoded ahead, on its own CUDA stream beside the previous chunk's DiT: then encode_wait
  is what the DiT still waited for it, encode_hidden the rest), dit, decode (device→host
  copy included), other (the call's remainder: resizes, frame packaging, Python, less the
  hidden encode); annotate (on
  the annotator threads, overlapped with the DiT); copies (the upload of a chunk's input and
  the download of its output, timed alone: part of encode and decode);
- DiT FLOP floor: the forwards actually run per chunk (counted) × `bench.dit.forward_flops`
  (full window) at the measured bf16 matmul rate; MFU = floor / measured DiT stage time;
- peak GPU memory since the row began (resident weights included);
- with `--profile`, `PROFILE_CALLS` more calls profiled (`bench.kernels`): GPU busy and idle
  time, kernel time per CUDA stream and kind, the top kernels, a Chrome trace file.

`--suite` (`bench.suite`) runs the standard rows and prints each speed target beside what was
measured, with the spread over `--repeat` runs (a difference smaller than the spread is noise).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import re
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from livevace.bench.dit import forward_flops, matmul_rate, parse_resolution
from livevace.bench.probe import add_probe_arguments, glass_to_glass
from livevace.bench.kernels import try_profile
from livevace.bench.report import RESULTS_DIR, Timing, spread, table, time_cpu, write_result
from livevace.errors import ModelError, UserError
from livevace.frames import Frame, now
from livevace.io.pattern import PatternSource
from livevace.models.wan.codec import pixels_to_frames
from livevace.models.wan.compiled import Acceleration
from livevace.params import CONTROLS, ParamStore, param
from livevace.pipelines.vace import MODEL_CHOICES, modes
from livevace.pipelines.vace.fast import accelerate, compile_vae_encoder
from livevace.pipelines.vace.models import RANDOM_1_3B, TINY_RANDOM, ModelSet
from livevace.pipelines.vace.pipeline import CONTEXT_ENCODERS, StreamingVace
from livevace.pipelines.vace.random_models import TEXT_ENCODERS
from livevace.pipelines.vace.staging import Staging
from livevace.pipelines.vace.stream import WINDOW
from livevace.stats import Stats

MODES = ("t2v", "v2v", "vace-control", "vace-ref", "inpaint")
LOOP_STAGES = ("cache", "annotate_wait", "encode", "dit", "decode")
"""Stages the pipeline times on the calling thread, one sample per chunk, in order. `encode`
may have run ahead, beside the DiT: `encode_wait` is then what the chunk waited for it."""
PROFILE_CALLS = 6
"""Steady calls `--profile` records per row."""
BREAKDOWN = {"cache": "text", "annotate_wait": "annotate_wait", "encode": "encode", "dit": "dit",
             "decode": "decode", "encode_wait": "encode_wait"}


# ------------------------------------------------------------------------------ settings
def step_list(steps: int) -> tuple[int, ...]:
    """Evenly spaced raw steps from 1000: 4 → 1000, 750, 500, 250 (the registry's default)."""
    return tuple(1000 - i * 1000 // steps for i in range(steps))


@dataclass(frozen=True)
class Settings:
    """One configuration of the pipeline."""

    width: int = 576
    height: int = 320
    mode: str = "vace-control"
    control: str = "depth"
    mask: str = "image"
    """inpaint: a still mask image, or the person mask (MediaPipe, on the annotator threads)."""
    steps: int = 4
    chunk: int = 3
    decoder: str = "tae"
    lookahead: int | None = None
    """Chunks annotated ahead of the one generated; None: the node's default (1 for 3-latent
    chunks, 0 for 1-latent ones: `StreamingVace.lookahead`)."""
    overlap: bool = True
    """The next chunk's context encoded beside the DiT (the node's default); off: serial."""
    context_encoder: str = "wan"
    """tae: the VACE control through the tiny encoder (quality-affecting option)."""
    fade: int = 0
    """Timed chunks fade the prompt over this many chunks, one fade after another (every
    chunk is a transition step: its text K/V are rebuilt); 0: one prompt throughout."""

    @property
    def label(self) -> str:
        mode = f"vace {self.control}" if self.mode == "vace-control" else self.mode
        extras = [f"lookahead {self.lookahead}" if self.lookahead is not None else "",
                  "" if self.overlap else "serial",
                  f"{self.context_encoder}-context" if self.context_encoder != "wan" else "",
                  f"prompt fades over {self.fade} chunks" if self.fade else ""]
        return " ".join([f"{self.width}x{self.height} {mode} {self.steps} steps {self.decoder} "
                         f"chunk {self.chunk}", *filter(None, extras)])

    @property
    def vace(self) -> bool:
        return self.mode in ("vace-control", "vace-ref", "inpaint")

    def overrides(self, assets: "Assets") -> dict[str, Any]:
        """The live parameters that make this configuration (the rest: registry defaults)."""
        values: dict[str, Any] = {"denoising_steps": step_list(self.steps),
                                  "chunk_frames": self.chunk, "decoder": self.decoder}
        if self.fade:
            values["transition_chunks"] = self.fade
        if self.mode == "t2v":
            values.update(vace_enabled=False, noise_scale=1.0)
        elif self.mode == "v2v":  # at the registry's noise_scale
            values.update(vace_enabled=False)
        elif self.mode == "vace-control":
            values.update(vace_enabled=True, control=self.control)
        elif self.mode == "vace-ref":
            values.update(vace_enabled=False, noise_scale=1.0,
                          reference_images=(str(assets.reference),))
        elif self.mode == "inpaint":
            values.update(vace_enabled=True, control="none", mask=self.mask,
                          mask_image=str(assets.mask) if self.mask == "image" else "")
        else:
            raise UserError(f"unknown mode {self.mode!r}: choose {', '.join(MODES)}")
        return values


def settings_from(args: argparse.Namespace) -> Settings:
    most = param("denoising_steps").max_len
    if not 1 <= args.steps <= most:
        raise UserError(f"bench pipeline: --steps {args.steps}: choose 1 to {most}")
    width, height = args.resolution
    if args.fade < 0:
        raise UserError("bench pipeline: --fade takes 0 (no fades) or more chunks")
    return Settings(width, height, args.mode, args.control, args.mask, args.steps, args.chunk,
                    args.decoder, args.lookahead, not args.no_overlap, args.context_encoder,
                    args.fade)


def snapshot(overrides: dict[str, Any]) -> dict[str, Any]:
    """The live parameters: the registry's defaults with `overrides` (validated by it)."""
    store = ParamStore()
    store.update(overrides)
    return store.snapshot()


@dataclass(frozen=True)
class Assets:
    """Files some modes point the pipeline at: a reference image and an inpainting mask."""

    reference: Path
    mask: Path

    @classmethod
    def make(cls, folder: Path) -> "Assets":
        from PIL import Image

        h, w = 320, 576
        reference = PatternSource(w, h, 30.0).render(17)
        yy, xx = np.mgrid[:h, :w]
        mask = ((((xx - w / 2) / (w / 4)) ** 2 + ((yy - h / 2) / (h / 3)) ** 2) < 1) * 255
        paths = cls(folder / "reference.png", folder / "mask.png")
        Image.fromarray(reference).save(paths.reference)
        Image.fromarray(mask.astype(np.uint8)).save(paths.mask)
        return paths


# ------------------------------------------------------------------------------ the rig
class Rig:
    """What every row of a run shares: the model set (accelerated once), the matmul rate,
    the depth estimator (made once, on first use), test clips and asset files."""

    def __init__(self, models: ModelSet, device: torch.device, acceleration: Acceleration,
                 rate: float, assets: Assets, depth_model: str) -> None:
        self.models, self.device, self.acceleration = models, device, acceleration
        self.rate, self.assets, self.depth_model = rate, assets, depth_model
        self.tiny = models.name == TINY_RANDOM
        self.depth_source = ""
        self._depth: Any = None
        self._lock = threading.Lock()
        self._clips: dict[tuple[int, int], list[np.ndarray]] = {}
        self._pipelines = 0

    def depth(self) -> Any:
        """The depth estimator (made on first use, by the annotator's builder thread)."""
        with self._lock:
            if self._depth is None:
                self._depth, self.depth_source = self._make_depth()
            return self._depth

    def _make_depth(self) -> tuple[Any, str]:
        """Real weights when present (never for tiny-random), else Depth-Anything-V2-Small's
        real config with random weights (its tiny form under tiny-random)."""
        from livevace.annotators.depth import TransformersDepth, load_estimator
        from livevace.bench.annotators import (DEPTH_ANYTHING_V2_SMALL_PREPROCESSOR,
                                               depth_anything_v2_small)

        if not self.tiny:
            try:
                return (load_estimator(self.depth_model, str(self.device)),
                        f"{self.depth_model} weights")
            except ModelError:
                pass
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        model = depth_anything_v2_small(self.device, dtype, tiny=self.tiny)
        estimator = TransformersDepth(model, DEPTH_ANYTHING_V2_SMALL_PREPROCESSOR,
                                      56 if self.tiny else None)
        return estimator, ("tiny random depth model" if self.tiny else
                           "Depth-Anything-V2-Small, random weights")

    def clip(self, width: int, height: int) -> list[np.ndarray]:
        """48 frames of the moving test pattern at the input size."""
        if (width, height) not in self._clips:
            source = PatternSource(width, height, 30.0)
            self._clips[(width, height)] = [source.render(k) for k in range(48)]
        return self._clips[(width, height)]

    def prompt(self) -> str:
        """A prompt this model set has not encoded yet (its encode is on the first chunk's path)."""
        self._pipelines += 1
        return f"{param('prompt').default[0].text} #{self._pipelines} {uuid.uuid4().hex[:6]}"

    def pipeline(self, s: Settings, stats: Stats | None = None
                 ) -> tuple[StreamingVace, dict[str, Any]]:
        """A new pipeline for `s` and the parameter overrides it runs with."""
        overrides = {**s.overrides(self.assets), "prompt": self.prompt()}
        params = snapshot(overrides)
        pipeline = StreamingVace(self.models, s.width, s.height, params, lookahead=s.lookahead,
                                 stats=stats, overlap=s.overlap,
                                 context_encoder=s.context_encoder,
                                 depth_estimator=self.depth)
        return pipeline, overrides

    def describe(self) -> dict[str, Any]:
        """What the run's numbers were measured on (for the JSON record)."""
        from livevace.pipelines.vace.random_models import RandomTextEmbedding

        random_text = isinstance(self.models.text.model, RandomTextEmbedding)
        return {"model": self.models.name, "device": str(self.device),
                "dit_dtype": str(self.models.dit.compute_dtype),
                "acceleration": self.acceleration.label,
                "acceleration_settings": dataclasses.asdict(self.acceleration),
                "matmul_tflops": self.rate / 1e12, "depth": self.depth_source or "not used",
                "text_encoder": "random embeddings (UMT5 not loaded)" if random_text else
                                f"UMT5 resident ({self.models.text.dtype})",
                "cudnn_benchmark": torch.backends.cudnn.benchmark}

    @contextlib.contextmanager
    def with_text_encoder(self) -> Iterator["Rig"]:
        """This rig with a UMT5 text encoder resident: the real-shape UMT5-XXL (random weights)
        in place of random embeddings; the model set itself when it already has one."""
        from livevace.models.wan.text import WanTextEncoder
        from livevace.pipelines.vace.random_models import RandomTextEmbedding, random_umt5

        if not isinstance(self.models.text.model, RandomTextEmbedding):
            yield self
            return
        umt5 = random_umt5(self.device, self.models.text.dtype)
        text = WanTextEncoder(umt5, self.models.text.tokenizer, self.models.text.text_len)
        rig = copy.copy(self)  # shares the depth estimator and the clips
        rig.models = dataclasses.replace(self.models, text=text, _embeddings=None)
        try:
            yield rig
        finally:
            rig.models.close()
            del rig, text, umt5
            free(self.device)


def load_model_set(choice: str, device: torch.device, text_encoder: str,
                   settings: Settings) -> ModelSet:
    """The model set for `--model` (see the module doc); says which it built."""
    from livevace.pipelines.vace.models import load_models, vram_settings
    from livevace.pipelines.vace.random_models import random_1_3b
    from livevace.pipelines.vace.tiny import tiny_random

    if choice == TINY_RANDOM:
        return tiny_random(device=device)
    if device.type != "cuda":
        raise UserError(f"bench pipeline: --model {choice} runs the full-size models on a CUDA "
                        f"GPU; --model {TINY_RANDOM} runs every path on a CPU")
    if choice == "auto":
        try:
            return load_models("auto", vram_settings(
                settings.width, settings.height,
                {"chunk_frames": settings.chunk, "decoder": settings.decoder}))
        except ModelError as exc:
            print(f"no weights here ({str(exc).split(';')[0]}): random weights at the real "
                  f"shapes")
    return random_1_3b(device, text_encoder=text_encoder)  # type: ignore[arg-type]


def acceleration_from(args: argparse.Namespace, device: torch.device) -> Acceleration:
    """`--compile`: compiled block phases, plus the step as a CUDA graph on a GPU;
    `--precision fp8`: FP8 linear layers (quality-affecting)."""
    return Acceleration(compile="default" if args.compile else "off",
                        cuda_graph=bool(args.compile) and device.type == "cuda",
                        fp8=args.precision == "fp8", flash4=bool(args.compile) and not args.no_fa4)


def build_rig(args: argparse.Namespace, assets: Assets) -> Rig:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("bench pipeline: no CUDA GPU here; run with --model tiny-random on "
                        "the CPU or on a GPU machine")
    t0 = time.perf_counter()
    models = load_model_set(args.model, device, args.text_encoder, settings_from(args))
    accel = acceleration_from(args, device)
    compile_vae_encoder(models, accel.compile != "off")  # the node's own, as for the DiT
    try:
        accel = accelerate(models.dit, accel)  # the node's own: graphs captured only in `prepare`
    except ValueError as exc:
        raise UserError(f"bench pipeline: {exc}") from None
    dtype = torch.bfloat16 if device.type == "cuda" else models.dit.compute_dtype
    print(f"{models.name} on {device} ({models.dit.compute_dtype}, {accel.label}) in "
          f"{time.perf_counter() - t0:.1f} s; measuring the {dtype} matmul rate…", flush=True)
    cuda = device.type == "cuda"
    rate = matmul_rate(device, dtype, 8192 if cuda else 256, 20 if cuda else 5)
    return Rig(models, device, accel, rate, assets, str(param("depth_model").default))


# ------------------------------------------------------------------------------ running
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
    """Counts the DiT's forwards (latent frames, with or without VACE) while installed."""

    def __init__(self, dit: torch.nn.Module) -> None:
        self.forwards: list[tuple[int, bool]] = []
        self._hook = dit.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, _module: Any, args: tuple, kwargs: dict) -> None:
        self.forwards.append((int(args[0].shape[2]), kwargs.get("vace") is not None))

    def remove(self) -> None:
        self._hook.remove()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


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
    fast path compilation and every CUDA-graph capture), for the row's VACE variant only.
    Seconds spent (0 for an eager DiT on a CPU)."""
    return pipeline.prepare(vace_modes=(s.vace,), progress=False)


def default_warmup(chunk: int) -> int:
    """Chunks to fill the cache window once, plus two (every graph state met)."""
    return -(-WINDOW // chunk) + 2


def time_to_first_frame(rig: Rig, s: Settings) -> dict[str, float]:
    """A new pipeline on the warm model set: creation → first output frame, not counting
    `prepare` (see the module doc)."""
    t0 = time.perf_counter()
    pipeline, overrides = rig.pipeline(s)
    created = time.perf_counter() - t0
    try:
        prepare_s = prepare(rig, pipeline, s, overrides["prompt"])
        t1 = time.perf_counter()
        call_until_output(pipeline, Feed(rig.clip(s.width, s.height)), snapshot(overrides))
        return {"ttff_s": created + time.perf_counter() - t1, "ttff_create_s": created,
                "ttff_prepare_s": prepare_s}
    finally:
        pipeline.close()


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
            profile: Path | None = None) -> dict[str, Any]:
    """One row: `warmup` chunks, then `chunks` timed calls (see the module doc); with a
    `profile` trace path, then `PROFILE_CALLS` profiled calls (`bench.kernels`)."""
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
        layout = pipeline.stream.cache.layout
        peak = peak_memory(device)
        kernels = None if profile is None else try_profile(
            lambda: pipeline(feed.take(pipeline.frames_per_call), params), PROFILE_CALLS,
            device, s.label, profile)
    finally:
        pipeline.close()
    row = summarise_calls(calls, chunks)
    if kernels is not None:
        print("\n".join(kernels.lines(f"{s.label}, {PROFILE_CALLS} steady calls profiled")))
        print(f"   trace: {profile}")
        row.update(profile_ms=kernels.as_dict(), profile_trace=str(profile))
    row.update(key=s.label, settings=dataclasses.asdict(s), plan=modes.plan(params).describe(),
               acceleration=rig.acceleration.label, warmup=warmup, ttff_cold_s=ttff_cold,
               **peak)
    row.update(flop_floor(rig, counter.forwards, layout, row))
    row.update(time_to_first_frame(rig, s))
    row["copies_ms"] = copies_ms(rig, s, int(round(row["frames_per_chunk"])) or 1)
    row["copies"] = row["copies_ms"]["total"]
    return row


def trace_path(args: argparse.Namespace, s: Settings) -> Path | None:
    """Where `--profile` writes a row's Chrome trace (None without `--profile`)."""
    if not args.profile:
        return None
    name = re.sub(r"[^a-z0-9]+", "-", s.label.lower()).strip("-")
    return (args.out or RESULTS_DIR) / f"trace-{name}-{time.strftime('%Y%m%d-%H%M%S')}.json.gz"


def summarise_calls(calls: list[tuple[float, int, list[tuple[str, float]]]], chunks: int
                    ) -> dict[str, Any]:
    """fps, chunk latency and the per-chunk breakdown of the timed calls."""
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
            "breakdown_ms": breakdown, **breakdown,
            "annotate": statistics.fmean(annotate) if annotate else 0.0}


def hidden_encode(samples: list[tuple[str, float]]) -> float:
    """The part of a call's encode that ran beside other work (on the lane, CUDA): its encode
    time less what the DiT waited for it; 0 when it ran in line (no `encode_wait`)."""
    if not any(k == "encode_wait" for k, _ in samples):
        return 0.0
    encode = sum(v for k, v in samples if k == "encode")
    return max(0.0, encode - sum(v for k, v in samples if k == "encode_wait"))


def flop_floor(rig: Rig, forwards: list[tuple[int, bool]], layout: Any, row: dict[str, Any]
               ) -> dict[str, Any]:
    """The DiT's FLOP floor per chunk for the forwards that ran, and its MFU."""
    cfg, chunks = rig.models.dit.cfg, row["chunks"]
    flops = sum(forward_flops(cfg, dataclasses.replace(layout, chunk=frames), vace).total
                for frames, vace in forwards) / chunks
    floor_ms = flops / rig.rate * 1e3
    dit_ms = row["breakdown_ms"]["dit"]
    return {"forwards_per_chunk": len(forwards) / chunks,
            "vace_forwards_per_chunk": sum(v for _, v in forwards) / chunks,
            "dit_gflop_per_chunk": flops / 1e9, "dit_floor_ms": floor_ms,
            "dit_mfu_%": 100 * floor_ms / dit_ms if dit_ms > 0 else 0.0,
            "floor_fps": row["frames_per_chunk"] / (floor_ms / 1e3) if floor_ms > 0 else 0.0}


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak GPU memory since the last reset, GB (10⁹ bytes); 0 on a CPU."""
    if device.type != "cuda":
        return {"peak_gb": 0.0, "reserved_gb": 0.0}
    return {"peak_gb": torch.cuda.max_memory_allocated(device) / 1e9,
            "reserved_gb": torch.cuda.max_memory_reserved(device) / 1e9}


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
    row = glass_to_glass(pipeline, overrides, s.width, s.height, args.probe_fps,
                         args.probe_seconds, args.probe_settle)
    return {"row": s.label, "key": s.label, "settings": dataclasses.asdict(s),
            "acceleration": rig.acceleration.label, **row}


# ------------------------------------------------------------------------------ printing
ROW_COLUMNS = ["row", "fps", "chunk_p50_ms", "chunk_p95_ms", "ttff_s", "text", "annotate_wait",
               "encode", "encode_wait", "dit", "decode", "other", "annotate", "copies",
               "dit_floor_ms", "dit_mfu_%", "peak_gb"]


def one_line(row: dict[str, Any]) -> str:
    if "latency_p50_ms" in row:
        return (f"{row['row']}: glass to glass p50 {row['latency_p50_ms']:.1f} ms, "
                f"p95 {row['latency_p95_ms']:.1f} ms, {row['fps_out']:.1f} fps out")
    return (f"{row['key']} ({row['plan']}): {row['fps']:.1f} fps, "
            f"chunk p50 {row['chunk_p50_ms']:.1f} ms, "
            f"ttff {row['ttff_s']:.3f} s, DiT {row['dit']:.1f} ms "
            f"(floor {row['dit_floor_ms']:.1f}, MFU {row['dit_mfu_%']:.0f} %), "
            f"peak {row['peak_gb']:.2f} GB")


def print_rows(rows: list[dict[str, Any]]) -> None:
    from livevace.bench.probe import PROBE_COLUMNS, PROBE_NOTE

    measured = [{**r, "row": r["key"] + (f" #{r['repeat'] + 1}" if "repeat" in r else "")}
                for r in rows if "fps" in r]
    probes = [r for r in rows if "latency_p50_ms" in r]
    if measured:
        print(table(measured, ROW_COLUMNS))
        print("ms per chunk (means): text = cache stage (text K/V, transitions, references); "
              "annotate runs ahead on its own threads, annotate_wait is what generation "
              "waited; encode/decode include the host copies, which are also timed alone "
              "(copies); encode may run ahead on its own CUDA stream beside the DiT, "
              "encode_wait is what the DiT then waited for it; other = the rest of the "
              "call. ttff_s: a new pipeline on the warm "
              "model set, creation → first frame, input in hand. dit_floor_ms: FLOP floor at "
              "the measured matmul rate; dit_mfu_% = floor / dit.")
    if probes:
        print(table(probes, PROBE_COLUMNS))
        print(PROBE_NOTE)


# ------------------------------------------------------------------------------ the CLI
def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """The pipeline's settings and the model set (shared with `livevace bench probe`)."""
    parser.add_argument("--resolution", type=parse_resolution, default=(576, 320),
                        help="WIDTHxHEIGHT, multiples of 16 (default 576x320)")
    parser.add_argument("--mode", choices=MODES, default="vace-control",
                        help="t2v, v2v (video-to-video), vace-control (a control video), "
                        "vace-ref (a reference image), inpaint (default: %(default)s)")
    parser.add_argument("--control", choices=CONTROLS, default="depth",
                        help="vace-control's annotator (default: %(default)s)")
    parser.add_argument("--mask", choices=("image", "person"), default="image",
                        help="inpaint: a still mask image or the person mask (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (default: 4)")
    parser.add_argument("--chunk", type=int, choices=(1, 3), default=3,
                        help="latent frames per chunk (default: %(default)s)")
    parser.add_argument("--decoder", choices=param("decoder").choices,
                        default=param("decoder").default)
    parser.add_argument("--lookahead", type=int, choices=(0, 1), default=None,
                        help="chunks annotated ahead (default: the node's, 1 for 3-latent "
                        "chunks and 0 for 1-latent ones)")
    parser.add_argument("--precision", choices=("bf16", "fp8"), default="bf16",
                        help="fp8: FP8 linear layers in the DiT (quality-affecting)")
    parser.add_argument("--fp8", dest="precision", action="store_const", const="fp8",
                        help="same as --precision fp8")
    parser.add_argument("--compile", action="store_true",
                        help="the node's fast path: compiled DiT block phases + the step as a "
                        "CUDA graph, the Wan VAE encoder compiled and cuDNN autotuning (on a "
                        "GPU)")
    parser.add_argument("--no-fa4", action="store_true",
                        help="with --compile: cuDNN's SDPA for every attention, even where "
                        "FlashAttention-4 is installed (and faster)")
    parser.add_argument("--context-encoder", choices=CONTEXT_ENCODERS, default="wan",
                        help="encoder of the VACE control: wan (default) or tae "
                        "(QUALITY-AFFECTING option of the node, `livevace run --tae-context`)")
    parser.add_argument("--no-overlap", action="store_true",
                        help="encode each chunk's VACE context in line, not ahead beside the "
                        "DiT (the node overlaps them)")
    parser.add_argument("--fade", type=int, default=0, metavar="CHUNKS",
                        help="timed chunks fade the prompt over CHUNKS chunks, one fade after "
                        "another (every chunk rebuilds its text K/V; default 0: one prompt)")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="auto",
                        help=f"auto: the catalogue's weights when present, else {RANDOM_1_3B} "
                        f"(random weights at the real shapes, CUDA); {TINY_RANDOM}: toy sizes "
                        "on any device")
    parser.add_argument("--text-encoder", choices=TEXT_ENCODERS, default="random",
                        help=f"{RANDOM_1_3B}: random embeddings (default) or the real-shape "
                        "UMT5-XXL with random weights (11 GB resident)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="chunks before timing (default: fill the 12-frame window, +2)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN tune its convolutions (on with --compile, as `livevace "
                        "run` on a GPU)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (bench/results)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_arguments(parser)
    parser.add_argument("--chunks", type=int, default=16,
                        help="timed chunks per row (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each row this many times and report the spread")
    parser.add_argument("--suite", action="store_true",
                        help="run the standard rows (text-to-video and VACE at the two sizes, "
                        "2-step VACE, glass to glass, memory) and print each speed target "
                        "beside what was measured")
    parser.add_argument("--profile", action="store_true",
                        help=f"after each row's timed chunks, profile {PROFILE_CALLS} more: GPU "
                        "time per CUDA stream and kernel kind, idle time, top kernels; the "
                        "Chrome trace (Perfetto) goes beside the results")
    parser.add_argument("--suite-resolutions", type=lambda t: [parse_resolution(v) for v in
                                                               t.split(",")],
                        default=[(832, 480), (576, 320)],
                        help="the suite's LARGE,SMALL sizes (default 832x480,576x320)")
    parser.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                        help="start no further suite row after this many seconds (the rows "
                        "done are reported; for a bounded device lease)")
    from livevace.bench.suite import suite

    rows = suite((0, 0), (0, 0))[0]
    parser.add_argument("--rows", default=None,
                        help="only these suite rows (comma list of "
                        f"{', '.join(r.key for r in rows if not r.extra)}; and, never run "
                        f"unless named here: {', '.join(r.key for r in rows if r.extra)})")
    add_probe_arguments(parser)


@contextlib.contextmanager
def rig_for(args: argparse.Namespace) -> Iterator[Rig]:
    """The rig for a run, its asset files and cuDNN setting, undone afterwards."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or args.cudnn_benchmark or args.compile
    try:
        with tempfile.TemporaryDirectory(prefix="livevace-bench-") as folder:
            rig = build_rig(args, Assets.make(Path(folder)))
            try:
                yield rig
            finally:
                rig.models.close()
    finally:
        torch.backends.cudnn.benchmark = previous


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1 or args.chunks < 1:
        raise UserError("bench pipeline: --repeat and --chunks must be at least 1")
    from livevace.bench.suite import run_suite, suite_keys

    if args.suite:
        suite_keys(args)  # bad suite options fail before anything loads
    with rig_for(args) as rig:
        if args.suite:
            record = run_suite(rig, args)
        else:
            s = settings_from(args)
            rows = [{**measure(rig, s, args.chunks, args.warmup, trace_path(args, s)),
                     "repeat": k}
                    for k in range(args.repeat)]
            for row in rows:
                print(one_line(row))
            print_rows(rows)
            record = {"rows": rows, "fps": spread([r["fps"] for r in rows])}
            if args.repeat > 1:
                f = record["fps"]
                print(f"fps over {args.repeat} runs: median {f['median']:.2f}, "
                      f"{f['min']:.2f}–{f['max']:.2f} (spread {f['spread_%']:.1f} %)")
        record = {**rig.describe(), **record}
    print(f"matmul rate {record['matmul_tflops']:.3g} TFLOP/s; depth: {record['depth']}; "
          f"text encoder: {record['text_encoder']}")
    path = write_result("pipeline-suite" if args.suite else "pipeline",
                        {"args": {k: v for k, v in vars(args).items() if k != "func"},
                         **record}, args.out)
    print(f"wrote {path}")
    return 0
