"""Fast stepping of a `WanDiT`: fused QKV, compiled block phases, CUDA graphs, FP8 option.

    model = load_dit(...)                       # cast and moved to the GPU first
    model.accelerate(Acceleration(compile="default", cuda_graph=True))
    sampler = StreamSampler(model, model.new_cache(layout)); sampler.set_text(emb)
    sampler.warm_up(vace=True)                  # compile + capture before going live (and
    sampler.warm_up(vace=False)                 #   once without VACE if the show uses both)
    x0 = sampler.generate_chunk(vace=ctx)       # replays graphs from here on

Compile + graph is much faster than eager at both sizes, with and without VACE, most at the
smaller size where launches weigh more; a cold compile costs seconds for the first
resolution, the warm-up less (BENCHMARKS.md "Model core: speed work").

What each switch does and why:

- `fuse_qkv` (on by default): q, k, v as one GEMM (see `blocks.SelfAttention`). Same maths.
- `compile`: torch.compile of the three attention-free phases of a block (norms, modulation,
  RoPE, QK RMS norms, gated residuals, VACE hint adds, GELU around the GEMMs; see
  `blocks.WanBlock`). One compiled graph per phase and token count (two for `ffn_out`: with
  and without a hint to add) serves all 30 main and 15 VACE blocks, so a cold compile costs
  seconds, not minutes. Attention and the cache write stay outside: cuDNN's SDPA
  is already one kernel, and an in-place cache write inside a compiled graph risks a copy of
  the whole cache. "max-autotune" also searches Triton GEMM templates (slower to compile).
  Results agree with eager to float rounding.
- `cuda_graph`: the whole cached step (patch embedding … head, VACE included) is captured once
  per stream cache, chunk length, visible-prefix length and VACE on/off, then replayed: no
  Python, no launch gaps. Inputs are copied into static buffers, the output is copied out.
  The cache, its per-chunk plan (slots, RoPE tables) and the text K/V are already static
  device buffers, so a replay writes the chunk's K/V exactly as the eager step does. States
  that need an attention mask (a recache over a wrapped ring) and `write_cache=False` run
  eagerly. A state first met live (a new cache, a recache's prefix states) is captured then:
  capturing runs the step twice (warm-up, `cuda_graphs.capture`) on the chunk it is called
  for, ≈ 2 forwards once; that only rewrites the chunk's own cache slots, which the captured
  replay writes again. Each cache also gets a graph of its text K/V rebuild (`set_text`: a
  prompt fade rebuilds every chunk). Graphs belong to their cache and go with it; weights
  changed after `accelerate` (a LoRA merge, a cast) need `accelerate` again.
- `fp8` (off by default, QUALITY-AFFECTING): the large linear layers of every block in e4m3
  with row-wise scales, TorchAO's dynamic W8A8 (see `linear`); attention, norms and the time
  path stay as they are. The FP8 GEMMs sit inside the compiled phases, so each activation's
  quantisation can fuse into the element-wise kernel that produced it. `fp8_bf16` names the
  block linears kept in bf16 anyway: by default the two attention output projections, whose
  input is the attention's output, made outside the compiled phases, so their quantisation is
  a pass of its own over the activation, costing about what the FP8 GEMM saves at dim 1536. The
  VACE before/after projections, the embeddings and the head are not block linears: bf16
  always. Speed and quality: BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from livevace.cuda_graphs import capture
from livevace.models.wan.attention import flash4_runs_on
from livevace.models.wan.blocks import EAGER, Phases, WanBlock
from livevace.models.wan.linear import set_fp8
from livevace.models.wan.kv_cache import StreamCache

if TYPE_CHECKING:
    from livevace.models.wan.dit import WanDiT

CompileMode = Literal["off", "default", "max-autotune"]
COMPILE_MODES: tuple[CompileMode, ...] = ("off", "default", "max-autotune")
FP8_BF16 = ("self_attn.o", "cross_attn.o")
"""Block linears (by their name in the block) that `fp8` keeps in bf16 unless told otherwise."""


@dataclass(frozen=True)
class Acceleration:
    """How a `WanDiT` steps (see the module docstring); the default is plain eager."""

    compile: CompileMode = "off"
    cuda_graph: bool = False
    fp8: bool = False
    fuse_qkv: bool = True
    flash4: bool = False
    """FlashAttention-4 for every maskless attention where it is installed and the GPU is a
    Hopper or Blackwell (`attention`); SDPA otherwise. Same maths."""
    fp8_bf16: tuple[str, ...] = FP8_BF16
    """Block linears kept in bf16 under `fp8`: names in the block ("ffn.0", "self_attn.qkv"
    for the fused QKV, "self_attn.q" … unfused)."""

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {self.compile!r}")

    @property
    def label(self) -> str:
        """Short name for tables: eager, compile, autotune, +graph, +fp8 (fp8all: no layer
        kept in bf16), +fa4, +unfused."""
        parts = [{"off": "eager", "default": "compile", "max-autotune": "autotune"}[self.compile]]
        fp8 = "fp8" + ("" if self.fp8_bf16 == FP8_BF16 else "all" if not self.fp8_bf16
                       else "-custom")
        parts += [name for name, on in (("graph", self.cuda_graph), (fp8, self.fp8),
                                        ("fa4", self.flash4), ("unfused", not self.fuse_qkv)) if on]
        return "+".join(parts)


def accelerate(model: WanDiT, settings: Acceleration) -> None:
    """Switch `model` to `settings` (idempotent; call after the model's last cast or move)."""
    device = model.patch_embedding.weight.device
    if settings.cuda_graph and device.type != "cuda":
        raise ValueError("CUDA graphs need the model on a CUDA device")
    if settings.fp8 and device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        raise ValueError("FP8 linear layers need an Ada or Hopper GPU (compute capability 8.9+)")
    blocks = all_blocks(model)
    unknown = set(settings.fp8_bf16) - fp8_names(blocks[0]) if blocks else set()
    if unknown:
        raise ValueError(f"fp8_bf16: no block linear named {', '.join(sorted(unknown))} "
                         f"(names: {', '.join(sorted(fp8_names(blocks[0])))})")
    for block in blocks:
        for module in block.modules():
            set_fp8(module, False)
        block.self_attn.fuse_qkv(settings.fuse_qkv)
        for name, (owner, prefix) in fp8_candidates(block).items():
            set_fp8(owner, settings.fp8 and name not in settings.fp8_bf16, prefix)
    model.phases = compiled_phases(settings.compile)
    model.graphs = StepGraphs(model) if settings.cuda_graph else None
    explicit = model.attn_impl == "explicit"  # the slow reference path, chosen by hand: kept
    head_dim = model.cfg.dim // model.cfg.num_heads
    if settings.flash4 and (explicit or not flash4_runs_on(device, head_dim, model.compute_dtype)):
        settings = dataclasses.replace(settings, flash4=False)  # (what runs is what is reported)
    if not explicit:
        model.attn_impl = "flash4" if settings.flash4 else "sdpa"
    model.acceleration = settings


def all_blocks(model: WanDiT) -> list[WanBlock]:
    return list(model.blocks) + list(getattr(model, "vace_blocks", []))


def fp8_candidates(block: WanBlock) -> dict[str, tuple[torch.nn.Module, str]]:
    """The block's large matrix products (`fast_linears`) by their name in the block: the
    owner's module path, and for a fused projection its buffer prefix ("self_attn.qkv")."""
    names = {id(m): name for name, m in block.named_modules()}
    return {".".join(filter(None, (names[id(owner)], prefix.rstrip("_")))): (owner, prefix)
            for owner, prefix in block.fast_linears()}


def fp8_names(block: WanBlock) -> set[str]:
    """What `Acceleration.fp8_bf16` may name: the candidates, QKV fused or not."""
    return set(fp8_candidates(block)) | {"self_attn.q", "self_attn.k", "self_attn.v",
                                         "self_attn.qkv"}


@functools.cache
def compiled_phases(mode: CompileMode, backend: str = "inductor") -> Phases:
    """The block phases under torch.compile (built once per mode, shared by every model;
    tests pass a quicker `backend`)."""
    if mode == "off":
        return EAGER
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # one entry per token count
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 64))
    options = {} if mode == "default" else {"mode": "max-autotune-no-cudagraphs"}

    def build(fn):  # type: ignore[no-untyped-def]
        return torch.compile(fn, fullgraph=True, dynamic=False, backend=backend, **options)

    return Phases(build(WanBlock.self_in), build(WanBlock.cross_in), build(WanBlock.ffn_out))


@dataclass
class _Graph:
    """One captured step and the static tensors it reads and writes."""

    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    t: torch.Tensor
    vace: torch.Tensor | None
    scale: torch.Tensor
    out: torch.Tensor


@dataclass
class _TextGraph:
    """The cache's text K/V rebuild from a padded embedding [B, text_len, text_dim]."""

    graph: torch.cuda.CUDAGraph
    context: torch.Tensor


@dataclass
class _CacheGraphs:
    """The graphs of one stream cache and their memory pool. They replay one at a time, so
    they share one pool; it lives and dies with them (a pool handle must not outlive every
    graph captured into it)."""

    pool: tuple[int, int]
    graphs: dict[tuple, _Graph]
    text: _TextGraph | None = None


class StepGraphs:
    """CUDA graphs of `WanDiT.cached_forward`, captured on first use of each cache state."""

    def __init__(self, model: WanDiT) -> None:
        self.model = model
        self.graphs: weakref.WeakKeyDictionary[StreamCache, _CacheGraphs] = (
            weakref.WeakKeyDictionary())
        self.captures = 0
        self.text_captures = 0
        self.capture_seconds = 0.0
        """Wall time spent warming up and capturing (compilation included)."""

    def handles(self, cache: StreamCache, write_cache: bool) -> bool:
        """Whether this step can replay a graph (maskless attention, writing the cache)."""
        return (write_cache and cache.visible_prefix is not None
                and self.model.attn_impl != "explicit" and cache.device.type == "cuda")

    def may_capture(self) -> bool:
        """Whether a missing graph may be captured now (here always; `LiveGraphs`: only
        while the node prepares)."""
        return True

    def stepped_eagerly(self, cache: StreamCache) -> None:
        """Called when a step ran eagerly because its graph was missing and could not be
        captured (`LiveGraphs` counts and says so)."""

    def run(self, x: torch.Tensor, t: torch.Tensor, cache: StreamCache,
            vace: torch.Tensor | None, hint_scale: torch.Tensor | float | None) -> torch.Tensor:
        key = (cache.chunk_frames, cache.visible_prefix, tuple(x.shape),
               None if vace is None else tuple(vace.shape))
        per_cache = self._of(cache)
        entry = per_cache.graphs.get(key)
        if entry is None:
            if not self.may_capture():
                self.stepped_eagerly(cache)
                return self.model.cached_forward(x, t, cache, vace=vace, hint_scale=hint_scale)
            entry = per_cache.graphs[key] = self._capture(x, t, cache, vace, per_cache.pool)
        self._feed(entry, x, t, vace, hint_scale)
        entry.graph.replay()
        return entry.out.clone()

    def set_text(self, cache: StreamCache, padded: torch.Tensor) -> bool:
        """Rebuild the cache's text K/V from `padded` [B, text_len, text_dim] by replaying
        its graph (45 blocks' K/V projections in one launch: a prompt fade does this every
        chunk, host-bound eagerly; bench/NOTES_pipeline_speed.md part 6). False: no graph,
        none may be captured now, or not on a CUDA device — the caller rebuilds eagerly."""
        if cache.device.type != "cuda":
            return False
        per_cache = self._of(cache)
        if per_cache.text is None:
            if not self.may_capture():
                return False
            per_cache.text = self._capture_text(cache, padded, per_cache.pool)
        if per_cache.text.context.shape != padded.shape:
            return False
        per_cache.text.context.copy_(padded)
        per_cache.text.graph.replay()
        return True

    def _of(self, cache: StreamCache) -> _CacheGraphs:
        per_cache = self.graphs.get(cache)
        if per_cache is None:
            per_cache = self.graphs[cache] = _CacheGraphs(torch.cuda.graph_pool_handle(), {})
        return per_cache

    def _feed(self, g: _Graph, x: torch.Tensor, t: torch.Tensor, vace: torch.Tensor | None,
              hint_scale: torch.Tensor | float | None) -> None:
        g.x.copy_(x)
        g.t.copy_(t)
        if vace is not None and g.vace is not None:
            g.vace.copy_(vace)
        if isinstance(hint_scale, torch.Tensor):
            g.scale.copy_(hint_scale)
        else:
            g.scale.fill_(1.0 if hint_scale is None else float(hint_scale))

    @torch.no_grad()
    def _capture(self, x: torch.Tensor, t: torch.Tensor, cache: StreamCache,
                 vace: torch.Tensor | None, pool: tuple[int, int]) -> _Graph:
        start = time.perf_counter()
        n_scale = max(1, len(self.model.cfg.vace_layers))
        sx, st = x.detach().clone(), t.detach().clone()
        sv = None if vace is None else vace.detach().clone()
        scale = torch.ones(n_scale, device=x.device)

        def step() -> torch.Tensor:
            return self.model.cached_forward(sx, st, cache, vace=sv, hint_scale=scale)

        graph, out = capture(step, x.device, pool)
        self.captures += 1
        self.capture_seconds += time.perf_counter() - start
        return _Graph(graph, sx, st, sv, scale, out)

    @torch.no_grad()
    def _capture_text(self, cache: StreamCache, padded: torch.Tensor,
                      pool: tuple[int, int]) -> _TextGraph:
        start = time.perf_counter()
        context = padded.detach().clone()
        graph, _ = capture(lambda: self.model.write_text(cache, context), context.device, pool)
        self.text_captures += 1
        self.capture_seconds += time.perf_counter() - start
        return _TextGraph(graph, context)
