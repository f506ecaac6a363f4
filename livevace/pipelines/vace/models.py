"""The model set the vace pipeline runs on, and loading it — refused early and clearly.

    models = load_models("longlive", "auto", VramSettings(...))   # weights: choices.WEIGHTS

The model is a zoo recipe (`zoo.recipe(name)`); the weights come from:
- `auto`: the catalogue's files (`livevace models pull` fetches them; Scope's folder is
  reused) that `catalog.model_keys` names: the recipe's generator checkpoints (e.g. LongLive's
  base and LoRA), one of the VACE modules that fit it (the first present), UMT5-XXL (fp8 or
  bf16) with its tokenizer, the Wan VAE and the tiny decoder. Before reading
  a byte of weights it checks (`check`), in one go, that a CUDA GPU exists and every file is
  there (one ModelError naming what is missing, where it looked and the pull command), then
  that the estimated peak memory fits the GPU (`vram.ensure_fits`, refused with the estimate).
  Real weights are only ever read from the models directories.
- `tiny-random` (see `tiny`): the recipe's toy-sized set with random weights, in memory, for
  tests and for trying the node without a GPU;
- `random` (see `random_models`): the recipe's real shapes with random weights on the CUDA
  GPU: the real speed, noise for pictures (benchmarks).

A set loads part by part (`model_set.make_parts`), telling a `Progress` how far it has got: a
bar at start (`progress_bar`), log lines during a live switch (`progress_log`). A switch passes
the running set as `reuse`: the parts every Wan2.1 recipe shares (VAE, tiny decoder, text
encoder) are taken from it instead of being loaded again — only the DiT loads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from livevace.errors import ModelError, UserError
from livevace.models.wan import zoo
from livevace.models.wan.recipe import Recipe
from livevace.pipelines.vace.choices import AUTO, RANDOM, TINY_RANDOM, WEIGHTS
from livevace.pipelines.vace.model_set import ModelSet, Progress, make_parts
from livevace.store import catalog, vram

log = logging.getLogger("livevace.vace")


def load_models(model_name: str, weights: str | None, settings: vram.VramSettings, *,
                reuse: ModelSet | None = None, progress: Progress | None = None) -> ModelSet:
    """The model set of `model_name` (a zoo recipe) from `weights` (see module doc)."""
    recipe = zoo.recipe(model_name)
    weights = weights or AUTO
    found = check(recipe, weights)
    progress = progress or progress_bar(recipe, weights)
    if weights in (TINY_RANDOM, RANDOM):
        return _random(recipe, weights, settings, progress)
    vram.ensure_fits(settings)
    return _load(recipe, found, settings, shared(reuse, recipe), progress)


def _random(recipe: Recipe, weights: str, settings: vram.VramSettings,
            progress: Progress) -> ModelSet:
    """A random set (tiny on the CPU, or the real shapes on the GPU), its DiT's block weights
    stored in FP8 when the settings ask for it."""
    from livevace.models.wan.fp8_weights import store_fp8

    if weights == TINY_RANDOM:
        from livevace.pipelines.vace.tiny import tiny_random

        models = tiny_random(recipe, progress=progress)
    else:
        from livevace.pipelines.vace.random_models import random_set

        models = random_set(recipe, torch.device("cuda", torch.cuda.current_device()),
                            progress=progress)
    if settings.weights_dtype == "fp8":
        store_fp8(models.dit)
    return models


def check(recipe: Recipe, weights: str) -> dict[str, Path]:
    """Whether `recipe` can load from `weights` here, without reading a byte of weights: a
    UserError/ModelError (one line) saying why not — an unknown weights source, no CUDA GPU
    for the full-size sets (said first: no download would help then; the missing files are
    only mentioned), the catalogue files that are missing (`catalog.require_model`: every one,
    where it looked, `livevace models pull NAME`). Returns the files of `auto` (nothing for
    the random sets)."""
    if weights not in WEIGHTS:
        raise UserError(f"unknown weights {weights!r}: use {AUTO} (the files `livevace models "
                        f"pull` fetches), {TINY_RANDOM} (tiny random weights, runs on a CPU) "
                        f"or {RANDOM} (random weights at the real shapes, CUDA GPU)")
    if weights == TINY_RANDOM:
        return {}
    if vram.gpu_memory() is None:
        if weights == RANDOM:
            raise ModelError(f"--weights {RANDOM} builds {recipe.name}'s full-size models on a "
                             f"CUDA GPU and this machine has none; `--weights {TINY_RANDOM}` "
                             f"runs on the CPU")
        missing = [k for k in catalog.model_keys(recipe) if catalog.get(k).find() is None]
        size = catalog.format_size(sum(catalog.get(k).size_bytes for k in missing))
        also = f", so downloading its {size} of weights would not help" if missing else ""
        raise ModelError(f"the vace pipeline needs a CUDA GPU and this machine has none{also}; "
                         f"`--weights {TINY_RANDOM}` runs it on the CPU with random weights")
    return catalog.require_model(recipe) if weights == AUTO else {}


def shared(reuse: ModelSet | None, recipe: Recipe) -> dict[str, Any]:
    """The parts of a running set a load of `recipe` can take instead of loading them again:
    the codecs and the text encoder, when it came from the same files (`auto`) and its text
    embeddings are as wide as the recipe's DiT takes."""
    if reuse is None or reuse.weights != AUTO or reuse.dit.cfg.text_dim != recipe.config.text_dim:
        return {}
    return {"VAE": reuse.vae, "tiny decoder": reuse.tae, "text encoder": reuse.text}


def progress_bar(recipe: Recipe, weights: str) -> Progress:
    """Progress as a bar (starting the node: nothing else is on the terminal yet)."""
    bar = tqdm(total=0, desc=f"loading {recipe.name} ({weights})", unit="part")

    def tell(done: int, total: int, part: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(part, refresh=True)
        if done == total:
            bar.close()

    return tell


def progress_log(recipe: Recipe, weights: str) -> Progress:
    """Progress as log lines, one per part (a live switch: a bar would fight the status
    line)."""
    start = time.perf_counter()

    def tell(done: int, total: int, part: str) -> None:
        if part:
            log.info("loading %s (%s): %s, part %d of %d", recipe.name, weights, part,
                     done + 1, total)
        else:
            log.info("loaded %s (%s): %d of %d parts in %.1f s", recipe.name, weights, done,
                     total, time.perf_counter() - start)

    return tell


def _load(recipe: Recipe, found: dict[str, Path], settings: vram.VramSettings,
          reuse: dict[str, Any], progress: Progress) -> ModelSet:
    from livevace.models.wan.tae import load_tae
    from livevace.models.wan.text import load_text_encoder
    from livevace.models.wan.vae import load_wan_vae
    from livevace.models.weights import load_dit

    device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.bfloat16 if settings.dtype == "bf16" else torch.float16
    base, *lora = (found[k] for k in recipe.checkpoints)
    vace = next((found[k] for k in recipe.vace_checkpoints if k in found), None)
    text = next(k for k in ("umt5_fp8", "umt5_bf16") if k in found)
    makers: dict[str, Callable[[], Any]] = {
        "DiT + VACE": lambda: load_dit(base, vace=vace, lora=lora[0] if lora else None,
                                       cfg=recipe.config, device=device, dtype=dtype,
                                       fp8_weights=settings.weights_dtype == "fp8"),
        "VAE": lambda: load_wan_vae(found["wan_vae"], device=device, dtype=dtype),
        "tiny decoder": lambda: load_tae(found["taew2_1"], device=device, dtype=dtype),
        "text encoder": lambda: load_text_encoder(found[text], found["umt5_tokenizer"],
                                                  device=device, dtype=dtype,
                                                  keep_fp8=text == "umt5_fp8"),
    }
    todo = [(part, make) for part, make in makers.items() if part not in reuse]
    parts = {**reuse, **dict(zip([part for part, _ in todo], make_parts(todo, progress)))}
    log.info("%s loaded on %s (%s)", recipe.name, torch.cuda.get_device_name(device),
             ", ".join(str(p) for p in (base, *lora, vace) if p is not None))
    return ModelSet(f"{recipe.name}+vace", parts["DiT + VACE"], parts["VAE"],
                    parts["tiny decoder"], parts["text encoder"], device, recipe, AUTO)


def vram_settings(width: int, height: int, chunk_frames: int, model: str,
                  weights_dtype: str = "bf16", precision: str = "bf16") -> vram.VramSettings:
    """The estimate's inputs for this run of `model` with its block weights stored as
    `weights_dtype` and computed in `precision` (text encoder dtype from what is on disk)."""
    text_role = next(r for r in catalog.ROLES if r.name == "text encoder")
    fp8 = catalog.role_choice(text_role) == ("umt5_fp8",)
    return vram.VramSettings(width=width, height=height, chunk_frames=chunk_frames,
                             text_encoder_dtype="fp8" if fp8 else "bf16",
                             model=model, weights_dtype=weights_dtype,  # type: ignore[arg-type]
                             precision=precision)  # type: ignore[arg-type]
