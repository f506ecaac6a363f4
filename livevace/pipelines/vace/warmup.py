"""`StreamingVace.prepare`: everything slow, done before the show so that none of it lands
on a frame — and no CUDA-graph capture ever meets another thread's GPU work (see `fast`).

In order, on a CUDA device (on a CPU only 1, 5 and, for a compiled DiT, 4):
1. the prompts' encodes are waited for (the text encoder's thread is then idle);
2. the annotators the plan needs are built (weights loaded) and run on a grey chunk of each
   chunk length (first and later), waited for, then reset (their threads are then idle; cuDNN
   has tuned their layers for each batch; the depth network has compiled and captured its
   CUDA graph for the later chunks' shape, which a first chunk replays on its rows,
   `annotators.depth.TransformersDepth.graphs`);
3. codecs, per prepared chunk size: the VACE context encoder on its lane (first chunk, later
   chunks, an encoder restarted mid-video), the all-zeros latents until the shared cache has
   converged (VACE's inactive video with no mask costs nothing afterwards), a reference
   image's single frame, the tiny and the Wan decoder — each shape once, so cuDNN autotunes
   now (`cudnn.benchmark`, set by `fast.go_fast`) and not on the first frames, and the
   compiled VAE encoder and decoder (`vae_compiled`) compile their graphs now, the encoder's
   for a video's first frame too (if that fails, both run eagerly, with one warning);
4. the DiT, per prepared chunk size and with and without VACE: `StreamSampler.warm_up`
   (compilation on first use of each token count, then a capture of every state a session
   passes through, and of the text K/V rebuild that prompt fades replay every chunk) inside
   `LiveGraphs.warming`, with a placeholder text. If compilation fails here (no compiler on
   the machine), the DiT falls back to eager with one warning line instead of stopping the
   node;
5. the prompt's text K/V set in the pipeline's session (`take_text`), so the first chunk
   rebuilds nothing.

By default the pipeline's chunk size is prepared; `chunk_sizes=(1, 3)` prepares both (their
caches stay resident, a few GB more GPU memory), so a live `chunk_frames`
switch keeps the graphs; an unprepared size runs its DiT eagerly (see `fast`).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import wait
from contextlib import nullcontext
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from livevace.errors import ModelError, describe
from livevace.frames import Frame
from livevace.models.wan.compiled import Acceleration
from livevace.pipelines.vace import modes
from livevace.pipelines.vace.context import SessionEncoder
from livevace.pipelines.vace.fast import accelerate, live_graphs
from livevace.pipelines.vace.session import GenerationSession, pixel_frames
from livevace.pipelines.vace.zeros import ZeroLatents

if TYPE_CHECKING:
    from livevace.pipelines.vace.pipeline import StreamingVace

log = logging.getLogger("livevace.vace")

TEXT_TIMEOUT_S = 600.0


def prepare(pipeline: "StreamingVace", chunk_sizes: tuple[int, ...] | None = None,
            vace_modes: tuple[bool, ...] | None = None, progress: bool = True) -> float:
    """See the module doc. `vace_modes`: which DiT variants to capture (default: with and
    without VACE). Returns seconds."""
    models = pipeline.models
    cuda = models.device.type == "cuda"
    graphs = live_graphs(models.dit)
    compiled = graphs is not None or models.dit.acceleration.compile != "off"
    if not (cuda or compiled):
        take_text(pipeline)
        return 0.0
    start = time.perf_counter()
    sizes = chunk_sizes or (pipeline.session.chunk,)
    sessions = [pipeline.session if c == pipeline.session.chunk else
                pipeline.session_for(c) for c in sizes]
    has_vace = models.dit.cfg.has_vace
    variants = [m for m in (vace_modes or (True, False)) if has_vace or not m]
    size = f"{pipeline.gen_width}×{pipeline.gen_height}"
    if compiled and progress:
        log.info("compiling for %s (the first time ≈ 60 s: the DiT, the VAE encoder and the "
                 "depth network; later runs reuse the compile cache)%s", size,
                 ", then capturing CUDA graphs" if graphs is not None else "")
    parts = 1 + len(sessions) * ((1 if cuda else 0) + (len(variants) if compiled else 0))
    bar = tqdm(total=parts + cuda, desc=f"preparing {size}", unit="step", disable=not progress)
    try:
        bar.set_postfix_str("prompts")
        wait([models.embeddings.request(p.text) for p in pipeline.settings.prompts],
             timeout=TEXT_TIMEOUT_S)
        bar.update()
        if cuda:
            bar.set_postfix_str("annotators")
            warm_annotators(pipeline, *annotator_batches(pipeline, [s.chunk for s in sessions]))
            bar.update()
            for session in sessions:
                bar.set_postfix_str(f"codecs, chunks of {session.chunk}")
                warm_codecs_or_eager(pipeline, session)
                bar.update()
            torch.cuda.synchronize(models.device)
        for session in sessions:
            for vace in variants:
                if not compiled:  # eager (never accelerated, or compiling failed)
                    break
                bar.set_postfix_str(f"DiT, chunks of {session.chunk}"
                                    + (", VACE" if vace else ""))
                compiled = warm_dit(pipeline, session, vace)
                bar.update()
        take_text(pipeline)
    finally:
        bar.close()
    if cuda:
        torch.cuda.synchronize(models.device)
    return time.perf_counter() - start


def take_text(pipeline: "StreamingVace") -> None:
    """The first chunk's text K/V, built now: its own `TextConditioner.update` then finds
    nothing changed (one text K/V rebuild less before the first frame). A prompt that cannot
    be encoded is left for the first chunk to report, as it would be without `prepare`."""
    settings = pipeline.settings
    try:
        update = pipeline.text.update(settings.prompts, settings.prompt_blend,
                                      settings.transition_chunks, wait=True)
    except ModelError:
        return
    pipeline.session.sampler.set_text(update.embeddings)


def annotator_batches(pipeline: "StreamingVace", chunks: list[int]) -> tuple[list[int], list[int]]:
    """The annotators' batch sizes at these chunk sizes: (first chunks, the rest). The rest
    are later chunks, and single frames where frames are annotated as they are captured
    (lookahead 0, `Annotation.early`)."""
    early = {1 for c in chunks if pipeline.lookahead_for(c) == 0}
    return (sorted({pixel_frames(c, True) for c in chunks}),
            sorted({pixel_frames(c, False) for c in chunks} | early))


def warm_annotators(pipeline: "StreamingVace", first: list[int], later: list[int]) -> None:
    """Build the plan's annotators and run them on a grey chunk of each size (a network's
    batch is a chunk: cuDNN tunes each size once), then forget those chunks. The depth
    network compiles and captures its CUDA graph for the `later` sizes only (a slow compile
    each the first time), which run first: a first chunk, shorter, then replays a later
    chunk's graph on its rows, here as on the show's first chunk. `later` holds 1 where
    frames are annotated one by one as they are captured (lookahead 0)."""
    plan = modes.plan(pipeline.settings)
    annotation = pipeline.annotation
    annotation.follow(plan, pipeline.settings.depth_model)
    grey = np.full((pipeline.height, pipeline.width, 3), 128, np.uint8)
    learns = {**dict.fromkeys(first, False), **dict.fromkeys(later, True)}
    for size, learn in sorted(learns.items(), key=lambda item: (not item[1], item[0])):
        chunk = annotation.submit([Frame(grey, 0.0, i) for i in range(size)], plan, learn=learn)
        for kind in ("control", "mask"):
            try:
                annotation.result(chunk, plan, kind)
            except Exception as exc:  # noqa: BLE001 - the show reports it when it meets it
                log.warning("annotator warm-up: %s: %s", type(exc).__name__, exc)
    annotation.reset()


def warm_codecs_or_eager(pipeline: "StreamingVace", session: GenerationSession) -> None:
    """`warm_codecs`; if the compiled VAE encoder or decoder fails to compile (no compiler on
    the machine), again with both eager, after one warning line."""
    vae = pipeline.models.vae
    try:
        warm_codecs(pipeline, session)
    except Exception as exc:  # noqa: BLE001 - a missing compiler must not stop the show
        if vae.steady is None and vae.steady_decoder is None:
            raise
        log.warning("the VAE could not be compiled (%s); it runs eagerly (slower)",
                    describe(exc))
        vae.steady = vae.steady_decoder = None
        warm_codecs(pipeline, session)


@torch.no_grad()
def warm_codecs(pipeline: "StreamingVace", session: GenerationSession) -> None:
    """Every codec shape of this chunk size once (see the module doc; the compiled VAE
    encoder and decoder learn their shapes here), state reset after."""
    models, device = pipeline.models, pipeline.models.device
    c, h, w = session.chunk, pipeline.gen_height, pipeline.gen_width
    later = (1, 3, pixel_frames(c, False), h, w)
    steady = models.vae.steady
    with pipeline.lane.work(), steady.learning() if steady is not None else nullcontext():
        for i in range(2):  # a first chunk, then a later one (every later one looks alike)
            shape = later if i else (1, 3, pixel_frames(c, True), h, w)
            video = torch.rand(shape, device=device) * 2 - 1
            session.context.encode(shape, i, i == 0, video=video)
        SessionEncoder(models.vae).encode(video, later, device, 1, False)  # restarted mid-video
        zeros, previous = SessionEncoder(models.vae, first_frames=pixel_frames(c, True)), None
        for i in range(ZeroLatents.MAX_CHUNKS):
            out = zeros.encode(None, later if i else (1, 3, pixel_frames(c, True), h, w),
                               device, i, i == 0)
            if out is previous or not zeros.encoder.all_zeros:  # converged (or not cacheable)
                break
            previous = out
        session.context.reset()
    models.vae.causal_encoder().encode(torch.zeros(1, 3, 1, h, w, device=device))
    latents = torch.zeros(1, models.vae.config.z_dim, c, h // 8, w // 8, device=device)
    decoding = models.vae.steady_decoder
    with decoding.learning() if decoding is not None else nullcontext():
        for codec in (models.tae, models.vae):  # the first latent, then later ones
            decoder = codec.causal_decoder()
            for _ in range(1 if c > 2 else 3):  # (the Wan decoder's 2nd latent is a shape too)
                decoder.decode(latents)


def warm_dit(pipeline: "StreamingVace", session: GenerationSession, vace: bool) -> bool:
    """Compile and capture the DiT's states for this session; False when compiling failed
    and the DiT now runs eagerly."""
    models = pipeline.models
    graphs = live_graphs(models.dit)
    sampler = session.sampler
    try:
        with graphs.warming() if graphs is not None else nullcontext():
            sampler.set_text(torch.zeros(1, 1, models.dit.cfg.text_dim, device=models.device))
            sampler.warm_up(vace=vace)
    except Exception as exc:  # noqa: BLE001 - a missing compiler must not stop the show
        log.warning("the DiT could not be compiled (%s); it runs eagerly (slower). "
                    "`livevace run --no-compile` skips the attempt", describe(exc))
        accelerate(models.dit, Acceleration())
        sampler.reset()
        return False
    finally:
        pipeline.text.invalidate()  # the placeholder text is replaced by the first chunk's
    return True
