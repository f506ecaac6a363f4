"""The `vace` pipeline: streaming, causal VACE on Wan2.1-1.3B, every mode under live control.

    livevace run --pipeline vace                            # LongLive, the catalogue's files
    livevace run --model self-forcing --weights tiny-random # any model, tiny random, any CPU

Modules, one job each:
- `choices`          — the model (a zoo recipe) and where its weights come from, by name;
- `models`, `tiny`, `random_models` — the model set: the catalogue's files (checked for
                       presence, a CUDA GPU and enough memory before loading), the tiny random
                       set or the real shapes with random weights;
- `settings`         — one call's live parameters, typed, read once from the snapshot;
- `modes`            — the mode a chunk runs in, from what is supplied (no mode switch);
- `annotation`       — control frames and person masks, computed a chunk ahead;
- `geometry`, `images` — crop-to-fill, outpaint placement, still images from paths;
- `context`          — the 96-channel VACE context and its causal encoders;
- `zeros`            — the latents of all-zeros video, computed once per VAE and shared;
- `references`       — reference images in the KV cache's sink (why: see there);
- `motion`           — video-to-video start and the motion-aware noise controller;
- `session`          — cache, sampler, codecs of one generation session (reset to reset);
- `staging`, `timing` — reused upload buffers, non-blocking downloads, per-stage timing;
- `planner`          — a chunk's context inputs planned on the host (one `ContextJob`);
- `lane`, `ahead`    — the next chunk's context encoded on a second CUDA stream, or in line;
- `fast`, `warmup`   — the fast path on a GPU and everything done before going live;
- `pipeline`         — `StreamingVace`, the node's Pipeline;
- `switch`           — `ModelSwitch`: the `model` parameter switches the generator live.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from livevace.errors import describe
from livevace.params import ParamStore
from livevace.pipelines.vace.choices import AUTO

__all__ = ["cpu_generation_size", "create"]

log = logging.getLogger("livevace.vace")

if TYPE_CHECKING:
    from livevace.config import RunConfig
    from livevace.pipelines.vace.model_set import ModelSet
    from livevace.pipelines.vace.pipeline import StreamingVace
    from livevace.pipelines.vace.switch import ModelSwitch


def create(config: "RunConfig", store: ParamStore, weights: str | None = None,
           weights_dtype: str | None = None, compile: bool | None = None,
           tae_context: bool | None = None, gpus: str | None = None,
           split: str | None = None, precision: str | None = None,
           lookahead: int | None = None) -> "ModelSwitch":
    """The pipeline for a run, ready to go live; UserError (one line) when it cannot run here.
    The model is the `model` parameter's (`livevace run --model`), its weights from `weights`
    (`choices.WEIGHTS`, default auto), its DiT's block weights stored as `weights_dtype`
    (`choices.WEIGHTS_DTYPES`, default bf16); a change of the parameter switches it live
    (`switch.ModelSwitch`).

    On a CUDA device it takes the fast path (`fast.go_fast`: cuDNN autotuning, the compiled
    DiT stepping through CUDA graphs; `compile=False`, `livevace run --no-compile`, keeps the
    DiT eager for debugging) and prepares everything slow before returning (`prepare`). On a
    CPU it generates small unless the user gave the size (`cpu_generation_size`).
    `tae_context` (QUALITY-AFFECTING, off by default): the VACE control is encoded by the tiny
    autoencoder instead of the Wan VAE (`context.TAEContextEncoder`).
    `precision` "fp8" (QUALITY-AFFECTING, off by default; `livevace run --precision fp8`): the
    DiT's block linears multiply in FP8 (`compiled.Acceleration.fp8`; a CUDA GPU with FP8).
    `gpus` (`livevace run --gpus 2` or `0,2`): the DiT's work spread over that many ranks, one
    process a GPU, by `split` (`distributed.splits`; docs/scaling.md). `lookahead`
    (`livevace run --lookahead`): chunks annotated ahead (default: by the chunk size,
    `StreamingVace.lookahead`)."""
    from livevace.distributed.facade import load_on_ranks
    from livevace.errors import UserError
    from livevace.models.wan import zoo
    from livevace.pipelines.vace import models as loading
    from livevace.pipelines.vace.geometry import generation_size
    from livevace.pipelines.vace.settings import ChunkSettings
    from livevace.pipelines.vace.switch import ModelSwitch, adopt, own_params

    weights = weights or AUTO
    adopt(store, zoo.recipe(store.get("model")), keep_changed=True)
    params = store.snapshot()
    settings = ChunkSettings.of(params)
    size = generation_size(config.width, config.height)
    dtype = weights_dtype or "bf16"
    compute = precision or "bf16"
    models = load_on_ranks(gpus, split, lambda: loading.load_models(
        params["model"], weights, loading.vram_settings(
            *size, settings.chunk_frames, params["model"], dtype, compute)))
    if models.device.type == "cpu":
        size = cpu_generation_size(config, size)
    context_encoder = "tae" if tae_context else "wan"
    fp8 = precision == "fp8"
    if fp8 and models.device.type != "cuda":
        models.close()
        raise UserError("--precision fp8 needs a CUDA GPU with FP8 (Ada, Hopper or newer)")

    def switch_to(name: str, running: "StreamingVace", params: dict) -> "StreamingVace":
        running.settle()
        recipe = zoo.recipe(name)
        params = {**params, **own_params(recipe)}
        new = loading.load_models(name, weights, loading.vram_settings(
            running.gen_width, running.gen_height, recipe.chunk, name, dtype, compute),
            reuse=running.models, progress=loading.progress_log(recipe, weights))
        new.streams = running.models.streams
        pipeline = ready(new, config, params, (running.gen_width, running.gen_height), compile,
                         context_encoder, fp8, lookahead)
        adopt(store, recipe, keep_changed=False)  # once loaded: a failed load changes nothing
        return pipeline

    return ModelSwitch(ready(models, config, params, size, compile, context_encoder, fp8,
                             lookahead),
                       switch_to,
                       lambda name: loading.check(zoo.recipe(name), weights))


def ready(models: "ModelSet", config: "RunConfig", params: dict, size: tuple[int, int],
          compile: bool | None, context_encoder: str, fp8: bool = False,
          lookahead: int | None = None) -> "StreamingVace":
    """A pipeline on `models`, prepared to go live: on a CUDA device on the fast path
    (`fast.go_fast`: cuDNN autotuning, the compiled DiT stepping through CUDA graphs;
    `compile=False` keeps the DiT eager; `fp8` its FP8 linear layers) with everything slow
    done (`prepare`)."""
    import torch

    from livevace.errors import ModelError
    from livevace.pipelines.vace.fast import go_fast
    from livevace.pipelines.vace.pipeline import StreamingVace

    go_fast(models, compile=compile is not False, fp8=fp8)
    pipeline = StreamingVace(models, config.width, config.height, params, owns_models=True,
                             context_encoder=context_encoder, generate_at=size,
                             lookahead=lookahead)
    try:
        pipeline.prepare()
    except torch.cuda.OutOfMemoryError as exc:  # the estimate that let it load is a model
        pipeline.close()
        raise ModelError(out_of_memory(models.name, size, exc)) from None
    except BaseException:
        pipeline.close()
        raise
    return pipeline


def out_of_memory(model: str, size: tuple[int, int], exc: BaseException) -> str:
    """What to say when preparing ran the GPU out of memory: compiling and capturing the steps
    can need more for a moment than the show does, beyond what the estimate foresaw."""
    import torch

    free = ""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        free = f", {torch.cuda.mem_get_info()[0] / 1e9:.1f} GB free now"
    return (f"not enough GPU memory to prepare {model} at {size[0]}x{size[1]} (compiling and "
            f"capturing its steps{free}; {describe(exc)}); a smaller size, FP8 weights "
            "(--weights-dtype fp8), the text encoder on the CPU or --no-compile needs less — "
            "or use --pipeline controlmap")


def cpu_generation_size(config: "RunConfig", size: tuple[int, int]) -> tuple[int, int]:
    """The size to generate at on a CPU, said in one log line where it matters: small
    (`geometry.cpu_size`) unless the user gave the output size, which is kept, with what to
    expect. A CPU at 832×480 takes many seconds per chunk: a blank output and repeated frames for
    half a minute would look broken."""
    from livevace.pipelines.vace.geometry import cpu_size

    small = cpu_size(config.width, config.height)
    if small == size:
        return size
    w, h = size
    if not config.size_given:
        log.info("vace on the CPU: generating at %d×%d, scaled to the %d×%d output, so the "
                 "tiny models keep up; --width/--height (or a preset's size) set the size it "
                 "generates at", *small, config.width, config.height)
        return small
    ratio = w * h / (small[0] * small[1])
    log.info("vace on the CPU at %d×%d, as given: %.0f× the pixels of %d×%d (its CPU size when "
             "none is given), so each chunk takes about %.0f× as long: expect a wait for the "
             "first frames, then each picture held for many frames and latency of several "
             "chunks", w, h, ratio, *small, ratio)
    return size
