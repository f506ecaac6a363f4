"""Rank 0's stream: a sampler like any other to the pipeline, run on every rank at once.

Every rank holds the same sampler (same model, schedule, seed, cache policy); rank 0's
`RankedSampler` sends each call that changes it (`CALLS`, the cache's `CACHE_CALLS`,
attribute writes such as `seed`) to the other ranks and then makes it itself. The samplers
thus take the same steps in the same order, and the forwards meet in their collectives,
where the split (`splits`) shares the work; every rank ends each forward with the whole
output, so the host-side state (noise, history for `recache`, cache bookkeeping) stays equal
without being sent. Reads (`timesteps`, `cache.layout`, …) are answered by rank 0 alone.
Changes to the weights go the same way: `RankedLoras` sends each live LoRA merge (the file's
path, the scales) so that every rank reads the same file and merges it in the same order.

A lost rank (a process that died, an error it reported, a collective that timed out) never
stops the stream: rank 0 logs which rank and device and the error, stops the others, takes
the model back to one process (whole-head cache rebuilt by a recache from the stream's own
history where the split had sharded it) and makes the failed call again by itself.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
from dataclasses import replace
from typing import Any, Callable, Hashable, Mapping, Sequence, TypeVar

import torch

from livevace.distributed.launch import Ranks, devices
from livevace.distributed.replica import send_model
from livevace.distributed.splits import SPLITS, Split, check_grid, make_split, unshard_heads
from livevace.errors import UserError
from livevace.models.wan import zoo
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.lora import LoraFile
from livevace.models.wan.lora_live import LiveLoras, Ready
from livevace.models.wan.rebuild import RebuildSampler
from livevace.models.wan.recipe import Recipe
from livevace.models.wan.sampler import StreamSampler

log = logging.getLogger("livevace.distributed")

CALLS = frozenset({"set_text", "set_steps", "set_strength", "reset", "recache", "warm_up",
                   "generate_chunk", "denoise", "forward_pass"})
CACHE_CALLS = frozenset({"begin_chunk", "plan_ahead", "drop", "reset"})


ModelSetT = TypeVar("ModelSetT")


def load_on_ranks(gpus: str | None, split: str | None, load: Callable[[], ModelSetT]
                  ) -> ModelSetT:
    """`livevace run --gpus`: the model set loaded on the first device (this process, rank
    0), then the other ranks started and its `streams` opened on every rank; they stop when
    the process ends. A load that fails (`--pipeline auto` passing over vace) starts none."""
    if gpus is None:
        return load()
    found = devices(gpus)
    if found[0].type == "cuda":
        torch.cuda.set_device(found[0])
    models = load()
    if len(found) > 1:
        ranks = Ranks(found, split or SPLITS[0])
        ranks.start()
        streams = RankedStreams(ranks)
        atexit.register(streams.close)
        models.streams = streams  # type: ignore[attr-defined]
    return models


class RankedStreams:
    """`zoo.open_stream` for a node on several ranks (see module doc)."""

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks
        self.sent: WanDiT | None = None
        self.split: Split | None = None

    def __call__(self, recipe: Recipe, model: WanDiT, height: int, width: int,
                 chunk: int | None, steps: Sequence[int] | None, seed: int) -> StreamSampler:
        local = zoo.open_stream(recipe, model, height, width, chunk, steps, seed)
        if not self.ranks.up:
            return local
        if isinstance(local, RebuildSampler):
            raise UserError(f"{recipe.name} re-encodes decoded frames on rank 0; it runs on "
                            "one GPU for now (drop --gpus)")
        try:
            self._share(model, local)
            steps_arg = None if steps is None else tuple(steps)
            self.ranks.channel.send(("node", "open", (recipe, height, width, chunk, steps_arg,
                                                      seed), {}))
        except UserError:
            raise
        except Exception as err:  # a rank that failed at start: this one goes on alone
            go_alone(self.ranks, model, err)
        return RankedSampler(local, self.ranks)  # type: ignore[return-value]

    def _share(self, model: WanDiT, local: StreamSampler) -> None:
        """The model on every rank (once per model) and the stream's cache split for it."""
        if self.sent is not model:
            if model.acceleration.cuda_graph:  # a graph would hold the collectives: eager steps
                log.info("%d ranks: the DiT steps without CUDA graphs", self.ranks.world)
                model.accelerate(replace(model.acceleration, cuda_graph=False))
            self.ranks.channel.send(("node", "model_arrives", (), {}))
            send_model(model, self.ranks.channel.headers)
            self.split = make_split(self.ranks.split, model, self.ranks.world)
            model.split, self.sent = self.split, model
        assert self.split is not None
        check_grid(local.cache.layout.frame_tokens, self.split)
        self.split.adapt(local.cache)

    def live_loras(self, model: WanDiT) -> LiveLoras:
        """The live LoRAs of `model`, merged on every rank (`RankedLoras`)."""
        return RankedLoras(model, self.ranks)

    def close(self) -> None:
        """Every rank stopped; the model runs in this process again (twice: no-op)."""
        if self.ranks.up:
            self.ranks.close()
        if self.sent is not None:
            self.sent.split = None


class RankedSampler:
    """Rank 0's face of the sampler all ranks run (see module doc)."""

    def __init__(self, local: StreamSampler, ranks: Ranks) -> None:
        object.__setattr__(self, "_local", local)
        object.__setattr__(self, "_ranks", ranks)
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "cache", RankedCache(self))

    def __getattr__(self, name: str) -> Any:
        if name in CALLS:
            return functools.partial(self.call, "sampler", name)
        return getattr(self._local, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.call("sampler", "__setattr__", name, value)

    @property
    def alone(self) -> bool:
        """Whether the stream runs in this process only (one rank left)."""
        return not self._ranks.up

    def call(self, target: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """`name` on every rank's sampler (or its cache); rank 0's result."""
        obj: Any = self._local if target == "sampler" else self._local.cache
        method = functools.partial(setattr, obj) if name == "__setattr__" else getattr(obj, name)
        with self._lock:
            if self.alone:
                self._whole()
                return method(*args, **kwargs)
            cache = self._local.cache
            before = (cache.chunk_start, cache.chunk_frames)
            try:
                self._ranks.channel.send((target, name, args, kwargs))
                return method(*args, **kwargs)
            except Exception as err:
                go_alone(self._ranks, self._local.model, err)
                self._undo_chunk(before)
            self._whole()
            return method(*args, **kwargs)

    def _undo_chunk(self, before: tuple[int | None, int]) -> None:
        """Forget the chunk a failed call had begun, so that the call can be made again."""
        cache = self._local.cache
        if (cache.chunk_start, cache.chunk_frames) != before and cache.chunk_start is not None:
            cache.drop(range(cache.chunk_start, cache.chunk_start + cache.chunk_frames))
            cache.chunk_start, cache.chunk_frames = before

    def _whole(self) -> None:
        """This stream's cache with every head again, once alone: rebuilt by a recache from
        its own history (any of the node's streams: the one that met the loss, or another
        session's met later)."""
        if unshard_heads(self._local.cache):
            self._local.recache(include_sink=True)


def go_alone(ranks: Ranks, model: WanDiT, err: Exception) -> None:
    """After `err` on rank 0: if other ranks were lost (see `Ranks.lost`), log them, stop the
    rest and take the model back to this process; else `err` is rank 0's own: raised."""
    lost = ranks.lost(timed_out="timed out" in str(err).lower())
    if not lost:
        raise err
    log.error("lost %s (here: %s); the stream goes on on %s alone", "; ".join(lost),
              f"{type(err).__name__}: {err}".splitlines()[0], ranks.devices[0])
    ranks.close(polite=False)
    model.split = None


class RankedCache:
    """The sampler's cache as the pipeline sees it: its changes (calls, attribute writes
    such as an EMA sink's `alpha`) go to every rank."""

    def __init__(self, sampler: RankedSampler) -> None:
        object.__setattr__(self, "_sampler", sampler)

    def __setattr__(self, name: str, value: Any) -> None:
        self._sampler.call("cache", "__setattr__", name, value)

    def __getattr__(self, name: str) -> Any:
        if name in CACHE_CALLS:
            return functools.partial(self._sampler.call, "cache", name)
        return getattr(self._sampler._local.cache, name)


class RankedLoras(LiveLoras):
    """Rank 0's live LoRAs: each `add`, `apply` and `remove` is sent to every rank before it
    is made here, so every rank's DiT holds the same merged weights at each chunk. A file
    goes as its path (the key's, `loras.Key`), which each rank reads and merges itself:
    rank 0's prepared tensors never cross."""

    def __init__(self, model: WanDiT, ranks: Ranks) -> None:
        super().__init__(model)
        self.ranks = ranks

    def add(self, key: Hashable, lora: LoraFile | Ready) -> None:
        _, path = key  # type: ignore[misc]
        self._send("lora_add", key, str(path))
        super().add(key, lora)

    def apply(self, scales: Mapping[Hashable, float]) -> int:
        self._send("lora_apply", dict(scales))
        return super().apply(scales)

    def remove(self, key: Hashable) -> None:
        self._send("lora_remove", key)  # (the `apply` it makes here is a no-op there then)
        super().remove(key)

    def _send(self, name: str, *args: Any) -> None:
        if not self.ranks.up:
            return
        try:
            self.ranks.channel.send(("node", name, args, {}))
        except Exception as err:
            go_alone(self.ranks, self.model, err)  # type: ignore[arg-type]
