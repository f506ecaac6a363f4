"""How one forward of the DiT is spread over the ranks: policies of the same `WanDiT`.

- `ulysses`: sequence parallelism. Every rank holds 1/P of each frame's tokens (a band of
  rows), runs every block on them, and swaps tokens for heads around self-attention with one
  all-to-all each way (DeepSpeed-Ulysses), so attention sees the whole window for H/P heads.
  The self-attention cache is sharded by heads (each rank keeps its own heads' K/V);
  cross-attention needs no exchange (text K/V are small and kept whole). Cuts the time of
  one chunk: the split for latency and for the 14B model.
- `vace`: the VACE branch beside the main blocks. VACE block j depends only on the control
  tokens and the patch-embedded input, never on a main block, so half the ranks run the VACE
  blocks and send hint j on to the rank that adds it after main block `vace_layers[j]`, while
  the other half run the main blocks; each half is a `ulysses` team of its own (P = 2: one
  rank each).

Every rank ends a forward holding the whole head output, so the samplers of all ranks stay
equal (see `facade`). Work that is only moved gives the same bits; work that is
re-partitioned (matrix products over fewer rows) gives the same numbers within rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Mapping

import torch
import torch.distributed as dist

from livevace.errors import UserError
from livevace.models.wan.blocks import ForwardContext, Hint
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import StreamCache

SPLITS = ("ulysses", "vace")
"""The split policies by name, the default first."""


@dataclass(frozen=True)
class Team:
    """Ranks that share one forward's tokens; `index`: this rank's place among them."""

    ranks: tuple[int, ...]
    group: dist.ProcessGroup | None
    index: int

    @property
    def size(self) -> int:
        return len(self.ranks)


def team(ranks: tuple[int, ...]) -> Team:
    """The team of `ranks`; every rank must call this for every team, in the same order
    (`new_group` is collective)."""
    group = dist.new_group(list(ranks)) if len(ranks) > 1 else None
    me = dist.get_rank()
    return Team(ranks, group, ranks.index(me) if me in ranks else -1)


class Shard:
    """This rank's tokens of a chunk of `frames` frames: band `index` of `size` of every
    frame's tokens ([B, F·T, C] → [B, F·T/size, C])."""

    def __init__(self, frames: int, team: Team) -> None:
        self.frames, self.team = frames, team

    def take(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        if self.team.size == 1:
            return x
        band = x.unflatten(dim, (self.frames, self.team.size, -1)).select(dim + 1, self.team.index)
        return band.flatten(dim, dim + 1).contiguous()

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's [B, F·T/size, C] → the whole [B, F·T, C] on every rank of the team."""
        if self.team.size == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.team.size)]
        dist.all_gather(parts, x.contiguous(), group=self.team.group)
        bands = [p.unflatten(1, (self.frames, -1)) for p in parts]
        return torch.stack(bands, dim=2).flatten(1, 3)

    def context(self, ctx: ForwardContext) -> ForwardContext:
        """The blocks' context for this rank's tokens: its RoPE rows, heads exchanged."""
        if self.team.size == 1:
            return ctx
        cos, sin = (self.take(table, dim=0) for table in ctx.rope)
        return replace(ctx, rope=(cos, sin), heads=AllToAll(self))


class AllToAll:
    """Ulysses' exchange: [B, H, F·T/P, D] of this rank's tokens ↔ [B, H/P, F·T, D]."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def to_heads(self, qkv: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        p, f = self.shard.team.size, self.shard.frames
        x = torch.stack(qkv)                                  # [S, B, H, F·Tl, D]
        s, b, h, _, d = x.shape
        x = x.view(s, b, p, h // p, f, -1, d).permute(2, 0, 1, 3, 4, 5, 6).contiguous()
        got = self._swap(x)                                   # [P(band), S, B, H/P, F, Tl, D]
        got = got.permute(1, 2, 3, 4, 0, 5, 6).reshape(s, b, h // p, -1, d)
        return tuple(got.unbind(0))

    def to_tokens(self, attn: torch.Tensor) -> torch.Tensor:
        p, f = self.shard.team.size, self.shard.frames
        b, hp, _, d = attn.shape
        x = attn.view(b, hp, f, p, -1, d).permute(3, 0, 1, 2, 4, 5).contiguous()
        got = self._swap(x)                                   # [P(head group), B, H/P, F, Tl, D]
        return got.permute(1, 0, 2, 3, 4, 5).reshape(b, hp * p, -1, d)

    def _swap(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        dist.all_to_all_single(out, x, group=self.shard.team.group)
        return out


def shard_heads(cache: StreamCache, team: Team) -> None:
    """Keep only this rank's heads of the self-attention cache (text K/V stay whole). Caches
    with buffers of their own (memory bank, stream batch, EMA sink, rebuild) are refused:
    their per-head state is not sharded yet."""
    if team.size == 1:
        return
    if type(cache) is not StreamCache:
        raise UserError(f"{type(cache).__name__} is not split by heads yet: run this model "
                        "with --split vace on 2 GPUs, or on one")
    share = cache.k.shape[2] // team.size
    keep_heads(cache, slice(team.index * share, (team.index + 1) * share))


def keep_heads(cache: StreamCache, heads: slice) -> None:
    """The self-attention buffers of these heads only (an empty slice: none, for a rank that
    never runs a main block); fresh storage, so the rest is freed."""
    for name in ("k", "v", "sink_raw"):
        full = getattr(cache, name)
        if full is not None:
            setattr(cache, name, full[:, :, heads].clone())


def unshard_heads(cache: StreamCache) -> bool:
    """Whole-head buffers again (emptied: a recache fills them); False if they were whole."""
    heads = cache.cfg.num_heads
    if cache.k.shape[2] == heads:
        return False
    for name in ("k", "v", "sink_raw"):
        part = getattr(cache, name)
        if part is not None:
            shape = (*part.shape[:2], heads, *part.shape[3:])
            setattr(cache, name, part.new_zeros(shape))
    return True


class Ulysses:
    """Sequence parallelism over one team (see module doc)."""

    def __init__(self, model: WanDiT, team: Team) -> None:
        self.model, self.team = model, team

    def run(self, tokens: torch.Tensor, c: torch.Tensor | None, ctx: ForwardContext,
            e: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        shard = Shard(ctx.e.shape[1], self.team)
        local_c = None if c is None else shard.take(c)
        y = self.model.run_blocks(shard.take(tokens), local_c, shard.context(ctx), e, scale)
        return shard.gather(y)

    def adapt(self, cache: StreamCache) -> None:
        shard_heads(cache, self.team)


class ArrivingHints(Mapping[int, Hint]):
    """Hints on their way from the VACE team: `get` waits for the one it returns only."""

    def __init__(self, layers: tuple[int, ...], buffers: list[torch.Tensor],
                 works: list[dist.Work], scale: torch.Tensor) -> None:
        self.at = {layer: j for j, layer in enumerate(layers)}
        self.buffers, self.works = buffers, works
        self.scales = scale.expand(len(layers))

    def __getitem__(self, layer: int) -> Hint:
        j = self.at[layer]
        self.works[j].wait()
        return self.buffers[j], self.scales[j]

    def __iter__(self) -> Iterator[int]:
        return iter(self.at)

    def __len__(self) -> int:
        return len(self.at)


class VaceBranch:
    """The VACE blocks on their own team beside the main blocks (see module doc)."""

    def __init__(self, model: WanDiT, main: Team, vace: Team) -> None:
        self.model, self.main, self.vace = model, main, vace

    def run(self, tokens: torch.Tensor, c: torch.Tensor | None, ctx: ForwardContext,
            e: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        f = ctx.e.shape[1]
        if self.main.index >= 0:
            shard = Shard(f, self.main)
            local, local_ctx = shard.take(tokens), shard.context(ctx)
            hints: Mapping[int, Hint] = {}
            if c is not None and scale is not None:
                hints = self._receive(local, scale)
            y = shard.gather(self.model.main_blocks(local, local_ctx, e, hints))
        else:
            if c is not None:
                self._send(tokens, c, ctx)
            y = tokens.new_empty(*tokens.shape[:2], self.model.cfg.patch_channels,
                                 dtype=self.model.head.head.weight.dtype)
        dist.broadcast(y, src=self.main.ranks[0])
        return y

    def _receive(self, local: torch.Tensor, scale: torch.Tensor) -> ArrivingHints:
        peer = self.vace.ranks[self.main.index]
        layers = self.model.cfg.vace_layers
        dtype = self.model.vace_blocks[0].after_proj.weight.dtype
        buffers = [local.new_empty(local.shape, dtype=dtype) for _ in layers]
        works = [dist.irecv(buf, src=peer) for buf in buffers]
        return ArrivingHints(layers, buffers, works, scale)

    def _send(self, tokens: torch.Tensor, c: torch.Tensor, ctx: ForwardContext) -> None:
        shard = Shard(ctx.e.shape[1], self.vace)
        peer = self.main.ranks[self.vace.index]
        works = [dist.isend(hint.contiguous(), dst=peer) for hint in
                 self.model.vace_hints(shard.take(tokens), shard.take(c), shard.context(ctx))]
        for work in works:
            work.wait()

    def adapt(self, cache: StreamCache) -> None:
        """The main team shards the cache by heads; the VACE team (which attends within the
        chunk only) keeps none of it where the cache has no state of its own."""
        if self.main.index >= 0:
            shard_heads(cache, self.main)
        elif type(cache) is StreamCache:
            keep_heads(cache, slice(0, 0))


Split = Ulysses | VaceBranch


def make_split(name: str, model: WanDiT, world: int) -> Split:
    """This rank's part of split `name` over `world` ranks; collective (makes the teams)."""
    ranks = tuple(range(world))
    if name == "ulysses":
        check_team(model, world)
        return Ulysses(model, team(ranks))
    if name == "vace":
        if world % 2:
            raise UserError(f"the vace split runs on an even number of ranks, not {world}")
        if not model.cfg.has_vace:
            raise UserError(f"{model.cfg.name} has no VACE blocks; choose --split ulysses")
        check_team(model, world // 2)
        main, vace = team(ranks[:world // 2]), team(ranks[world // 2:])
        return VaceBranch(model, main, vace)
    raise UserError(f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")


def check_team(model: WanDiT, size: int) -> None:
    if model.cfg.num_heads % size:
        raise UserError(f"{model.cfg.num_heads} heads do not split over {size} ranks")


def check_grid(tokens_per_frame: int, split: Split) -> None:
    """A frame's tokens must split evenly over a team (clear error at stream start)."""
    size = (split.team if isinstance(split, Ulysses) else split.main).size
    if tokens_per_frame % size:
        raise UserError(f"{tokens_per_frame} tokens per frame do not split over {size} ranks; "
                        "choose a size whose latent grid divides")
