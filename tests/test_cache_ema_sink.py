"""Reward Forcing's EMA sink cache against a slow reference of the authors' cache, a stream of
its recipe through the zoo, and the live `ema_sink_alpha` reaching the cache.

The reference (`AuthorsCache`) is written from the facts of the authors' code, in its terms:
per layer, a 9-frame token buffer of un-rotated keys and values, filled in order; when a
chunk does not fit, the oldest window chunk is cut out (the rest rolled down) and mixed into
the sink, α·sink + (1 − α)·evicted; attention over the explicit concatenation of the sink and
the window, keys rotated (complex, float64) at positions 0…n-1 and the queries at the last
chunk's positions.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from wan_support import one_thread, randomise, rel_err  # noqa: F401

from livevace.frames import Frame
from livevace.models.wan import zoo
from livevace.models.wan.compiled import Acceleration
from livevace.models.wan.config import TINY, TINY_VACE, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.ema_sink import REWARD_FORCING, EmaSinkCache, EmaSinkWindow
from livevace.params import REGISTRY
from livevace.pipelines.vace.settings import ChunkSettings

H, W = 4, 4
T = (H // 2) * (W // 2)
CHUNK, SINK, FRAMES = 3, 3, 9
AUTHORS_ALPHA = 0.999


def rope_angles(cfg: WanConfig, frame_positions: range) -> torch.Tensor:
    """Wan's RoPE angles [tokens, head_dim/2] in float64: channel pairs split 6/5/5 (of 16)
    over frame, row, column, frequencies θ^(-2i/d) per axis with θ = 10000."""
    c = cfg.head_dim // 2
    pairs = (c - 2 * (c // 3), c // 3, c // 3)
    freqs = [cfg.rope_theta ** -(torch.arange(n, dtype=torch.float64) * 2 / (2 * n))
             for n in pairs]
    rows = []
    for f in frame_positions:
        for y in range(H // 2):
            for x in range(W // 2):
                rows.append(torch.cat([f * freqs[0], y * freqs[1], x * freqs[2]]))
    return torch.stack(rows)


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x [B, heads, tokens, head_dim] rotated pairwise as complex numbers."""
    z = torch.view_as_complex(x.double().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2).to(
        x.dtype)


class AuthorsCache:
    """The authors' cache, duck-typed as a `StreamCache` for `WanDiT.forward` (see module doc).
    `begin(start)` sets the chunk the next forwards are for."""

    def __init__(self, cfg: WanConfig, alpha: float) -> None:
        self.cfg, self.alpha = cfg, alpha
        shape = (1, cfg.num_heads, FRAMES * T, cfg.head_dim)
        self.k = [torch.zeros(shape) for _ in range(cfg.num_layers)]
        self.v = [torch.zeros(shape) for _ in range(cfg.num_layers)]
        self.ends = [[0, 0] for _ in range(cfg.num_layers)]  # global_end, local_end (tokens)
        text = (cfg.num_layers, 1, cfg.num_heads, cfg.text_len, cfg.head_dim)
        self.text_k, self.text_v = torch.zeros(text), torch.zeros(text)
        self.text_ready = False
        self.chunk_frames = CHUNK
        self.start = 0

    def begin(self, start_frame: int) -> None:
        self.start = start_frame * T

    def _indices(self, layer: int) -> tuple[int, int]:
        """(tokens evicted, local end after the write) of this layer's next forward."""
        global_end, local_end = self.ends[layer]
        end, new, size = self.start + CHUNK * T, CHUNK * T, FRAMES * T
        if end > global_end and new + local_end > size:
            evicted = new + local_end - size
            return evicted, local_end + end - global_end - evicted
        return 0, local_end + end - global_end

    def _window_start(self, local_end: int) -> int:
        return max(SINK * T, local_end - FRAMES * T + SINK * T)

    @property
    def rope_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        _, local_end = self._indices(0)
        frames = SINK + (local_end - self._window_start(local_end)) // T
        angles = rope_angles(self.cfg, range(frames - CHUNK, frames)).float()
        return angles.cos(), angles.sin()

    def writer(self, write: bool = True):
        assert write
        return self._self_kv

    def _self_kv(self, layer, k_raw, k, v):
        keys, values, sink = self.k[layer], self.v[layer], SINK * T
        evicted, local_end = self._indices(layer)
        old_k = old_v = None
        if evicted:
            _, old_end = self.ends[layer]
            rolled = old_end - evicted - sink
            old_k = keys[:, :, sink:sink + evicted].clone()
            old_v = values[:, :, sink:sink + evicted].clone()
            for buf in (keys, values):
                buf[:, :, sink:sink + rolled] = buf[:, :, sink + evicted:sink + evicted + rolled
                                                    ].clone()
        keys[:, :, local_end - CHUNK * T:local_end] = k_raw
        values[:, :, local_end - CHUNK * T:local_end] = v
        if evicted == sink:
            keys[:, :, :sink] = self.alpha * keys[:, :, :sink] + (1 - self.alpha) * old_k
            values[:, :, :sink] = self.alpha * values[:, :, :sink] + (1 - self.alpha) * old_v
        first = self._window_start(local_end)
        attended_k = torch.cat([keys[:, :, :sink], keys[:, :, first:local_end]], dim=2)
        attended_v = torch.cat([values[:, :, :sink], values[:, :, first:local_end]], dim=2)
        angles = rope_angles(self.cfg, range(attended_k.shape[2] // T))
        self.ends[layer] = [self.start + CHUNK * T, local_end]
        return rotate(attended_k, angles), attended_v, None


def prompt(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, TINY.text_len, TINY.text_dim, generator=g)


@pytest.fixture(scope="module")
def model() -> WanDiT:
    return randomise(WanDiT(TINY), seed=11)


def test_the_policy_places_the_sink_first_the_window_after_and_the_chunk_last():
    policy = REWARD_FORCING.layout(H, W).policy
    assert policy == EmaSinkWindow(window=9, sink=3, rope_span=None)
    for start in (0, 3, 6, 9, 30, 3000):
        end = start + CHUNK
        shift = policy.sink_shift(start, CHUNK)
        seen = [f for f in range(end) if policy.visible(f, end)]
        assert [policy.position(f, shift) for f in seen] == list(range(len(seen)))
        assert len(seen) == min(end, 9)
    assert [policy.raw_slot(f, j) for j, f in enumerate(range(9, 12))] == [3, 4, 5]


def passes(start: int, seed: int) -> list[tuple[torch.Tensor, float]]:
    """A chunk's forwards: two denoising steps, then the clean t = 0 cache write."""
    g = torch.Generator().manual_seed(seed * 1000 + start)
    x = [torch.randn(1, TINY.in_channels, CHUNK, H, W, generator=g) for _ in range(3)]
    return [(x[0], 1000.0), (x[1], 625.0), (x[2], 0.0)]


def stream_passes(model: WanDiT, cache, begin, chunks: int) -> list[torch.Tensor]:
    out = []
    with torch.no_grad():
        for n in range(chunks):
            begin(n * CHUNK)
            for x, t in passes(n * CHUNK, seed=1):
                out.append(model(x, torch.full((1, CHUNK), t), cache))
    return out


@pytest.mark.parametrize("alpha", [0.7, 0.999])
def test_every_forward_equals_the_authors_cache_past_several_sink_updates(model, alpha):
    """8 chunks: the window fills (chunks 0-2), then every chunk evicts and mixes the sink
    (5 updates); each of the three forwards of every chunk is compared."""
    ours = EmaSinkCache(TINY, REWARD_FORCING.layout(H, W), alpha=alpha)
    ref = AuthorsCache(TINY, alpha)
    for cache in (ours, ref):
        model.set_text(cache, prompt(0))
    got = stream_passes(model, ours, ours.begin_chunk, 8)
    want = stream_passes(model, ref, ref.begin, 8)
    for i, (a, b) in enumerate(zip(got, want)):
        assert rel_err(a, b) < 1e-5, f"chunk {i // 3}, pass {i % 3}"
    assert ours.visible_prefix == 9 and ours.full  # static from the third chunk on


def test_the_sink_update_is_what_the_comparison_sees(model):
    """The reference test would notice a sink that does not move (α = 1) or moves wrongly."""
    frozen = EmaSinkCache(TINY, REWARD_FORCING.layout(H, W), alpha=1.0)
    ref = AuthorsCache(TINY, 0.7)
    for cache in (frozen, ref):
        model.set_text(cache, prompt(0))
    got = stream_passes(model, frozen, frozen.begin_chunk, 6)
    want = stream_passes(model, ref, ref.begin, 6)
    assert rel_err(got[8], want[8]) < 1e-5  # chunk 2: nothing evicted yet
    assert rel_err(got[-1], want[-1]) > 1e-3


def authors_stream(model, sampler, chunks: int, prompts: dict[int, torch.Tensor]
                   ) -> list[torch.Tensor]:
    """The authors' sampling loop (LongLive's) on the reference cache, with the sampler's
    seeded noise and schedule; `prompts[n]` takes over from chunk n."""
    ref = AuthorsCache(TINY, AUTHORS_ALPHA)
    out = []
    shape = (1, TINY.in_channels, CHUNK, H, W)
    with torch.no_grad():
        for n in range(chunks):
            if n in prompts:
                model.set_text(ref, prompts[n])
            start = n * CHUNK
            ref.begin(start)
            x = sampler.noise(start, 0, shape)
            ts = sampler.timesteps
            for i, t in enumerate(ts):
                x0 = x - sampler.schedule.sigma(t) * model(x, torch.full((1, CHUNK), t), ref)
                if i + 1 < len(ts):
                    s = sampler.schedule.sigma(ts[i + 1])
                    x = (1 - s) * x0 + s * sampler.noise(start, i + 1, shape)
            model(x0, torch.zeros(1, CHUNK), ref)
            out.append(x0)
    return out


def zoo_stream(model, chunks: int, prompts: dict[int, torch.Tensor]):
    sampler = zoo.open_stream(zoo.recipe("reward-forcing"), model, H, W, None, None, seed=4)
    out = []
    for n in range(chunks):
        if n in prompts:
            sampler.set_text(prompts[n])
            assert sampler.recache() == 0  # prompt_switch "none": a cut re-runs nothing
        out.append(sampler.generate_chunk())
    return sampler, out


def test_a_zoo_stream_with_a_prompt_change_is_the_authors_loop(model):
    recipe = zoo.recipe("reward-forcing")
    assert (recipe.prompt_switch, recipe.refine, recipe.checkpoints) == (
        "none", True, ("reward_forcing",))
    switch = {0: prompt(0), 4: prompt(1)}
    sampler, got = zoo_stream(model, 7, switch)
    assert isinstance(sampler.cache, EmaSinkCache)
    assert sampler.cache.alpha == AUTHORS_ALPHA
    assert sampler.timesteps == pytest.approx([1000.0, 937.5, 833.3333, 625.0])
    want = authors_stream(model, sampler, 7, switch)
    for n, (a, b) in enumerate(zip(got, want)):
        assert rel_err(a, b) < 1e-5, f"chunk {n}"
    _, kept = zoo_stream(model, 7, {0: prompt(0)})
    assert all(torch.equal(a, b) for a, b in zip(got[:4], kept[:4]))
    assert rel_err(got[4], kept[4]) > 1e-3


def test_alpha_is_a_registry_parameter_the_settings_read():
    param = next(p for p in REGISTRY if p.name == "ema_sink_alpha")
    assert (param.default, param.min, param.max) == (AUTHORS_ALPHA, 0.0, 1.0)
    snapshot = {p.name: p.default for p in REGISTRY}
    assert ChunkSettings.of({**snapshot, "ema_sink_alpha": 0.5}).ema_sink_alpha == 0.5
    with pytest.raises(ValueError):
        EmaSinkCache(TINY, REWARD_FORCING.layout(H, W), alpha=1.5)


def test_the_pipeline_hands_a_live_alpha_to_the_reward_forcing_cache():
    from pipeline_support import SIZE, store_with

    from livevace.pipelines.vace.pipeline import StreamingVace
    from livevace.pipelines.vace.session import pixel_frames
    from livevace.pipelines.vace.tiny import tiny_random

    rng = np.random.default_rng(0)

    def frames(n: int) -> list[Frame]:
        return [Frame(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), float(i), i)
                for i in range(n)]

    models = replace(tiny_random(), recipe=REWARD_FORCING)
    store = store_with(ema_sink_alpha=0.5, control="gray")
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
    try:
        cache = pipeline.session.cache
        assert isinstance(cache, EmaSinkCache) and cache.alpha == 0.5
        assert pipeline(frames(pixel_frames(3, first=True)), store.snapshot())
        store.set("ema_sink_alpha", 0.9)
        assert pipeline(frames(pixel_frames(3, first=False)), store.snapshot())
        assert pipeline.session.cache is cache and cache.alpha == 0.9
    finally:
        pipeline.close()
        models.close()


@pytest.mark.gpu
def test_on_a_gpu_the_steady_state_replays_graphs_without_host_syncs():
    """The per-chunk sink mix and rotation queue no host sync; every state a stream meets is
    captured by the warm-up (window of 3, 6, then 9 frames), none later; replays equal eager."""
    eager_model = randomise(WanDiT(TINY_VACE), seed=31).cuda()
    graphed_model = copy.deepcopy(eager_model).accelerate(Acceleration(cuda_graph=True))
    ctx = torch.randn(1, TINY_VACE.vace_in_channels, CHUNK, H, W, device="cuda")
    eager, graphed = (zoo.open_stream(REWARD_FORCING, m, H, W, None, None, seed=2)
                      for m in (eager_model, graphed_model))
    for sampler in (eager, graphed):
        sampler.set_text(prompt(0).cuda())
    graphed.warm_up(vace=True)
    captured = graphed_model.graphs.captures
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = [graphed.generate_chunk(vace=ctx) for _ in range(7)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert captured == 3 and graphed_model.graphs.captures == captured
    want = [eager.generate_chunk(vace=ctx) for _ in range(7)]
    for n, (a, b) in enumerate(zip(got, want)):
        assert rel_err(a, b) < 1e-5, f"chunk {n}"


def test_one_frame_chunks_mix_each_evicted_frame_into_its_sink_frame_and_rotate_the_rest():
    """The pairing for chunks shorter than the sink (evicted frame f → sink frame (f − 3) mod 3)
    and the kept keys rotated from the un-rotated ones at their positions for the chunk."""
    cache = EmaSinkCache(TINY, REWARD_FORCING.layout(H, W, chunk=1), alpha=0.75)
    for f in range(9):
        cache.begin_chunk(f)  # (the bookkeeping alone: which frame is in which slot)
    g = torch.Generator().manual_seed(3)
    for buffer in (cache.sink_raw, cache.v):
        buffer.copy_(torch.randn(buffer.shape, generator=g))

    def frame(buffer, slot):
        return buffer[:, :, :, slot * T:(slot + 1) * T].clone()

    for start, evicted_slot, sink_frame in ((9, 3, 0), (10, 4, 1), (11, 5, 2), (12, 6, 0)):
        before = [[frame(b, s) for s in range(9)] for b in (cache.sink_raw, cache.v)]
        cache.begin_chunk(start)
        for b, old in zip((cache.sink_raw, cache.v), before):
            for s in range(9):
                want = (0.75 * old[s] + 0.25 * old[evicted_slot] if s == sink_frame
                        else old[s])
                assert torch.allclose(frame(b, s), want, atol=1e-6), (start, s)
    # chunk [12, 13): the sink at 0..2, frames 7..11 at 3..7, the chunk at 8
    for f, position in ((0, 0), (2, 2), (7, 3), (11, 7)):
        slot = cache.layout.slot(f)
        want = rotate(frame(cache.sink_raw, slot), rope_angles(TINY, range(position, position + 1)))
        assert rel_err(frame(cache.k, slot), want) < 1e-6, f


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.gpu)])
def test_the_compiled_rotation_writes_what_the_eager_one_does(backend):
    """Behind a compiled DiT the per-layer re-rotation is compiled (`compiled_rotation`); it
    must leave `k` exactly as the eager rotation does, the slots it does not touch included."""
    from livevace.models.wan.ema_sink import compiled_rotation, rotate_keys

    if backend == "inductor" and not torch.cuda.is_available():
        pytest.skip("inductor is the GPU's backend here")
    device = torch.device("cuda" if backend == "inductor" else "cpu")
    g = torch.Generator().manual_seed(3)
    raw = torch.randn(1, 4, 9 * 6, 16, generator=g).to(device, torch.bfloat16)
    index = torch.tensor([0, 1, 2, 3, 4, 5, 18, 19, 20, 21, 22, 23], device=device)
    angles = torch.rand(len(index), 8, generator=g).to(device) * 6.28
    want, got = torch.zeros_like(raw), torch.zeros_like(raw)
    rotate_keys(want, raw, index, angles.cos(), angles.sin())
    compiled_rotation(backend)(got, raw, index, angles.cos(), angles.sin())
    assert torch.equal(got, want)
    pairs = raw[:, :, index].double().unflatten(-1, (-1, 2))
    turned = torch.view_as_complex(pairs.contiguous()) * torch.polar(
        torch.ones_like(angles.double()), angles.double())
    assert rel_err(want[:, :, index].double(), torch.view_as_real(turned).flatten(-2)) < 1e-2
    assert not want[:, :, 6:18].any()


def test_a_compiled_dit_gets_the_compiled_rotation(model):
    from livevace.models.wan import ema_sink
    from livevace.models.wan.compiled import compiled_phases

    sampler = zoo.open_stream(zoo.recipe("reward-forcing"), model, H, W, None, None, seed=4)
    assert sampler.cache.rotate_layer is ema_sink.rotate_keys
    compiled = copy.deepcopy(model)
    compiled.phases = compiled_phases("default", backend="aot_eager")
    sampler = zoo.open_stream(zoo.recipe("reward-forcing"), compiled, H, W, None, None, seed=4)
    assert sampler.cache.rotate_layer is ema_sink.compiled_rotation()
