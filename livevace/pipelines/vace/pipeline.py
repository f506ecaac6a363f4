"""`StreamingVace`: the node's generator — input chunks in, generated chunks out.

Per call the loop hands over `frames_per_call` input frames and a parameter snapshot, read
once into the call's typed settings (`settings.ChunkSettings`). The pipeline submits the
chunk's annotation at once and then generates the chunk before it (`lookahead=1`: the
annotators work on chunk n+1 while the DiT runs chunk n; 0 = no overlap, one chunk less
latency, and the node hands the frames over as they are captured, `early`, so the call
waits only for its last frames' annotation; by default 1 for 3-latent chunks, where the
overlap is what makes the frame rate, and 0 for 1-latent chunks, chosen for latency: there a
chunk's call fits in its 4 frames' capture time on a fast GPU
(bench/NOTES_pipeline_speed.md), so waiting a chunk more would only add 4 frames of
latency). Generating a chunk:

1. live parameters land (see `_apply`): resets (every parameter the registry marks
   `apply="reset"`), steps, seed, strengths, chunk size, references, keyframes — all at this
   chunk boundary;
2. annotate: wait for the chunk's control frames / person masks (usually already done);
3. cache: `TextConditioner` gives this chunk's prompt embedding (a transition step, or a cut
   with recache), references are written into the sink if due;
4. encode: the VACE context (planned on the host by `planner`, encoded by `context`) and,
   for video-to-video, the noised input latents;
5. dit: `StreamSampler.generate_chunk`;
6. decode: `LiveDecoder` (wan or tae, switchable live) → uint8 frames, one per input frame,
   each stamped with its input's capture time; the first frame after a reset or a hard
   prompt cut carries `meta["cut"]` (the output path never morphs across it).
Overlap (`overlap=True`, the default): once chunk n's DiT and decode are queued, the context
of chunk n+1 is planned and encoded on a second CUDA stream while they run (`ahead`'s
`ContextLane` decides whether a job runs ahead or in line; `lane` is the CUDA stream), so
with lookahead 1 the encode leaves the critical path; a parameter change that lands in
between rolls it back and the chunk is planned again and encoded in line — the pictures
never differ from the serial order. The frames go to the host without blocking
(`Staging.download`) until that encode is queued.
Each stage is timed into the node's stats (`stage_annotate_ms` on the annotator threads,
`stage_annotate_wait_ms` what the loop waited for it, `stage_cache_ms`, `stage_encode_ms`
(the context's encode time wherever it ran, + the video-to-video input's),
`stage_encode_wait_ms` (CUDA: what the DiT waited for an encode on the lane),
`stage_dit_ms`, `stage_decode_ms`; counters `encode_ahead_used` / `encode_ahead_discarded`).

`prepare()` (see `warmup`) does everything slow before the show: prompt encodes, annotator
loads, cuDNN tuning of the codecs, the prompt's text K/V, and on the fast path
(`fast.go_fast`) the compilation of the DiT and the VAE encoder and every CUDA-graph capture.
It and every call run on the pipeline's own thread, whoever calls (see `_worker`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Callable, Sequence

import cv2
import numpy as np
import torch

from livevace.errors import UserError
from livevace.frames import Frame
from livevace.models.wan.codec import pixels_to_frames
from livevace.models.wan.ema_sink import set_sink_alpha
from livevace.pipelines.vace.prompt_blend import TextConditioner
from livevace.params import changes
from livevace.pipelines.vace import modes
from livevace.pipelines.vace.ahead import ContextLane, Encoded, key
from livevace.pipelines.vace.annotation import Annotation, Chunk
from livevace.pipelines.vace.geometry import fit_frames, generation_size
from livevace.pipelines.vace.images import ImageCache
from livevace.pipelines.vace.lane import Lane
from livevace.pipelines.vace.models import ModelSet
from livevace.pipelines.vace.motion import start_timesteps
from livevace.pipelines.vace.planner import ContextPlanner, Inputs
from livevace.pipelines.vace.references import References, write_sink
from livevace.pipelines.vace.settings import ChunkSettings
from livevace.pipelines.vace.staging import Staging
from livevace.pipelines.vace.session import GenerationSession, pixel_frames
from livevace.pipelines.vace.timing import StageTimer
from livevace.stats import Stats

if TYPE_CHECKING:
    from livevace.annotators.depth import DepthEstimator

log = logging.getLogger("livevace.vace")

CONTEXT_ENCODERS = ("wan", "tae")
"""Encoders of the control part of the VACE context: the Wan VAE, or (quality-affecting) the
tiny autoencoder's."""
KEYFRAMES = ("first", "last")


class StreamingVace:
    """The `vace` pipeline (see module doc). `params`: the registry snapshot at start;
    `overlap`: encode the next chunk's context beside the DiT (off: strictly serial);
    `context_encoder`: "wan" (the default) or "tae" — QUALITY-AFFECTING, the control part of
    the context through the tiny encoder (see `context.TAEContextEncoder`);
    `depth_estimator`: see `Annotation`; `generate_at`: the generation size (multiples of 16;
    default `generation_size(width, height)`), its frames scaled to width × height."""

    name = "vace"

    def __init__(self, models: ModelSet, width: int, height: int, params: dict[str, Any], *,
                 lookahead: int | None = None, stats: Stats | None = None,
                 owns_models: bool = False, overlap: bool = True,
                 context_encoder: str = "wan",
                 depth_estimator: Callable[[], DepthEstimator] | None = None,
                 generate_at: tuple[int, int] | None = None) -> None:
        if context_encoder not in CONTEXT_ENCODERS:
            raise UserError(f"context encoder {context_encoder!r}: choose "
                            f"{' or '.join(CONTEXT_ENCODERS)}")
        self.models = models
        self.width, self.height = width, height
        self.gen_width, self.gen_height = generate_at or generation_size(width, height)
        self._lookahead = lookahead
        self.stats = stats or Stats()
        self.owns_models = owns_models
        self.params = dict(params)
        """The registry snapshot of the last call (what the next one is compared with)."""
        self.settings = ChunkSettings.of(params)
        self.images = ImageCache(self.gen_width, self.gen_height)
        self.references = References(models.vae, self.images, models.device)
        self.text = TextConditioner(models.embeddings, models.dit.cfg.text_len)
        self.annotation = Annotation(self.settings.depth_model, lambda: self.stats,
                                     depth_estimator)
        self.staging = Staging(models.device)
        self.timer = StageTimer(models.device)
        self.overlap = overlap
        self.context_encoder = context_encoder
        self.lane = Lane(models.device, overlap)
        self.planner = ContextPlanner(self.gen_width, self.gen_height, self.images,
                                      self.references, self.annotation, lambda: self.stats)
        self.contexts = ContextLane(self.lane, self.staging, self.timer, lambda: self.stats,
                                    overlap)
        """Runs the context jobs, in line or ahead (see `ahead`)."""
        self.pending: deque[Chunk] = deque()
        self.sessions: dict[tuple[int, int], GenerationSession] = {}
        """One session per shape met (or prepared), kept: see `session_for`."""
        self.session = self.session_for()
        self.due: set[str] = set(KEYFRAMES)
        """Keyframes to place in the next chunk (at a session's start and when changed)."""
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="vace")
        """The one thread that runs `prepare` and every call. cuDNN's tuned convolution plans
        are kept per thread (PyTorch's cache is thread-local), so work prepared on one thread
        and called from another (the node's loop) re-tuned every convolution of the codecs:
        a long stall on the first frame."""
        self.chunks_out = 0
        self._mode = ""
        self._text_error: str | None = None
        for prompt in self.settings.prompts:  # start encoding now; the first chunk waits for it
            models.embeddings.request(prompt.text)
        self.references.update(self.settings.reference_images)

    def bind_stats(self, stats: Stats) -> None:
        """Time the stages into the node's stats."""
        self.stats = stats

    @property
    def lookahead(self) -> int:
        """Chunks annotated ahead: as given, else by the current chunk size (module doc)."""
        return self.lookahead_for(self.session.chunk)

    def lookahead_for(self, chunk: int) -> int:
        """Chunks annotated ahead at chunk size `chunk`."""
        if self._lookahead is not None:
            return self._lookahead
        return 0 if chunk == 1 else 1

    @property
    def frames_per_call(self) -> int:
        """Frames of the next chunk submitted (it follows any pending one, so it is a later
        chunk then; a longer chunk than needed is trimmed to its newest frames)."""
        return pixel_frames(self.session.chunk, self.session.first and not self.pending)

    @property
    def steady_frames_per_call(self) -> int:
        """Frames of every chunk after the first at the present chunk size (the bursts the
        output stage prepares for)."""
        return pixel_frames(self.session.chunk, False)

    # ------------------------------------------------------------------------------ call
    def __call__(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]:
        """Generate (see the module doc); runs on the pipeline's own thread (`_worker`)."""
        return self._worker.submit(self._call, frames, params).result()

    def _call(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]:
        settings = ChunkSettings.of(params)
        plan = modes.plan(settings)
        self.annotation.follow(plan, settings.depth_model)
        self.pending.append(self.annotation.submit(frames, plan))
        self._apply(params, settings)
        out: list[Frame] = []
        while len(self.pending) > self.lookahead:
            out += self._generate(self.pending.popleft(), settings, plan)
        self._encode_ahead(settings, plan)  # (done already when a chunk was generated)
        return out

    def early(self, frames: list[Frame]) -> None:
        """Frames of the next call, as they are captured (`Foresight`): with no chunk
        annotated ahead (lookahead 0) their annotation starts now, at the last call's
        settings, and the call waits only for its last frames' (`Annotation.early`)."""
        if self.lookahead == 0 and not self.pending:
            self.annotation.early(frames, modes.plan(self.settings))

    def prepare(self, chunk_sizes: tuple[int, ...] | None = None,
                vace_modes: tuple[bool, ...] | None = None, progress: bool = True) -> float:
        """Before going live (see `warmup.prepare`); seconds spent (0: nothing to prepare)."""
        from livevace.pipelines.vace.warmup import prepare

        return self._worker.submit(prepare, self, chunk_sizes, vace_modes, progress).result()

    def settle(self) -> None:
        """Wait for the work in flight beside the calls (the pending chunks' annotations, the
        frames handed over early, a context encoded ahead): before another pipeline prepares
        on the same GPU while this one is not called (`switch`), so no capture meets its
        work."""
        wait([future for chunk in self.pending for _, future in chunk.jobs.values()])
        self.annotation.settle()
        if self.models.device.type == "cuda":
            torch.cuda.synchronize(self.models.device)

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self.contexts.clear()
        self.pending.clear()
        self.annotation.close()
        if self.owns_models:
            self.models.close()

    # ------------------------------------------------------------------- live parameters
    def session_key(self, chunk: int, steps: Sequence[int]) -> tuple[int, int]:
        """What gives a stream its static shapes: the chunk size, and for a stream batch (a
        batch row per step, `Recipe.rows_per_step`) the number of steps."""
        return chunk, len(steps) if self.models.recipe.rows_per_step else 0

    def session_for(self, chunk: int | None = None) -> GenerationSession:
        """The session for chunk size `chunk` (default: the settings') at the current settings.
        Sessions are kept per shape (`session_key`): a shape met again (or prepared before the
        show) comes back reset, with its cache, buffers and captured CUDA graphs, instead of
        being rebuilt."""
        s = self.settings
        chunk = s.chunk_frames if chunk is None else chunk
        key = self.session_key(chunk, s.steps)
        session = self.sessions.get(key)
        if session is None:
            session = self.sessions[key] = GenerationSession(
                self.models, self.gen_width, self.gen_height, chunk, s.decoder, s.steps, s.seed,
                s.strength, self.context_encoder)
        else:
            session.reset()
            session.sampler.set_steps(s.steps)
            session.sampler.seed = s.seed
            session.sampler.set_strength(s.strength)
        set_sink_alpha(session.cache, s.ema_sink_alpha)
        return session

    def _apply(self, params: dict[str, Any], settings: ChunkSettings) -> None:
        """Land the changes since the last call: a change of any parameter the registry marks
        `apply="reset"` (or its trigger fired) resets the session; the sampler follows the
        settings that changed."""
        resets = sorted(changes(self.params, params)["reset"])
        old, self.params, self.settings = self.settings, dict(params), settings
        new_session = (self.session_key(settings.chunk_frames, settings.steps)
                       != self.session_key(old.chunk_frames, old.steps))
        if new_session:
            self.session = self.session_for()
            self.text.invalidate()  # a new cache: the current prompt's K/V are rebuilt
        else:
            sampler = self.session.sampler
            if settings.steps != old.steps:
                sampler.set_steps(settings.steps)
            if settings.seed != old.seed:
                sampler.seed = settings.seed
            if settings.strength != old.strength:
                sampler.set_strength(settings.strength)
            if settings.ema_sink_alpha != old.ema_sink_alpha:
                set_sink_alpha(sampler.cache, settings.ema_sink_alpha)
        if self.references.update(settings.reference_images):
            self.session.sink_written = False  # written (again) before the next chunk
            if not self.references.used and not self.session.first:
                resets.append("reference_images")  # the sink must stop steering
        if resets:
            log.info("%s: cache reset, the stream starts afresh with the current prompt",
                     ", ".join(resets))
            self._reset(new_session=new_session)
        for key, path in settings.keyframes.items():
            if path and path != old.keyframes[key]:
                self.due.add(key)
        self.images.forget({*settings.reference_images, settings.mask_image,
                            *settings.keyframes.values()})

    def _reset(self, new_session: bool = False) -> None:
        """Start the session afresh; the text K/V (the *current* prompt) stay."""
        if not new_session:  # a new session starts fresh anyway
            self.session.reset()
        self.annotation.reset()
        self.due = set(KEYFRAMES)

    # ------------------------------------------------------------------------ generation
    def _key(self, session: GenerationSession, chunk: Chunk, cut: int,
             plan: modes.Plan) -> tuple:
        return key(session, chunk, cut, plan, self.references.latents is not None, self.due)

    def _generate(self, chunk: Chunk, settings: ChunkSettings, plan: modes.Plan) -> list[Frame]:
        session = self.session
        cut = self.planner.cut(session, chunk)
        ahead = self.contexts.take(self._key(session, chunk, cut, plan))
        if cut < 0:  # the chunk size grew since it was taken
            self.stats.count("dropped_vace", len(chunk.frames))
            return []
        if cut:
            self.stats.count("dropped_vace", cut)
        inputs = self.planner.inputs(chunk, cut, plan, "annotate_wait")
        self._log_mode(self._in_use(plan, chunk, inputs.masks, settings))

        update = self.text.update(settings.prompts, settings.prompt_blend,
                                  settings.transition_chunks, wait=not session.text_ready)
        if update.error and update.error != self._text_error:
            log.error("%s; the previous prompt keeps playing", update.error)
        self._text_error = update.error

        with self.timer.stage("cache"):  # what the cache must hold before the chunk
            self.models.loras.update(settings.loras, settings.transition_chunks,
                                     wait=session.first)
            if update.changed:
                session.sampler.set_text(update.embeddings)
            recipe = self.models.recipe
            if update.recache and not session.first and recipe.prompt_switch == "recache":
                replayed = session.sampler.recache()
                log.info("prompt cut: re-ran %d cached frames with the new prompt", replayed)
            if self.references.latents is not None and not session.sink_written:
                if recipe.references:
                    write_sink(session.sampler,
                               *self.references.sink_frames(session.cache.layout.sink))
                else:
                    log.warning("%s keeps no reference frames in its cache: the reference "
                                "images are not used while it plays", recipe.name)
                session.sink_written = True
        with self.timer.stage("encode"):
            init, timesteps = self._video_start(session, inputs.images, plan, settings)
        context = self._context(session, ahead, inputs, plan, settings)
        with self.timer.stage("dit"):
            latents = session.sampler.generate_chunk(vace=context, init=init,
                                                     timesteps=timesteps)
        if context is not None:
            session.context.release(context)
        with self.timer.stage("decode"):
            pixels = session.decoder.decode(latents, settings.decoder)
            session.keep_decoded(pixels)
            download = self.staging.download(pixels_to_frames(pixels)[0])
        scene_cut = session.first or update.recache  # a reset or a hard prompt cut
        session.chunks += 1
        self._encode_ahead(settings, plan)
        out = download.numpy()
        self.timer.report(self.stats)
        number = self.chunks_out
        self.chunks_out += 1
        return [Frame(self._output(image), f.t_capture, f.index,
                      {"chunk": number, "cut": scene_cut and i == 0})
                for i, (image, f) in enumerate(zip(out, inputs.frames))]

    def _video_start(self, session: GenerationSession, images: list[np.ndarray],
                     plan: modes.Plan, settings: ChunkSettings
                     ) -> tuple[torch.Tensor | None, list[float] | None]:
        """Video-to-video: the noised input latents and the timesteps they start at."""
        if not plan.latent_init:
            return None, None
        raw = fit_frames(images, self.gen_width, self.gen_height)
        scale = settings.noise_scale
        if settings.noise_controller:
            scale = session.motion(raw, scale)
        latents = session.encode_input(self.staging.pixels("input", raw)).float()
        noise = session.sampler.noise(session.cache.next_frame, 0, latents.shape)
        return (noise * scale + latents * (1.0 - scale),
                start_timesteps(session.sampler.timesteps, scale))

    def _context(self, session: GenerationSession, ahead: Encoded | None, inputs: Inputs,
                 plan: modes.Plan, settings: ChunkSettings) -> torch.Tensor | None:
        """The chunk's VACE context (None when unused): the one encoded ahead, or one planned
        and encoded now, in line."""
        if ahead is None:
            job = self.planner.job(session, inputs, plan, settings, self.due)
            ahead = None if job is None else self.contexts.inline(session, job)
        self.due.clear()
        return None if ahead is None else self.contexts.context(ahead)

    def _encode_ahead(self, settings: ChunkSettings, plan: modes.Plan) -> None:
        """Plan the next pending chunk's context and queue it on the lane, if the lane wants
        it (see `ahead`)."""
        if not self.pending or not self.contexts.wants(self.pending[0]):
            return
        chunk, session = self.pending[0], self.session
        cut = self.planner.cut(session, chunk)
        if cut < 0:
            return
        try:
            inputs = self.planner.inputs(chunk, cut, plan, "annotate_ahead_wait")
        except Exception:  # noqa: BLE001 - raised again, and reported, when the chunk's turn comes
            return
        job = self.planner.job(session, inputs, plan, settings, self.due)
        if job is not None:
            self.contexts.ahead(self._key(session, chunk, cut, plan), session, chunk, job)

    def _output(self, image: np.ndarray) -> np.ndarray:
        if (self.gen_width, self.gen_height) == (self.width, self.height):
            return image
        return cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def _in_use(self, plan: modes.Plan, chunk: Chunk, masks: list[np.ndarray] | None,
                settings: ChunkSettings) -> modes.Plan:
        """The plan as the chunk really runs it, for the log: the control after any fallback
        (depth without weights runs edges), the person mask only where it ran, and only the
        images that could be read (a refused one is logged once by `ImageCache`)."""
        def readable(path: str, what: str, read: Callable[[str, str], Any]) -> str:
            return path if path and read(path, what) is not None else ""

        images = self.images
        keyframes = {k: readable(path, f"{k} frame image", images.rgb)
                     for k, path in settings.keyframes.items()}
        return dataclasses.replace(
            plan, control=chunk.used.get("control", plan.control) if plan.annotator
            else plan.control,
            person_mask=plan.person_mask if masks is not None else None,
            mask_image=readable(plan.mask_image, "mask image", images.mask),
            references=self.references.used if self.models.recipe.references else (),
            first_frame=keyframes["first"],
            last_frame=keyframes["last"])

    def _log_mode(self, plan: modes.Plan) -> None:
        mode = plan.describe()
        if mode != self._mode:
            log.info("vace: %s", mode)
            self._mode = mode
