"""The model set the vace pipeline runs on, and loading it — refused early and clearly.

    models = load_models(choice, VramSettings(...))   # None / "auto", "tiny-random", "random-1.3b"

`auto` takes the files of the models catalogue (`livevace models pull` fetches them; Scope's
folder is reused): the LongLive generator with its LoRA (or Self-Forcing), the Wan2.1 VACE
module, UMT5-XXL (fp8 or bf16) with its tokenizer, the Wan VAE and the tiny decoder. Before
reading a byte of weights it checks, in one go, that every file is there and that a CUDA GPU
exists (one ModelError naming what is missing, where it looked and the pull command), then
that the estimated peak memory fits the GPU (`vram.ensure_fits`, refused with the estimate).
Real weights are only ever read from the models directories.

`tiny-random` (see `tiny`) builds toy-sized random models in memory, for tests and for trying
the node without a GPU. `random-1.3b` (see `random_models`) builds the real shapes with random
weights on the CUDA GPU: the real speed, noise for pictures (benchmarks).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch
from tqdm.auto import tqdm

from livevace.errors import ModelError, UserError
from livevace.models.wan.recipe import LONGLIVE, SELF_FORCING, Recipe
from livevace.pipelines.vace.choices import RANDOM_1_3B, TINY_RANDOM
from livevace.pipelines.vace.model_set import ModelSet
from livevace.store import catalog, vram

log = logging.getLogger("livevace.vace")

ROLES = ("generator", "vace", "text encoder", "tokenizer", "vae", "tiny decoder")
"""Catalogue roles the pipeline loads (the depth annotator finds its own weights and falls
back to edges without them)."""


def load_models(choice: str | None, settings: vram.VramSettings) -> ModelSet:
    """The model set for `--model` (see module doc)."""
    choice = choice or "auto"
    if choice == TINY_RANDOM:
        from livevace.pipelines.vace.tiny import tiny_random

        return tiny_random()
    if choice == RANDOM_1_3B:
        if vram.gpu_memory() is None:
            raise ModelError(f"{RANDOM_1_3B} builds the full-size models on a CUDA GPU and this "
                             f"machine has none; `--model {TINY_RANDOM}` runs on the CPU")
        from livevace.pipelines.vace.random_models import random_1_3b

        return random_1_3b(torch.device("cuda", torch.cuda.current_device()))
    if choice != "auto":
        raise UserError(f"unknown model {choice!r}: use auto (the files `livevace models pull` "
                        f"fetches), {TINY_RANDOM} (tiny random weights, runs on a CPU) or "
                        f"{RANDOM_1_3B} (random weights at the real shapes, CUDA GPU)")
    files = _find_files()
    vram.ensure_fits(settings)
    return _load(files, settings)


def _find_files() -> dict[str, dict[str, Path]]:
    """Paths per role; one ModelError for a missing CUDA GPU — said first, since no download
    would help then (the missing files are only mentioned) — or for missing files."""
    wanted = {role.name: catalog.role_choice(role) for role in catalog.ROLES if role.name in ROLES}
    keys = [k for option in wanted.values() for k in option]
    if vram.gpu_memory() is None:
        missing = [k for k in keys if catalog.get(k).find() is None]
        size = catalog.format_size(sum(catalog.get(k).size_bytes for k in missing))
        also = f", so downloading its {size} of weights would not help" if missing else ""
        raise ModelError(f"the vace pipeline needs a CUDA GPU and this machine has none{also}; "
                         f"`--model {TINY_RANDOM}` runs it on the CPU with random weights")
    found = catalog.require(*keys)
    return {role: {k: found[k] for k in option} for role, option in wanted.items()}


def generator_recipe(generator: Mapping[str, Path]) -> Recipe:
    """The recipe of the generator files found: LongLive when its base is there (the
    catalogue's first choice), else Self-Forcing."""
    return LONGLIVE if "longlive_base" in generator else SELF_FORCING


def _load(files: dict[str, dict[str, Path]], settings: vram.VramSettings) -> ModelSet:
    from livevace.models.wan.tae import load_tae
    from livevace.models.wan.text import load_text_encoder
    from livevace.models.wan.vae import load_wan_vae
    from livevace.models.weights import load_dit

    device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.bfloat16 if settings.dtype == "bf16" else torch.float16
    generator, vace, text = files["generator"], files["vace"], files["text encoder"]
    recipe = generator_recipe(generator)
    base = generator[recipe.checkpoints[0]]
    steps = tqdm(total=4, desc="loading the vace pipeline", unit="part")
    try:
        steps.set_postfix_str("DiT + VACE")
        lora = generator[recipe.checkpoints[1]] if len(recipe.checkpoints) > 1 else None
        dit = load_dit(base, vace=next(iter(vace.values())), lora=lora, device=device,
                       dtype=dtype)
        steps.update()
        steps.set_postfix_str("VAE")
        vae = load_wan_vae(files["vae"]["wan_vae"], device=device, dtype=dtype)
        steps.update()
        steps.set_postfix_str("tiny decoder")
        tae = load_tae(files["tiny decoder"]["taew2_1"], device=device, dtype=dtype)
        steps.update()
        steps.set_postfix_str("text encoder")
        encoder = load_text_encoder(next(iter(text.values())), files["tokenizer"]["umt5_tokenizer"],
                                    device=device, dtype=dtype, keep_fp8="umt5_fp8" in text)
        steps.update()
    finally:
        steps.close()
    log.info("vace pipeline loaded on %s (%s)", torch.cuda.get_device_name(device),
             ", ".join(str(p) for p in (base, *vace.values())))
    return ModelSet("wan2.1-1.3b+vace", dit, vae, tae, encoder, device, recipe)


def vram_settings(width: int, height: int, chunk_frames: int,
                  decoder: str) -> vram.VramSettings:
    """The estimate's inputs for this run (text encoder dtype from what is on disk)."""
    text_role = next(r for r in catalog.ROLES if r.name == "text encoder")
    fp8 = catalog.role_choice(text_role) == ("umt5_fp8",)
    return vram.VramSettings(width=width, height=height, chunk_frames=chunk_frames,
                             decoder=decoder, text_encoder_dtype="fp8" if fp8 else "bf16")
