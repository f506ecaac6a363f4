"""The bench's core: one configuration of the vace pipeline (`Settings`), the model set it
runs on (`Rig`: weights accelerated once, the matmul rate, the depth estimator, test clips and
asset files) and the command-line options that choose both (shared by `bench pipeline` and
`bench probe`)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch

from livevace.bench.dit import matmul_rate, parse_resolution
from livevace.distributed.facade import load_on_ranks
from livevace.distributed.splits import SPLITS
from livevace.errors import ModelError, UserError
from livevace.io.pattern import PatternSource
from livevace.models.wan.compiled import FP8_BF16, Acceleration
from livevace.models.wan.fp8_weights import store_fp8
from livevace.models.wan.recipe import Recipe
from livevace.params import CONTROLS, ParamStore, param
from livevace.pipelines.vace.fast import accelerate, compile_vae
from livevace.pipelines.vace.choices import (AUTO, MODEL_HELP, MODEL_NAMES, RANDOM,
                                             TINY_RANDOM, WEIGHTS, model_and_weights)
from livevace.pipelines.vace.model_set import ModelSet
from livevace.pipelines.vace.pipeline import CONTEXT_ENCODERS, StreamingVace
from livevace.pipelines.vace.random_models import TEXT_ENCODERS
from livevace.stats import Stats
from livevace.store.vram import VramSettings, estimate

MODES = ("t2v", "v2v", "vace-control", "vace-ref", "inpaint")
WeightsDtype = Literal["bf16", "fp8"]
WEIGHTS_DTYPES: tuple[WeightsDtype, ...] = ("bf16", "fp8")


def step_list(steps: int) -> tuple[int, ...]:
    """Evenly spaced raw steps from 1000: 4 → 1000, 750, 500, 250 (the registry's default)."""
    return tuple(1000 - i * 1000 // steps for i in range(steps))


def steps_for(recipe: Recipe, count: int) -> tuple[int, ...]:
    """`count` raw steps for `recipe`: its own list when it has that many, else evenly spaced
    from 1000 (`step_list`)."""
    return recipe.steps if len(recipe.steps) == count else step_list(count)


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
    fp8: bool | None = None
    """The DiT's FP8 linear layers on or off for this row; None: as the run's options say."""
    refinement: float = 1.0
    """`vace_refinement_scale`; at 0 a chunk's cache write skips the VACE blocks."""

    @property
    def label(self) -> str:
        mode = f"vace {self.control}" if self.mode == "vace-control" else self.mode
        extras = [f"lookahead {self.lookahead}" if self.lookahead is not None else "",
                  "" if self.overlap else "serial",
                  f"{self.context_encoder}-context" if self.context_encoder != "wan" else "",
                  f"prompt fades over {self.fade} chunks" if self.fade else "",
                  {False: "bf16", True: "fp8", None: ""}[self.fp8],
                  f"refinement {self.refinement:g}" if self.refinement != 1.0 else ""]
        return " ".join([f"{self.width}x{self.height} {mode} {self.steps} steps {self.decoder} "
                         f"chunk {self.chunk}", *filter(None, extras)])

    @property
    def vace(self) -> bool:
        return self.mode in ("vace-control", "vace-ref", "inpaint")

    @property
    def vace_modes(self) -> tuple[bool, ...]:
        """The DiT variants the row's pipeline runs, so `prepare` captures them: without
        VACE too where its cache writes skip the VACE blocks."""
        return (True, False) if self.vace and self.refinement == 0 else (self.vace,)

    def overrides(self, assets: "Assets", recipe: Recipe) -> dict[str, Any]:
        """The live parameters that make this configuration of `recipe` (the rest: registry
        defaults)."""
        values: dict[str, Any] = {"denoising_steps": steps_for(recipe, self.steps),
                                  "chunk_frames": self.chunk, "decoder": self.decoder}
        if self.fade:
            values["transition_chunks"] = self.fade
        if self.refinement != 1.0:
            values["vace_refinement_scale"] = self.refinement
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


def model_of(args: argparse.Namespace) -> Recipe:
    """The recipe `--model` names (the default model when it is not given, or given in an
    old spelling of `--weights`)."""
    from livevace.models.wan import zoo

    return zoo.recipe(args.model if args.model in MODEL_NAMES else MODEL_NAMES[0])


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings the options give; steps and chunk default to the model's own."""
    recipe = model_of(args)
    steps = len(recipe.steps) if args.steps is None else args.steps
    most = param("denoising_steps").max_len
    if not 1 <= steps <= most:
        raise UserError(f"bench pipeline: --steps {steps}: choose 1 to {most}")
    width, height = args.resolution
    if args.fade < 0:
        raise UserError("bench pipeline: --fade takes 0 (no fades) or more chunks")
    return Settings(width, height, args.mode, args.control, args.mask, steps,
                    recipe.chunk if args.chunk is None else args.chunk, args.decoder,
                    args.lookahead, not args.no_overlap, args.context_encoder, args.fade)


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


class Rig:
    """What every row of a run shares: the model set (accelerated once), the matmul rate,
    the depth estimator (made once, on first use), test clips and asset files."""

    def __init__(self, models: ModelSet, device: torch.device, acceleration: Acceleration,
                 rate: float, assets: Assets, depth_model: str,
                 weights_dtype: WeightsDtype = "bf16") -> None:
        self.models, self.device, self.acceleration = models, device, acceleration
        self.rate, self.assets, self.depth_model = rate, assets, depth_model
        self.weights_dtype = weights_dtype
        self.tiny = models.weights == TINY_RANDOM
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
        overrides = {**s.overrides(self.assets, self.models.recipe), "prompt": self.prompt()}
        params = snapshot(overrides)
        pipeline = StreamingVace(self.models, s.width, s.height, params, lookahead=s.lookahead,
                                 stats=stats, overlap=s.overlap,
                                 context_encoder=s.context_encoder,
                                 depth_estimator=self.depth)
        return pipeline, overrides

    @contextlib.contextmanager
    def fp8_for(self, s: Settings) -> Iterator[None]:
        """The DiT's FP8 as row `s` asks (`Settings.fp8`; the run's when it does not say),
        the run's put back afterwards (graphs are made again by the row's `prepare`)."""
        before = self.acceleration
        want = before if s.fp8 is None else dataclasses.replace(before, fp8=s.fp8)
        if want == before:
            yield
            return
        try:
            self.acceleration = accelerate(self.models.dit, want)
            yield
        finally:
            self.acceleration = accelerate(self.models.dit, before)

    @property
    def text_resident(self) -> bool:
        """Whether a UMT5 encoder sits on the device (else random embeddings stand in)."""
        from livevace.pipelines.vace.random_models import RandomTextEmbedding

        return not isinstance(self.models.text.model, RandomTextEmbedding)

    def vram_settings(self, s: Settings) -> VramSettings:
        """What the memory estimate (`store.vram`) takes for row `s` on this rig: the model
        at its real size, whatever the rig's weights, and what the node would check before
        loading it — the VACE module wherever the model set has one, whatever the row's mode
        (mode is live, so a t2v row holds it too)."""
        from livevace.models.wan.text import Fp8Linear

        fp8_text = any(isinstance(m, Fp8Linear) for m in self.models.text.model.modules())
        return VramSettings(width=s.width, height=s.height, chunk_frames=s.chunk,
                            model=self.models.recipe.name, steps=s.steps,
                            weights_dtype=self.weights_dtype,
                            precision="fp8" if self.acceleration.fp8 else "bf16",
                            text_encoder="gpu" if self.text_resident else "cpu",
                            text_encoder_dtype="fp8" if fp8_text else "bf16",
                            vace=self.models.dit.cfg.has_vace)

    def estimate_gb(self, s: Settings) -> float:
        """The estimated peak of row `s` (GB), to set beside the measured one."""
        return estimate(self.vram_settings(s)).total / 1e9

    def describe(self) -> dict[str, Any]:
        """What the run's numbers were measured on (for the JSON record)."""
        random_text = not self.text_resident
        return {"model": self.models.name, "recipe": self.models.recipe.name,
                "weights": self.models.weights, "weights_dtype": self.weights_dtype,
                "device": str(self.device), "dit_dtype": str(self.models.dit.compute_dtype),
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
        from livevace.pipelines.vace.random_models import random_umt5

        if self.text_resident:
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


def load_model_set(model: str, weights: str, device: torch.device, text_encoder: str,
                   settings: Settings, weights_dtype: WeightsDtype = "bf16") -> ModelSet:
    """The model set for `--model` and `--weights` (see the module doc), its DiT's block
    weights stored in FP8 with `weights_dtype` fp8 (by the loader where it can, else here
    once loaded); says which it built."""
    models = _load_model_set(model, weights, device, text_encoder, settings, weights_dtype)
    if weights_dtype == "fp8":
        store_fp8(models.dit)  # (what the loader stored already is left as it is)
        free(device)
    return models


def _load_model_set(model: str, weights: str, device: torch.device, text_encoder: str,
                    settings: Settings, weights_dtype: WeightsDtype) -> ModelSet:
    from livevace.models.wan import zoo
    from livevace.pipelines.vace.models import load_models, vram_settings
    from livevace.pipelines.vace.random_models import random_set
    from livevace.pipelines.vace.tiny import tiny_random

    recipe = zoo.recipe(model)
    if weights == TINY_RANDOM:
        return tiny_random(recipe, device=device)
    if device.type != "cuda":
        raise UserError(f"bench pipeline: --weights {weights} runs the full-size models on a "
                        f"CUDA GPU; --weights {TINY_RANDOM} runs every path on a CPU")
    if weights == AUTO:
        try:
            return load_models(model, AUTO, dataclasses.replace(
                vram_settings(settings.width, settings.height, settings.chunk, model),
                weights_dtype=weights_dtype))
        except ModelError as exc:
            print(f"no weights here ({str(exc).split(';')[0]}): random weights at the real "
                  f"shapes")
    return random_set(recipe, device, text_encoder=text_encoder)  # type: ignore[arg-type]


def acceleration_from(args: argparse.Namespace, device: torch.device) -> Acceleration:
    """`--compile`: compiled block phases, plus the step as a CUDA graph on a GPU;
    `--precision fp8`: FP8 linear layers (quality-affecting), but those `--fp8-bf16` names."""
    return Acceleration(compile="default" if args.compile else "off",
                        cuda_graph=bool(args.compile) and device.type == "cuda",
                        fp8=args.precision == "fp8", fp8_bf16=args.fp8_bf16,
                        flash4=bool(args.compile) and not args.no_fa4)


def build_rig(args: argparse.Namespace, assets: Assets) -> Rig:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("bench pipeline: no CUDA GPU here; run with --weights tiny-random on "
                        "the CPU or on a GPU machine")
    t0 = time.perf_counter()
    model, weights = model_and_weights(args.model, args.weights)
    models = load_on_ranks(args.gpus, args.split, lambda: load_model_set(  # the node's --gpus
        model or MODEL_NAMES[0], weights or AUTO, device, args.text_encoder, settings_from(args),
        args.weights_dtype))
    accel = acceleration_from(args, device)
    compile_vae(models, accel.compile != "off")  # the node's own, as for the DiT
    try:
        accel = accelerate(models.dit, accel)  # the node's own: graphs captured only in `prepare`
    except ValueError as exc:
        raise UserError(f"bench pipeline: {exc}") from None
    dtype = torch.bfloat16 if device.type == "cuda" else models.dit.compute_dtype
    print(f"{models.name} on {device} ({models.dit.compute_dtype}, {accel.label}) in "
          f"{time.perf_counter() - t0:.1f} s; measuring the {dtype} matmul rate…", flush=True)
    cuda = device.type == "cuda"
    rate = matmul_rate(device, dtype, 8192 if cuda else 256, 20 if cuda else 5)
    return Rig(models, device, accel, rate, assets, str(param("depth_model").default),
               args.weights_dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


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
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps (default: the model's own list; another count: "
                        "evenly spaced from 1000)")
    parser.add_argument("--chunk", type=int, choices=(1, 3), default=None,
                        help="latent frames per chunk (default: the model's)")
    parser.add_argument("--decoder", choices=param("decoder").choices,
                        default=param("decoder").default)
    parser.add_argument("--lookahead", type=int, choices=(0, 1), default=None,
                        help="chunks annotated ahead (default: the node's, 1 for 3-latent "
                        "chunks and 0 for 1-latent ones)")
    parser.add_argument("--precision", choices=("bf16", "fp8"), default="bf16",
                        help="fp8: FP8 linear layers in the DiT (quality-affecting)")
    parser.add_argument("--fp8", dest="precision", action="store_const", const="fp8",
                        help="same as --precision fp8")
    parser.add_argument("--fp8-bf16", type=lambda t: tuple(n for n in t.split(",") if n),
                        default=FP8_BF16, metavar="NAMES",
                        help="block linears FP8 keeps in bf16, comma list of names in a block "
                        f"('' for none; default {','.join(FP8_BF16)})")
    parser.add_argument("--weights-dtype", choices=WEIGHTS_DTYPES, default="bf16",
                        help="fp8: the DiT's block weights stored in FP8, half the memory "
                        "(quality-affecting; with --precision fp8 the GEMMs take them as "
                        "they are)")
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
    parser.add_argument("--model", metavar="NAME", help=MODEL_HELP)
    parser.add_argument("--weights", choices=WEIGHTS,
                        help=f"{AUTO} (default): the catalogue's files when present, else "
                        f"{RANDOM} (random weights at the model's real shapes, CUDA); "
                        f"{TINY_RANDOM}: toy sizes on any device")
    parser.add_argument("--text-encoder", choices=TEXT_ENCODERS, default="random",
                        help=f"{RANDOM}: random embeddings (default) or the real-shape "
                        "UMT5-XXL with random weights (11 GB resident)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="chunks before timing (default: fill the 12-frame window, +2)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--gpus", metavar="N|LIST",
                        help="the DiT on several ranks, as `livevace run --gpus` (docs/scaling.md)")
    parser.add_argument("--split", choices=SPLITS, help=f"with --gpus (default {SPLITS[0]})")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN tune its convolutions (on with --compile, as `livevace "
                        "run` on a GPU)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (bench/results)")


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
