"""The causal Wan2.1 DiT (optionally with VACE): the network the pipeline runs per chunk.

API for the pipeline (see also `kv_cache`, `vace` and `sampler`):

    model = WanDiT(cfg)                                 # weights: livevace.models.weights
    model.for_inference(torch.bfloat16)                 # bf16 linears, fp32 time path and norms
    cache = model.new_cache(CacheLayout(height=40, width=72), batch=1)
    model.set_text(cache, text_embeddings)              # [B, ≤512, 4096], on prompt change
    cache.begin_chunk(start_frame)                      # once per chunk (host bookkeeping)
    v = model(x_t, t, cache, vace=ctx, hint_scale=s)    # [B,16,F,h,w], t [B,F] → flow, same shape
    model.accelerate(Acceleration(compile="default", cuda_graph=True))   # fast path, see `compiled`

The cache is an object of its own, not part of the model, so one model can run several
streams (the stratification experiment renders strategies side by side). Every forward
writes the chunk's K/V into its own cache slots (`write_cache=False`: attend
to the cache and the chunk without writing, eager only). Whether a forward is a generation
or a refinement pass only changes `hint_scale` (cache-stratified VACE, see `vace`).
`forward_full` is the one-shot, cache-free forward (all given frames attend to each other).

Static shapes: for a fixed layout and chunk size the step's tensors never change shape and
the step never syncs with the host; the inputs x, t, vace and hint_scale can live in static
buffers for CUDA graphs / torch.compile. The step branches on host state only in two places:
the cache's visible slots (a prefix of the buffer, or a mask) and whether `vace` is given;
`compiled.StepGraphs` keys its graphs on exactly these.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator, Mapping, Protocol

import torch
from torch import nn

from livevace.models.wan.attention import AttnImpl
from livevace.models.wan.blocks import (EAGER, KV, ForwardContext, Head, Hint, Phases, SelfKV,
                                       WanBlock, chunk_only)
from livevace.models.wan.compiled import Acceleration, StepGraphs, accelerate
from livevace.models.wan.config import WanConfig
from livevace.models.wan.kv_cache import CacheLayout, StreamCache
from livevace.models.wan.rope import Rope
from livevace.models.wan.vace import VaceBlock

FP32_PARAMS = ("time_embedding", "time_projection", "modulation", "norm")
"""Parameters kept in float32 by `for_inference` (small, and precision-sensitive)."""


class BlockSplit(Protocol):
    """Runs `WanDiT.run_blocks`' work spread over processes; same arguments, same result."""

    def run(self, tokens: torch.Tensor, c: torch.Tensor | None, ctx: ForwardContext,
            e: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor: ...


def sinusoidal_embedding(dim: int, t: torch.Tensor) -> torch.Tensor:
    """Wan's timestep embedding: [cos, sin] of t·10000^(-i/half), computed in float64."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    angles = torch.outer(t.double().flatten(), freqs)
    return torch.cat([angles.cos(), angles.sin()], dim=1).float()


class WanDiT(nn.Module):
    """Wan2.1 DiT with the original checkpoint's parameter names (plus VACE when configured)."""

    def __init__(self, cfg: WanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_channels, dim, cfg.patch, cfg.patch)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, dim),
                                            nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, dim), nn.SiLU(),
                                            nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList(WanBlock(cfg) for _ in range(cfg.num_layers))
        self.head = Head(cfg)
        if cfg.has_vace:
            self.vace_patch_embedding = nn.Conv3d(cfg.vace_in_channels, dim, cfg.patch, cfg.patch)
            self.vace_blocks = nn.ModuleList(VaceBlock(cfg, first=i == 0)
                                             for i in range(len(cfg.vace_layers)))
        self.rope = Rope(cfg)
        self.attn_impl: AttnImpl = "sdpa"
        """"explicit" switches every attention to the slow float32 reference path."""
        self.phases: Phases = EAGER
        self.graphs: StepGraphs | None = None
        self.split: BlockSplit | None = None
        """Where the blocks run: None here, else a multi-process policy (`livevace.distributed`)."""
        self.acceleration = Acceleration()
        """How the model steps now; set with `accelerate` (see `compiled`)."""

    # ------------------------------------------------------------------ set-up helpers
    def for_inference(self, dtype: torch.dtype = torch.bfloat16) -> "WanDiT":
        """Cast to `dtype` except the float32 time path, modulation tables and norms."""
        self.eval().requires_grad_(False)
        for name, p in self.named_parameters():
            keep = any(part in name for part in FP32_PARAMS)
            p.data = p.data.to(torch.float32 if keep else dtype)
        return self

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    def accelerate(self, settings: Acceleration | None = None) -> "WanDiT":
        """Compile / CUDA-graph / fuse / FP8 the step (`compiled.Acceleration`; default: plain
        eager). Call after the last cast or move of the model."""
        accelerate(self, settings or Acceleration())
        return self

    def new_cache(self, layout: CacheLayout, batch: int = 1) -> StreamCache:
        """A preallocated cache on this model's device and dtype."""
        w = self.patch_embedding.weight
        if layout.patch != self.cfg.patch[1:]:
            raise ValueError(f"layout patch {layout.patch} differs from the model's "
                             f"{self.cfg.patch}")
        return StreamCache(self.cfg, layout, batch, w.device, w.dtype)

    def pad_text(self, context: torch.Tensor) -> torch.Tensor:
        """[B, L ≤ text_len, text_dim] → [B, text_len, text_dim]; missing rows are zeros."""
        b, n, _ = context.shape
        if n > self.cfg.text_len:
            raise ValueError(f"{n} text tokens; the model takes at most {self.cfg.text_len}")
        padded = context.new_zeros(b, self.cfg.text_len, context.shape[-1])
        padded[:, :n] = context
        return padded

    def text_kv(self, context: torch.Tensor) -> list[KV]:
        """Cross-attention K/V of every main block, then every VACE block."""
        return self._padded_text_kv(self.pad_text(context))

    def _padded_text_kv(self, padded: torch.Tensor) -> list[KV]:
        ctx = self.text_embedding(padded.to(self.text_embedding[0].weight.dtype))
        blocks = list(self.blocks) + list(getattr(self, "vace_blocks", []))
        return [blk.cross_attn.text_kv(ctx) for blk in blocks]

    @torch.no_grad()
    def set_text(self, cache: StreamCache, context: torch.Tensor) -> None:
        """Rebuild the cached text K/V (prompt change or transition step); nothing else.
        Replayed from the cache's CUDA graph where there is one (`compiled.StepGraphs`)."""
        padded = self.pad_text(context)
        if self.graphs is None or not self.graphs.set_text(cache, padded):
            self.write_text(cache, padded)
        cache.text_ready = True

    def write_text(self, cache: StreamCache, padded: torch.Tensor) -> None:
        """The text K/V of `padded` [B, text_len, text_dim] into the cache's buffers."""
        for i, (k, v) in enumerate(self._padded_text_kv(padded)):
            cache.text_k[i].copy_(k)
            cache.text_v[i].copy_(v)

    # ------------------------------------------------------------------------ forwards
    def forward(self, x: torch.Tensor, t: torch.Tensor, cache: StreamCache, *,
                vace: torch.Tensor | None = None, hint_scale: torch.Tensor | float | None = None,
                write_cache: bool = True) -> torch.Tensor:
        """Flow prediction for the chunk planned by `cache.begin_chunk` (see module doc)."""
        if not cache.text_ready:
            raise RuntimeError("set_text() before the first forward")
        if x.shape[2] != cache.chunk_frames:
            raise ValueError(f"{x.shape[2]} frames given, the chunk has {cache.chunk_frames}")
        if self.graphs is not None and self.graphs.handles(cache, write_cache):
            return self.graphs.run(x, t, cache, vace, hint_scale)
        return self.cached_forward(x, t, cache, vace=vace, hint_scale=hint_scale,
                                   write_cache=write_cache)

    def cached_forward(self, x: torch.Tensor, t: torch.Tensor, cache: StreamCache, *,
                       vace: torch.Tensor | None = None,
                       hint_scale: torch.Tensor | float | None = None,
                       write_cache: bool = True) -> torch.Tensor:
        """`forward` without the CUDA-graph dispatch: what the graphs capture."""
        n_text = len(cache.text_k)
        text = [(cache.text_k[i], cache.text_v[i]) for i in range(n_text)]
        return self._run(x, t, text, cache.rope_tables, cache.writer(write_cache), vace, hint_scale)

    def forward_full(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, *,
                     vace: torch.Tensor | None = None,
                     hint_scale: torch.Tensor | float | None = None) -> torch.Tensor:
        """One cache-free forward over all frames of x (frame positions 0…F-1)."""
        _, _, f, h, w = x.shape
        rope = self.rope.cos_sin(range(f), h // self.cfg.patch[1], w // self.cfg.patch[2],
                                 x.device)
        return self._run(x, t, self.text_kv(context), rope, chunk_only, vace, hint_scale)

    def _run(self, x: torch.Tensor, t: torch.Tensor, text: list[KV], rope: KV, self_kv: SelfKV,
             vace: torch.Tensor | None, hint_scale: torch.Tensor | float | None) -> torch.Tensor:
        b, _, f, h, w = x.shape
        if t.shape != (b, f):
            raise ValueError(f"timesteps {tuple(t.shape)}, expected per-frame [{b}, {f}]")
        tokens = self._embed(self.patch_embedding, x)
        e = self.time_embedding(sinusoidal_embedding(self.cfg.freq_dim, t)).float()
        e6 = self.time_projection(e).float().unflatten(1, (6, -1)).unflatten(0, (b, f))
        e = e.unflatten(0, (b, f))
        ctx = ForwardContext(e6, rope, self_kv, text, self.attn_impl, self.phases)
        c = scale = None
        if vace is not None:
            if not self.cfg.has_vace:
                raise ValueError(f"{self.cfg.name} has no VACE blocks; load a VACE checkpoint")
            if vace.shape[0] != b or vace.shape[2:] != x.shape[2:]:
                raise ValueError(f"VACE context {tuple(vace.shape)} does not match the latent "
                                 f"{tuple(x.shape)}")
            scale = torch.as_tensor(1.0 if hint_scale is None else hint_scale,
                                    device=x.device, dtype=torch.float32)
            c = self._embed(self.vace_patch_embedding, vace)
        run = self.run_blocks if self.split is None else self.split.run
        return self._unpatchify(run(tokens, c, ctx, e, scale), f, h, w)

    def run_blocks(self, tokens: torch.Tensor, c: torch.Tensor | None, ctx: ForwardContext,
                   e: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        """Main blocks (with the hints of the control tokens c, if any) and the head, all in
        this process: patch tokens [B, N, dim] → head output [B, N, patch channels]."""
        hints = ({} if c is None or scale is None
                 else self.place_hints(list(self.vace_hints(tokens, c, ctx)), scale))
        return self.main_blocks(tokens, ctx, e, hints)

    def main_blocks(self, tokens: torch.Tensor, ctx: ForwardContext, e: torch.Tensor,
                    hints: Mapping[int, Hint]) -> torch.Tensor:
        """The main blocks, each followed by its hint (if any), and the head."""
        out = tokens
        for i, block in enumerate(self.blocks):
            out = block(out, ctx, i, hints.get(i))
        return self.head(out, e)

    def place_hints(self, made: list[torch.Tensor], scale: torch.Tensor) -> dict[int, Hint]:
        """main layer → the hint (and its scale) added after it."""
        return dict(zip(self.cfg.vace_layers, zip(made, scale.expand(len(made)))))

    def vace_hints(self, tokens: torch.Tensor, c: torch.Tensor, ctx: ForwardContext
                   ) -> Iterator[torch.Tensor]:
        """VACE hints of the control tokens c (patch-embedded context), one at a time as each
        VACE block finishes. VACE blocks attend within the chunk (see `vace`) and their text K/V
        follow the main blocks'. The main stream enters only through `tokens` (the embedded
        input), so a split can run this beside the main blocks."""
        vace_ctx = replace(ctx, self_kv=chunk_only, text=ctx.text[self.cfg.num_layers:])
        for j, block in enumerate(self.vace_blocks):
            hint, c = block.hint(c, tokens, vace_ctx, j)
            yield hint

    def _embed(self, conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
        """Patch embedding → contiguous float32 tokens [B, N, dim] (every block then sees the
        same strides: one compiled graph)."""
        return conv(x.to(self.compute_dtype)).flatten(2).transpose(1, 2).float().contiguous()

    def _unpatchify(self, y: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
        pt, ph, pw = self.cfg.patch
        c = self.cfg.out_channels
        y = y.float().reshape(y.shape[0], f // pt, h // ph, w // pw, pt, ph, pw, c)
        return y.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(y.shape[0], c, f, h, w)
