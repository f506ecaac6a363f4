"""Few-step flow-matching sampling of a stream, chunk by chunk, and LongLive's recache.

Schedule (Self-Forcing / LongLive `FlowMatchScheduler`: shift 5, 1000 training steps,
σ_min 0, extra_one_step): σ = linspace(1, 0, 1001)[:-1], σ' = shift·σ / (1 + (shift-1)·σ),
t = 1000·σ'. A step list such as [1000, 750, 500, 250] is *warped* through that table
(index 1000 - step), so the model sees t = [1000, 937.5, 833.3, 625.0]; `warp=False` passes
the raw values (Scope's behaviour). Each step predicts the flow v, x0 = x_t − σ'·v, and
re-noises with seeded noise, x_t' = (1 − σ'_next)·x0 + σ'_next·ε. After the last step one
more forward of the clean chunk at t = 0 (the refinement pass) writes clean K/V into the
cache (`refine`; otherwise the last step's K/V stay). The defaults are LongLive's recipe
(`recipe.LONGLIVE`); `from_recipe` takes any. Noise depends only on (seed, chunk start
frame, step), so changing the seed takes effect at the next chunk and a replay is
reproducible.

Pipeline use:

    sampler = StreamSampler(model, cache, steps, seed)
    sampler.set_text(embeddings)                       # on prompt change / each transition step
    sampler.set_strength(VaceStrength(...))            # every chunk; never rebuilds
    x0 = sampler.generate_chunk(vace=ctx)              # [B, 16, C, h, w] clean latents
    sampler.set_text(new_embeddings); sampler.recache()        # hard prompt cut (LongLive)
    sampler.reset()                                    # start afresh, keeps the text
    sampler.warm_up(vace=True)                         # after model.accelerate(...): compile and
                                                       # capture every cache state, then reset

`recache` re-runs the cached window at t = 0 with the current text K/V: the latents (and VACE
contexts) of every cached frame are kept in slot-aligned history buffers, the rolling frames
are dropped and replayed chunk by chunk in their original order (each attends to the sink and
to the replayed frames before it, as when it was generated). The sink keeps its K/V, like
LongLive's global sink, unless `include_sink=True`.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import StreamCache
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.models.wan.uploads import to_device, upload
from livevace.models.wan.vace import PassKind, VaceStrength


class FlowMatchSchedule:
    """The shifted flow-matching table of Self-Forcing / LongLive (float64)."""

    def __init__(self, shift: float = 5.0, train_steps: int = 1000) -> None:
        self.shift, self.train_steps = shift, train_steps
        sigma = torch.linspace(1.0, 0.0, train_steps + 1, dtype=torch.float64)[:-1]
        self.sigmas = shift * sigma / (1 + (shift - 1) * sigma)
        self.timesteps = self.sigmas * train_steps

    def warp(self, steps: Sequence[int]) -> list[float]:
        """The timesteps the model sees for a step list (`warp_denoising_step: true`)."""
        table = torch.cat([self.timesteps, self.timesteps.new_zeros(1)])
        for s in steps:
            if not 0 <= int(s) <= self.train_steps:
                raise ValueError(f"step {s} outside 0..{self.train_steps}")
        return [float(table[self.train_steps - int(s)]) for s in steps]

    def sigma(self, t: float) -> float:
        """σ' of the table entry nearest to timestep t (0 for t = 0)."""
        return 0.0 if t == 0 else self.nearest_sigma(t)

    def nearest_sigma(self, t: float) -> float:
        """σ' of the table entry nearest to timestep t, t = 0 included: the table ends one
        step above 0, so t = 0 finds its last entry (Krea's lookup, see `rebuild`)."""
        return float(self.sigmas[(self.timesteps - t).abs().argmin()])


class StreamSampler:
    """Generates a stream chunk by chunk with a `WanDiT` and its `StreamCache`."""

    def __init__(self, model: WanDiT, cache: StreamCache, steps: Sequence[int] = LONGLIVE.steps,
                 seed: int = 0, shift: float = LONGLIVE.shift, warp: bool = LONGLIVE.warp,
                 refine: bool = LONGLIVE.refine) -> None:
        self.model, self.cache = model, cache
        self.schedule = FlowMatchSchedule(shift)
        self.warp, self.refine = warp, refine
        self.steps: tuple[int, ...] = ()
        self.set_steps(steps)
        self.seed = int(seed)
        lay, cfg, dev = cache.layout, model.cfg, cache.device
        b, w = cache.batch, lay.window
        self.latents = torch.zeros(b, cfg.out_channels, w, lay.height, lay.width, device=dev)
        self.contexts = (torch.zeros(b, cfg.vace_in_channels, w, lay.height, lay.width, device=dev)
                         if cfg.has_vace else None)
        self.slot_has_vace = [False] * w
        n = max(1, len(cfg.vace_layers))
        self.hint_scales = {kind: torch.ones(n, device=dev)
                            for kind in ("generation", "refinement")}
        self.hints_on = dict.fromkeys(self.hint_scales, True)
        """Per pass kind: whether any of its hint scales is non-zero (see `hints`)."""
        self._ahead: tuple[tuple[int, int, int, tuple[int, ...]], torch.Tensor] | None = None

    @classmethod
    def from_recipe(cls, model: WanDiT, cache: StreamCache, recipe: Recipe,
                    steps: Sequence[int] | None = None, seed: int = 0) -> "StreamSampler":
        """A sampler with the recipe's schedule (steps: default the recipe's list)."""
        return cls(model, cache, recipe.steps if steps is None else steps, seed,
                   shift=recipe.shift, warp=recipe.warp, refine=recipe.refine)

    # ------------------------------------------------------------------------ settings
    def set_steps(self, steps: Sequence[int]) -> None:
        """Denoising step list, descending (Self-Forcing's raw values, warped if `warp`)."""
        steps = tuple(int(s) for s in steps)
        if not steps or list(steps) != sorted(steps, reverse=True):
            raise ValueError(f"steps must be a non-empty descending list, got {steps}")
        self.steps = steps
        self.timesteps = self.schedule.warp(steps) if self.warp else [float(s) for s in steps]

    def set_text(self, context: torch.Tensor) -> None:
        self.model.set_text(self.cache, context)

    def set_strength(self, strength: VaceStrength) -> None:
        """Copy the stratified hint scales into the static buffers the forwards read."""
        layers = len(self.model.cfg.vace_layers)
        if not layers:
            return
        for kind, buffer in self.hint_scales.items():
            values = strength.scales(kind, layers)  # type: ignore[arg-type]
            upload(buffer, torch.tensor(values, dtype=torch.float32))
            self.hints_on[kind] = any(v != 0.0 for v in values)

    def hints(self, kind: PassKind, vace: torch.Tensor | None
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The VACE context and hint scales a pass of `kind` runs with. Where every scale of
        that kind is 0 (`vace_refinement_scale 0`, as Scope's clean-cache pass runs), none:
        hints times 0 add nothing, so the pass skips the VACE blocks, the same pictures for
        about a third less of that forward's work (the node prepares both variants)."""
        if vace is None or not self.hints_on[kind]:
            return None, None
        return vace, self.hint_scales[kind]

    def reset(self) -> None:
        """Forget the stream (cache and history); text K/V and settings stay."""
        self.cache.reset()
        self.slot_has_vace = [False] * self.cache.layout.window

    @torch.no_grad()
    def warm_up(self, vace: bool = False) -> float:
        """Run a throw-away stream through every cache state a fresh stream meets (the window
        filling chunk by chunk, then full), so compilation and CUDA-graph capture happen now
        and not on the first frames; then `reset`. Needs the text set. Returns seconds."""
        start = time.perf_counter()
        cache, lay, cfg = self.cache, self.cache.layout, self.model.cfg
        ctx = (torch.zeros(cache.batch, cfg.vace_in_channels, lay.chunk, lay.height, lay.width,
                           device=cache.device) if vace else None)
        self.reset()
        for _ in range(self.steady_after() + 1):
            self.generate_chunk(vace=ctx)
        self.reset()
        if cache.device.type == "cuda":
            torch.cuda.synchronize(cache.device)
        return time.perf_counter() - start

    def steady_after(self) -> int:
        """Chunks a fresh stream takes until every later chunk sees the cache in the same state
        (here: the window filled); `warm_up` runs one more."""
        lay = self.cache.layout
        return -(-lay.window // lay.chunk)

    # ------------------------------------------------------------------------ sampling
    def noise(self, start: int, step: int, shape: Sequence[int]) -> torch.Tensor:
        """ε for (seed, chunk start frame, step): independent of anything else, the device
        included — drawn by the CPU generator (CUDA's draws other numbers), so a seed gives
        the same stream on every machine. Drawn straight into pinned memory on CUDA and copied
        up without a host sync (about a megabyte at 832×480)."""
        key = (self.seed, start, step, tuple(shape))
        ahead, self._ahead = self._ahead, None
        eps = ahead[1] if ahead is not None and ahead[0] == key else self._draw(key)
        return to_device(eps, self.cache.device)

    def _draw(self, key: tuple[int, int, int, tuple[int, ...]]) -> torch.Tensor:
        seed, start, step, shape = key
        g = torch.Generator(device="cpu")
        g.manual_seed((seed * 2654435761 + start * 40503 + step * 97) % 2**63)
        pinned = self.cache.device.type == "cuda"
        return torch.empty(*shape, pin_memory=pinned).normal_(generator=g)

    def _draw_ahead(self, start: int, shape: Sequence[int]) -> None:
        """Draw the next chunk's first noise now, while the GPU still runs this chunk: drawn
        when needed it held up the chunk's first forward (host time on the chunk's critical
        path, the GPU idle meanwhile). Used only if nothing changed the key (seed, start,
        shape)."""
        key = (self.seed, start, 0, tuple(shape))
        self._ahead = (key, self._draw(key))

    @torch.no_grad()
    def generate_chunk(self, vace: torch.Tensor | None = None, init: torch.Tensor | None = None,
                       timesteps: Sequence[float] | None = None) -> torch.Tensor:
        """Denoise the next chunk and write its clean K/V into the cache; returns x0.

        `init`: x_t for the first step (default: seeded noise, i.e. text/VACE-to-video);
        `timesteps`: what the model sees, overriding the warped step list (video-to-video
        starts lower, e.g. Scope's 1000·s − 100).
        """
        cache, lay = self.cache, self.cache.layout
        start = cache.next_frame
        b, c = cache.batch, lay.chunk
        shape = (b, self.model.cfg.in_channels, c, lay.height, lay.width)
        x = self.noise(start, 0, shape) if init is None else init.float()
        ts = list(self.timesteps if timesteps is None else timesteps)
        cache.begin_chunk(start)
        x0 = self.denoise(x, ts, vace, start)
        if self.refine:
            self.forward_pass(x0, 0.0, vace, "refinement")
        self._remember(range(start, start + c), x0, vace)
        self._draw_ahead(start + c, shape)
        cache.plan_ahead(start + c)
        return x0

    def denoise(self, x: torch.Tensor, timesteps: Sequence[float], vace: torch.Tensor | None,
                start: int) -> torch.Tensor:
        """The few steps of the chunk planned in the cache, from x_t at timesteps[0]; returns
        x0. Re-noised with the seeded noise of (chunk start frame `start`, step)."""
        for i, t in enumerate(timesteps):
            flow = self.forward_pass(x, t, vace, "generation")
            x0 = x - self.sigma(t) * flow
            if i + 1 < len(timesteps):
                s = self.sigma(timesteps[i + 1])
                x = (1 - s) * x0 + s * self.noise(start, i + 1, tuple(x.shape))
        return x0

    def sigma(self, t: float) -> float:
        """σ' at timestep t (the schedule's, σ' = 0 at t = 0)."""
        return self.schedule.sigma(t)

    def forward_pass(self, x: torch.Tensor, t: float, vace: torch.Tensor | None,
                     kind: PassKind) -> torch.Tensor:
        """One forward of the planned chunk at timestep t, hints scaled for its role (for loops
        of the pipeline's own; frames made so are not kept for `recache`)."""
        tt = torch.full((x.shape[0], x.shape[2]), t, device=x.device)
        vace, scale = self.hints(kind, vace)
        return self.model(x, tt, self.cache, vace=vace, hint_scale=scale)

    def _remember(self, frames: range, x0: torch.Tensor, vace: torch.Tensor | None) -> None:
        for j, f in enumerate(frames):
            slot = self.cache.layout.slot(f)
            self.latents[:, :, slot] = x0[:, :, j]
            self.slot_has_vace[slot] = vace is not None
            if vace is not None and self.contexts is not None:
                self.contexts[:, :, slot] = vace[:, :, j]

    @torch.no_grad()
    def recache(self, include_sink: bool = False) -> int:
        """Re-run the cached frames at t = 0 with the current text; returns frames replayed."""
        cache, lay = self.cache, self.cache.layout
        if cache.chunk_start is None:
            return 0
        last = (cache.chunk_start, cache.chunk_frames)
        frames = [f for f, _ in cache.frames() if include_sink or f >= lay.sink]
        cache.drop(frames)
        groups: dict[int, list[int]] = {}
        for f in frames:
            groups.setdefault(f // lay.chunk, []).append(f)
        for chunk in groups.values():
            slots = [lay.slot(f) for f in chunk]
            cache.begin_chunk(chunk[0], len(chunk))
            x0 = self.latents[:, :, slots]
            with_vace = self.contexts is not None and all(self.slot_has_vace[s] for s in slots)
            vace = self.contexts[:, :, slots] if with_vace else None  # type: ignore[index]
            self.forward_pass(x0, 0.0, vace, "refinement")
        cache.chunk_start, cache.chunk_frames = last
        return len(frames)
