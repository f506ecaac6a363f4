"""The `vace` pipeline: streaming, causal VACE on Wan2.1-1.3B, every mode under live control.

    livevace run --pipeline vace                       # the catalogue's weights on a CUDA GPU
    livevace run --pipeline vace --model tiny-random   # tiny random weights, any CPU

Modules, one job each:
- `models`, `tiny`   — the model set: the catalogue's files (checked for presence, a CUDA GPU
                       and enough memory before loading) or the tiny random set;
- `modes`            — the mode a chunk runs in, from what is supplied (no mode switch);
- `annotation`       — control frames and person masks, computed a chunk ahead;
- `geometry`, `images` — crop-to-fill, outpaint placement, still images from paths;
- `context`          — the 96-channel VACE context and the causal encoder streams;
- `references`       — reference images in the KV cache's sink (why: see there);
- `motion`           — video-to-video start and the motion-aware noise controller;
- `stream`           — cache, sampler, codecs of one uninterrupted stream;
- `staging`, `timing` — reused upload buffers, non-blocking downloads, per-stage timing;
- `lane`, `ahead`    — the next chunk's context encoded on a second CUDA stream;
- `fast`, `warmup`   — the fast path on a GPU and everything done before going live;
- `pipeline`         — `StreamingVace`, the node's Pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livevace.params import ParamStore

MODEL_CHOICES = ("auto", "tiny-random", "random-1.3b")
"""`--model`: the catalogue's files (`livevace models pull`), tiny random models that run on
a CPU (`models.TINY_RANDOM`), or random weights at the real shapes on a CUDA GPU
(`models.RANDOM_1_3B`: the real speed without the weights)."""

if TYPE_CHECKING:
    from livevace.config import RunConfig
    from livevace.pipelines.vace.pipeline import StreamingVace


def create(config: "RunConfig", store: ParamStore, model: str | None = None,
           compile: bool | None = None, tae_context: bool | None = None) -> "StreamingVace":
    """The pipeline for a run, ready to go live; UserError (one line) when it cannot run here.

    On a CUDA device it takes the fast path (`fast.go_fast`: cuDNN autotuning, the compiled
    DiT stepping through CUDA graphs; `compile=False`, `livevace run --no-compile`, keeps the
    DiT eager for debugging) and prepares everything slow before returning (`prepare`).
    `tae_context` (QUALITY-AFFECTING, off by default): the VACE control is encoded by the tiny
    autoencoder instead of the Wan VAE (`context.TAEContextStream`)."""
    from livevace.pipelines.vace.fast import go_fast
    from livevace.pipelines.vace.geometry import generation_size
    from livevace.pipelines.vace.models import load_models, vram_settings
    from livevace.pipelines.vace.pipeline import StreamingVace

    params = store.snapshot()
    width, height = generation_size(config.width, config.height)
    models = load_models(model, vram_settings(width, height, params))
    go_fast(models, compile=compile is not False)
    pipeline = StreamingVace(models, config.width, config.height, params, owns_models=True,
                             context_encoder="tae" if tae_context else "wan")
    try:
        pipeline.prepare()
    except BaseException:
        pipeline.close()
        raise
    return pipeline
