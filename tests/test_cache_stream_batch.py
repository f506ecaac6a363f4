"""StreamDiffusionV2's stream batch against a slow reference written from the authors' facts:
every row run on its own, with plain lists for its cached K/V and its eviction order per
layer, the adaptive sink's cosine test spelled out, and the RoPE positions (the refresh at
50 → 5 included) chosen explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
import torch
import torch.nn.functional as F
from wan_support import one_thread, randomise, rel_err  # noqa: F401

from livevace.errors import UserError
from livevace.models.wan import zoo
from livevace.models.wan.config import TINY, TINY_VACE, WAN21_VACE_14B
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.sampler import FlowMatchSchedule
from livevace.models.wan.stream_batch import (STREAMDIFFUSIONV2, STREAMDIFFUSIONV2_14B,
                                              StreamBatchSampler, stream)

H = W_LAT = 4
WINDOW, SINK, THRESHOLD, REFRESH_AT = 6, 3, 0.2, 50


@dataclass
class RowLayer:
    """One row's cache in one attention layer, as the authors keep it."""

    slots: list[tuple[torch.Tensor, torch.Tensor] | None] = field(
        default_factory=lambda: [None] * WINDOW)
    order: list[int] = field(default_factory=list)
    """The eviction order: slots, front first."""
    filled: int = 0
    end: int = 0


class Reference:
    """The stream batch, one row at a time; `events` logs (call, layer, row, slot, full) of
    every adaptive-sink move."""

    def __init__(self, model: WanDiT, sampler: StreamBatchSampler, steps: tuple[int, ...]) -> None:
        self.model, self.sampler, self.steps = model, sampler, steps
        self.schedule = FlowMatchSchedule(8.0)
        self.rows = len(steps)
        self.cache = [[RowLayer() for _ in range(model.cfg.num_layers)]
                      for _ in range(self.rows)]
        self.events: list[tuple[int, int, int, int, bool]] = []
        self.positions_seen: list[list[int]] = []
        self.calls = 0

    def sigma(self, t: float) -> float:
        return self.schedule.nearest_sigma(t)

    def draw(self, frame: int, step: int, shape: tuple[int, ...]) -> torch.Tensor:
        return self.sampler._draw((self.sampler.seed, frame, step, shape))

    def forward(self, row: int, x: torch.Tensor, t: float, position: int, text: list,
                vace: torch.Tensor | None, check: bool) -> torch.Tensor:
        rope = self.model.rope.cos_sin([position], H // 2, W_LAT // 2)

        def self_kv(layer: int, k_raw: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
            st = self.cache[row][layer]
            end = position + 1
            if check:
                sims = []
                for j in range(SINK):
                    ck, cv = st.slots[j] or (torch.zeros_like(k), torch.zeros_like(v))
                    sk = F.cosine_similarity(ck.mean(2).flatten(), k.mean(2).flatten(), dim=0)
                    sv = F.cosine_similarity(cv.mean(2).flatten(), v.mean(2).flatten(), dim=0)
                    sims.append(float((sk + sv) / 2))
                if min(sims) < THRESHOLD:
                    worst = sims.index(min(sims))
                    st.order.insert(0, worst)
                    self.events.append((self.calls, layer, row, worst,
                                        end > WINDOW or st.filled >= WINDOW))
            if end > WINDOW or st.filled >= WINDOW:
                st.filled = WINDOW
                slot = st.order.pop(0)
                if slot >= SINK:
                    st.order.append(slot)
            else:
                st.filled += end - st.end
                slot = st.filled - 1
                if SINK <= end < WINDOW and (not st.order or st.order[-1] != end):
                    st.order.append(end)
            st.end = end
            st.slots[slot] = (k.clone(), v.clone())
            kept = st.slots[:st.filled]
            return torch.cat([s[0] for s in kept], 2), torch.cat([s[1] for s in kept], 2), None

        tt = torch.full((1, 1), t)
        return self.model._run(x, tt, text, rope, self_kv, vace, None)

    @torch.no_grad()
    def run(self, inits: list[torch.Tensor], firsts: list[float], texts: list[torch.Tensor],
            contexts: list[torch.Tensor | None]) -> list[torch.Tensor]:
        n, outs = self.rows, []
        text = self.model.text_kv(texts[0])
        ts = [firsts[0], *self.steps[1:]]
        x = inits[0]
        for i, t in enumerate(ts):
            x0s = [x - self.sigma(t) * self.forward(r, x, t, 0, text, contexts[0], False)
                   for r in range(n)]
            assert all(torch.equal(a, x0s[0]) for a in x0s)
            x0 = x0s[0]
            if i + 1 < len(ts):
                s = self.sigma(ts[i + 1])
                x = (1 - s) * x0 + s * self.draw(0, i + 1, tuple(x0.shape))
        finished = x0
        outs.append(finished)
        xs = [torch.zeros_like(x0) for _ in range(n)]
        ctxs = [None if c is None else torch.zeros_like(c) for c in contexts[:1]] * n
        positions, next_position = [1] * n, 1
        for frame in range(1, len(inits)):
            self.calls += 1
            text = self.model.text_kv(texts[frame])
            position = next_position if next_position < REFRESH_AT else WINDOW - 1
            positions = [position] + positions[:-1]
            next_position = position + 1
            self.positions_seen.append(positions)
            xs = [inits[frame]] + xs[:-1]
            ctx = contexts[frame]
            ctxs = [ctx] + ctxs[:-1]
            ts = [firsts[frame], *self.steps[1:]]
            x0s = []
            for r in range(n):
                vace = None if ctx is None else (ctxs[r] if ctxs[r] is not None
                                                 else torch.zeros_like(ctx))
                flow = self.forward(r, xs[r], ts[r], positions[r], text, vace, True)
                x0s.append(xs[r] - self.sigma(ts[r]) * flow)
            eps = self.draw(frame, 1, (n - 1, *x0s[0].shape[1:])) if n > 1 else None
            for r in range(n - 1):
                s = self.sigma(self.steps[r + 1])
                xs[r] = (1 - s) * x0s[r] + s * eps[r:r + 1]
            if self.calls >= n:
                finished = x0s[-1]
            outs.append(finished)
        return outs

    def order(self, layer: int, row: int) -> list[int]:
        return self.cache[row][layer].order


def device_order(sampler: StreamBatchSampler, layer: int, row: int) -> list[int]:
    """Our device eviction order as the reference's list: queued sink slots (newest first),
    then the rolling slots from the ring pointer on."""
    o = sampler.cache.order
    depth = int(o.depth[0, layer, row])
    queued = o.stack[0, layer, row, :depth].flip(0).tolist()
    ring = int(o.ring[0, layer, row])
    rolling = [SINK + (ring + i) % (WINDOW - SINK) for i in range(WINDOW - SINK)]
    return queued + rolling


def frames(count: int, odd: dict[int, float], seed: int = 0) -> list[torch.Tensor]:
    """Inputs near a constant latent; frames in `odd` near another constant (their mean K/V
    turn away from the sink's)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.full((1, 16, 1, H, W_LAT), odd.get(i, 3.0))
            + 0.1 * torch.randn(1, 16, 1, H, W_LAT, generator=g) for i in range(count)]


def test_stream_batch_matches_the_reference_past_eviction_sink_moves_and_refresh(one_thread):  # noqa: F811
    model = randomise(WanDiT(TINY), seed=3)
    steps = (700, 500, 400)
    sampler = stream(model, replace(STREAMDIFFUSIONV2, config=TINY),
                     STREAMDIFFUSIONV2.layout(H, W_LAT), steps, seed=4)
    text = torch.randn(1, TINY.text_len, TINY.text_dim, generator=torch.Generator().manual_seed(1))
    sampler.set_text(text)
    count = 56
    inits = frames(count, {14: -3.0, 30: -3.0})
    firsts = [600.0 if i % 7 else 650.0 for i in range(count)]
    ours = [sampler.generate_chunk(init=x, timesteps=[t, 500.0]) for x, t in zip(inits, firsts)]
    ref = Reference(model, sampler, steps)
    theirs = ref.run(inits, firsts, [text] * count, [None] * count)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == (1, 16, 1, H, W_LAT)
        assert rel_err(a, b) < 1e-5, i
    # the first frame comes out at once, again while the rows fill, then B - 1 calls late
    assert all(torch.equal(ours[i], ours[0]) for i in range(len(steps)))
    assert not torch.equal(ours[len(steps)], ours[0])
    # an empty sink slot moved during the fill, and a dissimilar frame moved one when full
    assert any(not full for *_, full in ref.events)
    assert any(full for *_, full in ref.events)
    # the refresh: positions 48, 49, then 5, 6, … per row as frames move down
    assert [p[0] for p in ref.positions_seen[47:52]] == [48, 49, 5, 6, 7]
    assert sampler.cache.positions == ref.positions_seen[-1]
    for layer in range(TINY.num_layers):
        for row in range(len(steps)):
            assert device_order(sampler, layer, row) == ref.order(layer, row), (layer, row)


def test_zoo_stream_with_vace_and_a_prompt_change(one_thread):  # noqa: F811
    model = randomise(WanDiT(TINY_VACE), seed=7)
    sampler = zoo.open_stream(zoo.recipe("streamdiffusionv2"), model, H, W_LAT, 1, None, seed=2)
    assert isinstance(sampler, StreamBatchSampler)
    assert sampler.steps == (700, 500) and sampler.cache.rows == 2
    g = torch.Generator().manual_seed(5)
    texts = [torch.randn(1, TINY.text_len, TINY.text_dim, generator=g) for _ in range(2)]
    count = 14
    switch = 8
    prompts = [texts[0]] * switch + [texts[1]] * (count - switch)
    contexts = [torch.randn(1, TINY_VACE.vace_in_channels, 1, H, W_LAT, generator=g)
                for _ in range(count)]
    inits = [sampler.noise(i, 0, (1, 16, 1, H, W_LAT)) for i in range(count)]
    ours = []
    for i in range(count):
        if i in (0, switch):
            sampler.set_text(prompts[i])
        ours.append(sampler.generate_chunk(vace=contexts[i]))
    ref = Reference(model, sampler, (700, 500))
    theirs = ref.run(inits, [700.0] * count, prompts, contexts)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert rel_err(a, b) < 1e-5, i
    sampler.reset()  # a new stream starts with a prepared frame again
    again = sampler.generate_chunk(vace=contexts[0])
    assert sampler.cache.next_frame == 1 and again.shape == (1, 16, 1, H, W_LAT)


def test_a_forward_run_twice_before_commit_is_the_same(one_thread):  # noqa: F811
    """What a CUDA graph's warm-up runs rely on: the forward reads the order and writes its
    next state apart, so running it again gives the same flow, slots and next state."""
    model = randomise(WanDiT(TINY), seed=3)
    sampler = stream(model, replace(STREAMDIFFUSIONV2, config=TINY),
                     STREAMDIFFUSIONV2.layout(H, W_LAT), (700, 500), seed=4)
    sampler.set_text(torch.randn(1, TINY.text_len, TINY.text_dim))
    inits = frames(12, {10: -3.0})
    for x in inits[:-1]:
        sampler.generate_chunk(init=x)
    cache = sampler.cache
    cache.enter()
    x = torch.cat([inits[-1], inits[-2]])
    t = torch.tensor([[700.0], [500.0]])
    runs = []
    for _ in range(2):
        flow = model(x, t, cache)
        runs.append((flow, cache.k.clone(), *(b[1].clone() for b in cache.order.buffers())))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_recipes_and_fixed_row_count():
    assert STREAMDIFFUSIONV2.steps == (700, 500) and STREAMDIFFUSIONV2.chunk == 1
    assert (STREAMDIFFUSIONV2.window, STREAMDIFFUSIONV2.sink, STREAMDIFFUSIONV2.shift) == (6, 3, 8.0)
    assert not STREAMDIFFUSIONV2.warp and not STREAMDIFFUSIONV2.refine
    assert STREAMDIFFUSIONV2.checkpoints == ("sdv2_1_3b",)
    assert STREAMDIFFUSIONV2_14B.config == WAN21_VACE_14B
    assert STREAMDIFFUSIONV2_14B.checkpoints == ("sdv2_14b",)
    assert STREAMDIFFUSIONV2_14B.vace_checkpoints == ("vace_module_14b",)
    assert zoo.recipe("streamdiffusionv2-14b") is STREAMDIFFUSIONV2_14B
    model = WanDiT(TINY)
    sampler = stream(model, STREAMDIFFUSIONV2, STREAMDIFFUSIONV2.layout(H, W_LAT), (700, 500), 0)
    sampler.set_steps((600, 400))
    assert sampler.timesteps == [600.0, 400.0]
    with pytest.raises(UserError, match="one batch row per step"):
        sampler.set_steps((700, 500, 400))
    assert sampler.steady_after() == WINDOW + 1


def test_a_chunk_of_three_frames_is_three_calls(one_thread):  # noqa: F811
    """The pipeline's 3-frame chunks: each frame one stream-batch call, as the authors' server
    loops over the latent frames it receives."""
    model = randomise(WanDiT(TINY), seed=3)
    recipe = replace(STREAMDIFFUSIONV2, config=TINY)
    text = torch.randn(1, TINY.text_len, TINY.text_dim)
    inits = torch.cat(frames(12, {}), dim=2)
    runs = []
    for chunk in (1, 3):
        sampler = stream(model, recipe, recipe.layout(H, W_LAT, chunk), (700, 500), seed=4)
        sampler.set_text(text)
        runs.append(torch.cat([sampler.generate_chunk(init=inits[:, :, i:i + chunk])
                               for i in range(0, 12, chunk)], dim=2))
    assert runs[0].shape == (1, 16, 12, H, W_LAT)
    assert torch.equal(runs[0], runs[1])


@pytest.mark.gpu
@pytest.mark.parametrize("warm_up", [False, True])
def test_cuda_graph_replay_equals_eager(warm_up: bool):
    """The steady state replays one CUDA graph whose forward moves the eviction order on the
    device; captured mid-stream (its warm-up runs repeat a forward before `commit`) or in
    `warm_up`, the stream is eager's."""
    from livevace.models.wan.compiled import Acceleration

    recipe = replace(STREAMDIFFUSIONV2, config=TINY_VACE)
    g = torch.Generator().manual_seed(6)
    text = torch.randn(1, TINY.text_len, TINY.text_dim, generator=g).cuda()
    control = torch.randn(1, 96, 1, H, W_LAT, generator=g).cuda()
    inits = [x.cuda() for x in frames(24, {14: -3.0})]
    runs, orders = [], []
    for graphs in (False, True):
        model = randomise(WanDiT(TINY_VACE), seed=7).cuda()
        model.accelerate(Acceleration(cuda_graph=graphs))
        sampler = stream(model, recipe, recipe.layout(H, W_LAT), (700, 500, 400), seed=4)
        sampler.set_text(text)
        if warm_up:
            sampler.warm_up(vace=True)
        runs.append([sampler.generate_chunk(vace=control, init=x) for x in inits])
        orders.append([b[0].clone() for b in sampler.cache.order.buffers()])
        if graphs:
            assert model.graphs is not None and model.graphs.captures == 1
    for a, b in zip(*runs):
        assert rel_err(a, b) < 1e-5
    for a, b in zip(*orders):
        assert torch.equal(a, b)


def test_a_restless_picture_moves_the_sink_again_and_again(one_thread):  # noqa: F811
    """Dissimilar frames every few calls: sink slots queue up and are taken in the reference's
    order, and the stack never runs past its capacity."""
    model = randomise(WanDiT(TINY), seed=3)
    steps = (700, 500)
    sampler = stream(model, replace(STREAMDIFFUSIONV2, config=TINY),
                     STREAMDIFFUSIONV2.layout(H, W_LAT), steps, seed=8)
    text = torch.randn(1, TINY.text_len, TINY.text_dim, generator=torch.Generator().manual_seed(1))
    sampler.set_text(text)
    count = 30
    inits = frames(count, {i: -3.0 for i in range(count) if i % 3 == 2}, seed=2)
    ours = [sampler.generate_chunk(init=x) for x in inits]
    ref = Reference(model, sampler, steps)
    theirs = ref.run(inits, [700.0] * count, [text] * count, [None] * count)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert rel_err(a, b) < 1e-5, i
    assert sum(full for *_, full in ref.events) >= 10
    depth = sampler.cache.order.depth[0]
    assert int(depth.max()) <= sampler.cache.order.capacity
    for layer in range(TINY.num_layers):
        for row in range(len(steps)):
            assert device_order(sampler, layer, row) == ref.order(layer, row), (layer, row)
