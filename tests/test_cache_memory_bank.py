"""MemFlow's memory bank against a slow reference written from the authors' procedure.

The reference (`ExplicitBank`) keeps every frame's un-rotated key and value per layer in plain
Python lists, builds each pass's attention keys by concatenating [sink | bank | window | chunk]
rotated at explicitly computed positions, writes only in the t = 0 pass, and chooses the bank by
scoring every frame with the full text × frame score matrix and sorting. It runs the same tiny
random network (the blocks are not under test: the cache policy is) through
`WanDiT.cached_forward`, which asks it for the keys to attend.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from wan_support import one_thread, randomise, rel_err  # noqa: F401

from livevace.models.wan.config import TINY_VACE
from livevace.models.wan.dit import WanDiT
from livevace.models.wan import rope
from livevace.models.wan.memory_bank import MEMFLOW, MemoryBankCache, MemoryBankSampler
from livevace.models.wan.rope import Rope, apply_rope
from livevace.models.wan.zoo import RECIPES, open_stream
from livevace.pipelines.vace.references import write_sink

H, W = 4, 4
SINK, WINDOW, BANK, EVERY = 3, 12, 3, 9
"""The authors' numbers: 3-frame sink, 12-frame window with it, 3 bank frames, a candidate
every 9 frames."""


class ExplicitBank:
    """The authors' cache and bank as lists (a `cached_forward` cache: text K/V, RoPE tables of
    the chunk, and a `writer` handing out the keys to attend)."""

    def __init__(self, model: WanDiT, chunk: int, rope_span: int) -> None:
        self.model, self.chunk, self.span = model, chunk, rope_span
        self.rope = Rope(model.cfg)
        self.grid = (H // 2, W // 2)
        self.tokens = self.grid[0] * self.grid[1]
        layers = model.cfg.num_layers
        self.frames: list[dict[int, tuple[torch.Tensor, torch.Tensor]]] = [{} for _ in
                                                                           range(layers)]
        self.bank: list[list[tuple[int, torch.Tensor, torch.Tensor]]] = [[] for _ in
                                                                         range(layers)]
        self.staged: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.stagings = 0
        self.last_scores: list[dict[int, float]] = []
        """Per layer: the scores of the bank frames at the latest compression."""
        self.latents: dict[int, torch.Tensor] = {}
        self.contexts: dict[int, torch.Tensor] = {}
        self.next = 0

    # ------------------------------------------------------------------ what cached_forward asks
    def set_text(self, context: torch.Tensor) -> None:
        kv = self.model.text_kv(context)
        self.text_k, self.text_v = [k for k, _ in kv], [v for _, v in kv]

    @property
    def rope_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rope.cos_sin([self.position(f) for f in self.chunk_frames], *self.grid)

    def writer(self, write: bool):
        def self_kv(layer, k_raw, k, v):
            keys, values = self.keys_of(layer)
            if write:
                self.store(layer, k_raw, v)
            return torch.cat([*keys, k], dim=2), torch.cat([*values, v], dim=2), None
        return self_kv

    # ------------------------------------------------------------------------- the facts
    @property
    def shift(self) -> int:
        return max(0, self.start + self.chunk - self.span)

    def position(self, frame: int) -> int:
        return frame + self.shift if frame < SINK else frame

    def rotated(self, raw: torch.Tensor, position: int) -> torch.Tensor:
        return apply_rope(raw, *self.rope.cos_sin([position], *self.grid))

    def keys_of(self, layer: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """[sink | bank | window] before the chunk: rotated keys and values, one per frame."""
        end = self.start + self.chunk
        stored = self.frames[layer]
        sink = [(f, stored[f]) for f in range(SINK) if f in stored and f < self.start]
        window = [(f, stored[f]) for f in sorted(stored)
                  if SINK <= f < self.start and f >= end - (WINDOW - SINK)]
        placed = ([(self.position(f), kv) for f, kv in sink]
                  + [(max(f, self.shift), (raw, v)) for f, raw, v in self.bank[layer]]
                  + [(f, kv) for f, kv in window])
        return ([self.rotated(raw, p) for p, (raw, _) in placed], [v for _, (_, v) in placed])

    def store(self, layer: int, k_raw: torch.Tensor, v: torch.Tensor) -> None:
        """The t = 0 pass: the chunk's frames into the cache; a staging chunk's first frame to
        the candidate."""
        t = self.tokens
        for j, f in enumerate(self.chunk_frames):
            self.frames[layer][f] = (k_raw[:, :, j * t:(j + 1) * t], v[:, :, j * t:(j + 1) * t])
        if self.stages:
            self.staged[layer] = (self.start, k_raw[:, :, :t], v[:, :, :t])

    def begin(self, start: int, new: bool) -> None:
        if new:
            self.commit()
        self.start = start
        self.chunk_frames = list(range(start, start + self.chunk))
        self.stages = new and start % EVERY == 0
        if self.stages:
            self.stagings += 1
            self.staged = [None] * len(self.frames)  # type: ignore[list-item]

    def commit(self) -> None:
        n = self.stagings
        if n == 0:
            return
        for layer, bank in enumerate(self.bank):
            if n <= BANK:
                del bank[n - 1:]
                bank.append(self.staged[layer])
            else:
                self.bank[layer] = self.compress(layer)

    def score(self, layer: int, frame: int, raw: torch.Tensor) -> float:
        """Mean over text tokens, heads and frame tokens of (text K · frame K)/√d."""
        key = self.rotated(raw, frame)
        text = self.text_k[layer]
        return float((text @ key.transpose(-1, -2) / text.shape[-1] ** 0.5).mean())

    def compress(self, layer: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        scored = [(self.score(layer, f, raw), (f, raw, v)) for f, raw, v in self.bank[layer]]
        if len(self.last_scores) <= layer:
            self.last_scores.append({})
        self.last_scores[layer] = {f: s for s, (f, _, _) in scored}
        best = sorted(scored, key=lambda e: -e[0])[:BANK - 1]
        return [entry for _, entry in best] + [self.staged[layer]]

    # ------------------------------------------------------------------------- the sampler
    def forward(self, x, t, vace, write):
        tt = torch.full((1, self.chunk), float(t))
        scale = None if vace is None else torch.ones(len(self.model.cfg.vace_layers))
        return self.model.cached_forward(x, tt, self, vace=vace, hint_scale=scale,
                                         write_cache=write)

    @torch.no_grad()
    def generate(self, sampler: MemoryBankSampler, vace: torch.Tensor) -> torch.Tensor:
        """The chunk procedure with the sampler's schedule and noise (not under test)."""
        start = self.next
        shape = (1, self.model.cfg.in_channels, self.chunk, H, W)
        x = sampler.noise(start, 0, shape)
        self.begin(start, new=True)
        ts = sampler.timesteps
        for i, t in enumerate(ts):
            x0 = x - sampler.schedule.sigma(t) * self.forward(x, t, vace, write=False)
            if i + 1 < len(ts):
                s = sampler.schedule.sigma(ts[i + 1])
                x = (1 - s) * x0 + s * sampler.noise(start, i + 1, shape)
        self.forward(x0, 0.0, vace, write=True)
        for j, f in enumerate(self.chunk_frames):
            self.latents[f], self.contexts[f] = x0[:, :, j:j + 1], vace[:, :, j:j + 1]
        self.next = start + self.chunk
        return x0

    @torch.no_grad()
    def recache(self) -> None:
        """A prompt switch: commit the candidate, keep the sink and bank, re-run the window's
        frames at t = 0 chunk by chunk, each seeing the sink, the bank and those before it."""
        self.commit()
        kept = range(max(SINK, self.next - (WINDOW - SINK)), self.next)
        for stored in self.frames:
            for f in [f for f in stored if f >= SINK]:
                del stored[f]
        for start in range(kept[0], self.next, self.chunk):
            self.begin(start, new=False)
            self.forward(torch.cat([self.latents[f] for f in self.chunk_frames], dim=2), 0.0,
                         torch.cat([self.contexts[f] for f in self.chunk_frames], dim=2),
                         write=True)


def bank_frames(sampler: MemoryBankSampler) -> list[list[int]]:
    cache = sampler.cache
    return [cache.bank_frame[layer, 0, :cache.bank_visible].tolist()
            for layer in range(cache.cfg.num_layers)]


@pytest.mark.parametrize("chunk,rope_span,steps", [(3, 1024, None), (3, 18, None),
                                                    (1, 24, (1000, 500))])
def test_stream_with_prompt_switch_equals_explicit_bank(one_thread, chunk, rope_span,  # noqa: F811
                                                        steps):
    """45 frames with VACE: the bank grows (candidates of frames 0, 9, 18), compresses from
    the chunk after frame 27 on, a prompt cut at frame 33 re-runs frames 24-32 (replays that
    start at a multiple of 9 stage nothing); a short rope_span slides the sink and bank along."""
    model = randomise(WanDiT(TINY_VACE), seed=3).requires_grad_(False)
    recipe = replace(MEMFLOW, config=TINY_VACE, rope_span=rope_span)
    ours = open_stream(recipe, model, H, W, chunk, steps, seed=4)
    assert isinstance(ours, MemoryBankSampler)
    ref = ExplicitBank(model, chunk, rope_span)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randn(1, 10, TINY_VACE.text_dim, generator=g) for _ in range(2)]
    for sampler in (ours, ref):
        sampler.set_text(prompts[0])
    first_compression = 27 + chunk
    for start in range(0, 45, chunk):
        if start == 33:
            ours.set_text(prompts[1])
            ref.set_text(prompts[1])
            assert ours.recache() == WINDOW - SINK
            ref.recache()
        before = [[f for f, _, _ in bank] for bank in ref.bank]
        vace = torch.randn(1, TINY_VACE.vace_in_channels, chunk, H, W, generator=g)
        got, want = ours.generate_chunk(vace=vace), ref.generate(ours, vace)
        assert rel_err(got, want) < 1e-5, f"chunk at frame {start}"
        assert bank_frames(ours) == [[f for f, _, _ in bank] for bank in ref.bank], start
        if start == first_compression:  # [0, 9, 18] + the candidate of frame 27
            for layer, scores in enumerate(ref.last_scores):
                assert before[layer] == [0, 9, 18]
                dropped = set(before[layer]) - set(bank_frames(ours)[layer])
                assert len(dropped) == 1 and scores[dropped.pop()] == min(scores.values())
                assert bank_frames(ours)[layer][-1] == 27
    assert ours.cache.visible_prefix == ours.cache.layout.window and ours.cache.mask() is None
    assert ours.cache.stagings == ref.stagings == 5


def test_the_bank_grows_every_third_chunk_and_then_needs_no_mask(one_thread,  # noqa: F811
                                                                  monkeypatch):
    model = randomise(WanDiT(TINY_VACE), seed=1)
    sampler = open_stream(replace(MEMFLOW, config=TINY_VACE), model, H, W, None, None, seed=0)
    sampler.set_text(torch.randn(1, 4, TINY_VACE.text_dim))
    seen, prefixes = [], []
    for _ in range(11):
        cache = sampler.cache
        sampler.generate_chunk()
        seen.append(bank_frames(sampler)[0] if cache.committed else [])
        prefixes.append(cache.visible_prefix)
    # what each chunk saw: nothing, then frame 0 (staged by chunk 0), 9 (chunk 3), 18 (chunk 6)
    assert seen[:10] == [[], [0], [0], [0], [0, 9], [0, 9], [0, 9], [0, 9, 18], [0, 9, 18],
                         [0, 9, 18]]
    assert seen[10][-1] == 27 and len(seen[10]) == BANK
    assert sampler.cache.stagings == 4
    # only chunks 1-2 (ring filling, bank not empty) need a mask; the rest attend to a prefix
    assert prefixes == [3, None, None, 13, 14, 14, 14, 15, 15, 15, 15]
    # warming up reaches the first compression (chunk 10: the candidate of frame 27 meets a
    # full bank), so its first run is not in the show
    assert sampler.steady_after() == 10
    sampler.reset()
    compressions = []
    compress = type(sampler.cache)._compress
    monkeypatch.setattr(type(sampler.cache), "_compress",
                        lambda cache: compressions.append(cache.stagings) or compress(cache))
    sampler.warm_up()
    assert compressions == [4]
    assert sampler.cache.stagings == 0 and sampler.cache.chunk_start is None
    assert replace(MEMFLOW, chunk=1).layout(H, W).chunk == 1


def test_references_written_mid_stream_do_not_replace_the_staged_candidate(
        one_thread):  # noqa: F811
    """Frame 0, staged by the first chunk and committed at the next, stays that chunk's frame
    0 when reference images are written into the sink in between (rewriting its slots)."""
    model = randomise(WanDiT(TINY_VACE), seed=2).requires_grad_(False)
    sampler = open_stream(replace(MEMFLOW, config=TINY_VACE), model, H, W, None, None, seed=1)
    sampler.set_text(torch.randn(1, 4, TINY_VACE.text_dim))
    cache, t = sampler.cache, sampler.cache.layout.frame_tokens
    sampler.generate_chunk()
    staged = cache.v[:, :, :, :t].clone(), cache.sink_raw[:, :, :, :t].clone()
    write_sink(sampler, torch.randn(1, TINY_VACE.in_channels, SINK, H, W), None)
    assert not torch.equal(cache.v[:, :, :, :t], staged[0])  # the slots are the references'
    sampler.generate_chunk()  # its start commits frame 0
    assert cache.committed == 1
    banked = cache.v[:, :, :, cache.bank_tokens][:, :, :, :t], cache.bank_raw[:, :, :, :t]
    for kept, want in zip(banked, staged, strict=True):
        assert torch.equal(kept, want)


def test_memflow_is_a_recipe_of_the_zoo():
    assert RECIPES["memflow"] is MEMFLOW
    assert MEMFLOW.steps == RECIPES["longlive"].steps and MEMFLOW.shift == 5.0
    assert MEMFLOW.checkpoints == ("memflow_base", "memflow_lora")
    assert MEMFLOW.prompt_switch == "recache" and MEMFLOW.window == WINDOW + BANK
    layout = MEMFLOW.layout(60, 104)  # 832×480, any size works
    assert layout.policy.window == WINDOW and layout.sink == SINK


@pytest.mark.gpu
def test_cuda_graphs_replay_the_bank_stream_as_eager_steps_it():
    """Warm-up captures every state a fresh stream meets with a maskless window (the bank's
    growth included), the live stream then only replays; compressions run between replays."""
    from livevace.models.wan.compiled import Acceleration

    g = torch.Generator().manual_seed(6)
    text = torch.randn(1, 10, TINY_VACE.text_dim, generator=g).cuda()
    contexts = torch.randn(13, 1, TINY_VACE.vace_in_channels, 3, H, W, generator=g).cuda()
    runs = []
    for graphs in (False, True):
        model = randomise(WanDiT(TINY_VACE), seed=3).for_inference(torch.float32).cuda()
        model.accelerate(Acceleration(cuda_graph=graphs))
        sampler = open_stream(replace(MEMFLOW, config=TINY_VACE), model, H, W, None, None, 4)
        sampler.set_text(text)
        if graphs:
            sampler.warm_up(vace=True)
            captured = model.graphs.captures
        runs.append(([sampler.generate_chunk(vace=ctx) for ctx in contexts], bank_frames(sampler)))
    assert model.graphs.captures == captured == 4  # window prefixes 3, 13, 14, 15
    assert runs[0][1] == runs[1][1]
    for i, (a, b) in enumerate(zip(runs[0][0], runs[1][0])):
        assert rel_err(a, b) < 1e-4, f"chunk {i}"


class _Ops(TorchDispatchMode):
    """Counts the tensor operations dispatched inside it that are no views (each one a launch
    on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += not func.is_view and func is not torch.ops.aten._unsafe_view.default
        return func(*args, **(kwargs or {}))


def test_the_banks_upkeep_works_on_every_layer_at_once():
    """A compression and a re-rotation of the bank run eagerly between graph replays, on the
    host's critical path: their operation count must not grow with the layer count (layer by
    layer it was about a hundred per layer, some 3 000 for MemFlow's 30)."""
    counts = []
    for layers in (2, 8):
        cfg = replace(TINY_VACE, num_layers=layers, vace_layers=())
        cache = MemoryBankCache(cfg, MEMFLOW.layout(H, W), 1, "cpu", torch.float32)
        cache.stagings, cache.committed, cache.staged_frame = BANK + 1, BANK, 27
        with _Ops() as compress:
            cache.commit_bank()
        with _Ops() as rotate:
            cache._place_sink(2)
        counts.append((compress.count, rotate.count))
    assert counts[0] == counts[1]
    assert max(counts[1]) < 50


def test_rotate_layers_equals_apply_rope_layer_by_layer(monkeypatch):
    """Groups of layers per pass, whatever the group size; one table for all layers or one per
    layer."""
    g = torch.Generator().manual_seed(0)
    src = torch.randn(5, 1, 2, 6, 8, generator=g)
    shared = [torch.randn(6, 4, generator=g) for _ in range(2)]
    own = [torch.randn(5, 1, 1, 6, 4, generator=g) for _ in range(2)]
    for tables, pick in ((shared, lambda t, layer: t), (own, lambda t, layer: t[layer])):
        want = torch.stack([apply_rope(src[layer], *(pick(t, layer) for t in tables))
                            for layer in range(5)])
        for budget in (1, 2 * src[0].numel() * 4, 2**30):  # a layer, two layers, all at once
            monkeypatch.setattr(rope, "ROTATE_BYTES", budget)
            dst = torch.zeros_like(src)
            rope.rotate_layers(dst, src, *tables)
            assert torch.equal(dst, want)
