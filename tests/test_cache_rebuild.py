"""Krea Realtime's rebuilt cache, block by block, against a slow reference written from the
facts: the schedule, the clean context [first, latent[-2], latent[-1]] run at t = 0 at
positions 0..2 (under the previous block's text), the block at positions 3..5 attending to
the context and itself with full explicit attention, the re-encoded first frame from the
session's decoded frames."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

import numpy as np
import pytest
import torch
from pipeline_support import SIZE, images, store_with
from wan_support import one_thread, randomise, rel_err  # noqa: F401

from livevace.frames import Frame

from livevace.models.wan.codec import pixels_to_frames
from livevace.models.wan.compiled import Acceleration
from livevace.models.wan.config import TINY_VACE_14B, WAN21_VACE_14B
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.rebuild import FOUR_STEPS, KREA_REALTIME, RebuildSampler
from livevace.models.wan.vace import VaceStrength
from livevace.models.wan.vae import WanVAE, WanVAEConfig
from livevace.models.wan.zoo import RECIPES, open_stream
from livevace.pipelines.vace.first_frame import DecodedFrames
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.session import pixel_frames
from livevace.pipelines.vace.tiny import tiny_random

H = W = 4
CFG = TINY_VACE_14B
STRENGTH = VaceStrength(context=1.0, generation=0.9, refinement=0.4)


def shifted(sigma: float) -> float:
    return 5.0 * sigma / (1 + 4.0 * sigma)


def warped(step: int) -> float:
    """Self-Forcing's warp: entry 1000 - step of the table (σ = step / 1000), 0 past its end."""
    return 1000.0 * shifted(step / 1000) if step else 0.0


SIGMAS = torch.tensor([shifted(1 - i / 1000) for i in range(1000)], dtype=torch.float64)


def sigma(t: float) -> float:
    """The authors' lookup: the table entry nearest t (t = 0 finds the last one)."""
    return float(SIGMAS[(SIGMAS * 1000 - t).abs().argmin()])


@pytest.fixture(scope="module")
def model() -> WanDiT:
    return randomise(WanDiT(CFG), seed=11)


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@contextmanager
def explicit(model: WanDiT) -> Iterator[None]:
    before, model.attn_impl = model.attn_impl, "explicit"
    try:
        yield
    finally:
        model.attn_impl = before


# ----------------------------------------------------------------------------- reference
def run_pass(model, text, x, t, positions, past, vace, scale):
    """One forward over x at timestep t and the given frame positions, attending (explicitly) to
    the K/V in `past` (per layer) and to itself; returns (flow, its K/V per layer)."""
    own = {}

    def self_kv(layer, k_raw, k, v):
        own[layer] = (k, v)
        if past is None:
            return k, v, None
        return torch.cat([past[layer][0], k], 2), torch.cat([past[layer][1], v], 2), None

    rope = model.rope.cos_sin(list(positions), H // 2, W // 2)
    tt = torch.full((1, x.shape[2]), float(t))
    with explicit(model), torch.no_grad():
        flow = model._run(x, tt, model.text_kv(text), rope, self_kv, vace, scale)
    return flow, own


def reference(model, texts, vaces, firsts, timesteps, noise, chunk=3):
    """Krea's stream from the facts: block b uses texts[b] and vaces[b]; firsts[b] is the
    re-encoded first frame once the stream holds more than three latents."""
    latents, contexts, out = [], [], []
    for b, text in enumerate(texts):
        past, n = None, len(latents)
        if n:
            ctx, ctx_vace = latents[-3:], contexts[-3:]
            if n > 3:
                ctx = [firsts[b]] + ctx[1:]
            vace = None if any(v is None for v in ctx_vace) else torch.cat(ctx_vace, 2)
            frames, past = torch.cat(ctx, 2), {}
            for s in range(0, len(ctx), chunk):  # block-causal in blocks of a chunk, t = 0
                part = slice(s, min(s + chunk, len(ctx)))
                _, kv = run_pass(model, texts[b - 1], frames[:, :, part], 0.0,
                                 range(part.start, part.stop), past or None,
                                 None if vace is None else vace[:, :, part], STRENGTH.refinement)
                past = {i: (torch.cat([past[i][0], k], 2), torch.cat([past[i][1], v], 2))
                        if i in past else (k, v) for i, (k, v) in kv.items()}
        at = min(n, 3)
        shape = (1, 16, chunk, H, W)
        x = noise(b * chunk, 0, shape)
        for i, t in enumerate(timesteps):
            flow, _ = run_pass(model, text, x, t, range(at, at + chunk), past, vaces[b],
                               STRENGTH.generation)
            x0 = x - sigma(t) * flow
            if i + 1 < len(timesteps):
                s = sigma(timesteps[i + 1])
                x = (1 - s) * x0 + s * noise(b * chunk, i + 1, shape)
        out.append(x0)
        latents += list(x0.split(1, 2))
        contexts += list(vaces[b].split(1, 2)) if vaces[b] is not None else [None] * chunk
    return out


def stream(sampler, texts, vaces, firsts):
    """The sampler's blocks with text changes where texts change; records the hook's calls."""
    block, calls = [0], []
    sampler.first_latent = lambda: calls.append(block[0]) or firsts[block[0]]
    out = []
    for b, text in enumerate(texts):
        block[0] = b
        if b == 0 or text is not texts[b - 1]:
            sampler.set_text(text)
        out.append(sampler.generate_chunk(vace=vaces[b]))
    return out, calls


def inputs(blocks: int, chunk: int):
    a, b = randn(1, 7, CFG.text_dim, seed=1), randn(1, 9, CFG.text_dim, seed=2)
    texts = [a] * (blocks // 2) + [b] * (blocks - blocks // 2)
    vaces = [randn(1, CFG.vace_in_channels, chunk, H, W, seed=10 + i) for i in range(blocks)]
    vaces[1] = None  # the block after runs its rebuild without VACE
    firsts = [randn(1, 16, 1, H, W, seed=30 + i) for i in range(blocks)]
    return texts, vaces, firsts


# ------------------------------------------------------------------------------- tests
def test_the_recipe_holds_krea_realtimes_facts():
    r = KREA_REALTIME
    assert RECIPES["krea-realtime"] is r
    c = r.config
    assert (c.dim, c.ffn_dim, c.num_heads, c.num_layers) == (5120, 13824, 40, 40)
    assert c == WAN21_VACE_14B and c.vace_layers == tuple(range(0, 40, 5))
    assert (r.shift, r.chunk, r.refine, r.prompt_switch) == (5.0, 3, False, "rebuild")
    assert r.checkpoints == ("krea_realtime_14b",) and r.vace_checkpoints == ("vace_module_14b",)
    assert r.tiny_config.vace_layers == (0, 5) and r.tiny_config.num_layers == 6
    lay = r.layout(60, 104)
    assert (lay.window, lay.sink, lay.chunk, lay.rope_span) == (6, 0, 3, None)


def test_the_schedules_are_the_authors_warped_lists(model):
    sampler = open_stream(KREA_REALTIME, model, H, W, None, None, 0)
    assert sampler.timesteps == pytest.approx([1000.0, 937.5, 2500 / 3, 625.0, 0.0], abs=1e-9)
    assert sampler.timesteps == pytest.approx([warped(s) for s in (1000, 750, 500, 250, 0)])
    # the four-step mode: linspace(1000, 0, 4) truncated to integers, warped; the t = 0 step
    # is added to a list without one, and only then
    assert FOUR_STEPS + (0,) == tuple(int(s) for s in np.linspace(1000, 0, 4, dtype=np.float32))
    sampler.set_steps(FOUR_STEPS + (0,))
    assert sampler.timesteps == pytest.approx([1000.0, warped(666), warped(333), 0.0])
    sampler.set_steps(FOUR_STEPS)
    assert sampler.timesteps == pytest.approx([1000.0, warped(666), warped(333), 0.0])
    assert sampler.timesteps[1:3] == pytest.approx([908.84, 713.98], abs=0.01)
    # t = 0 converts with the table's last entry, not σ = 0
    assert sampler.schedule.nearest_sigma(0.0) == pytest.approx(shifted(0.001)) == sigma(0.0)
    assert sampler.schedule.sigma(0.0) == 0.0


@pytest.mark.parametrize("steps, raw", [(None, (1000, 750, 500, 250, 0)),
                                        (FOUR_STEPS, (1000, 666, 333, 0))],
                         ids=["five-step", "four-step"])
def test_blocks_equal_the_reference(model, steps, raw):
    """Block 1 (alone), block 2 (the stream's first latent in the context), blocks 3 and 4
    (the re-encoded first frame), a prompt change at block 3 and a block without VACE."""
    texts, vaces, firsts = inputs(4, 3)
    sampler = open_stream(KREA_REALTIME, model, H, W, None, steps, seed=5)
    sampler.set_strength(STRENGTH)
    got, calls = stream(sampler, texts, vaces, firsts)
    want = reference(model, texts, vaces, firsts, [warped(s) for s in raw], sampler.noise)
    assert calls == [2, 3]
    for a, b in zip(got, want, strict=True):
        assert rel_err(a, b) < 1e-5
    assert sampler.cache.next_frame == 12


def test_one_latent_chunks_rebuild_frame_by_frame(model):
    """With 1-latent blocks the context grows to three frames, each written attending to the
    ones before it (the authors' block-causal mask with blocks of one frame)."""
    texts, vaces, firsts = inputs(6, 1)
    sampler = open_stream(KREA_REALTIME, model, H, W, 1, (1000, 500, 0), seed=6)
    sampler.set_strength(STRENGTH)
    got, calls = stream(sampler, texts, vaces, firsts)
    want = reference(model, texts, vaces, firsts, [1000.0, warped(500), 0.0], sampler.noise,
                     chunk=1)
    assert calls == [4, 5]
    for a, b in zip(got, want, strict=True):
        assert rel_err(a, b) < 1e-5


def test_without_decoded_frames_the_oldest_latent_stands_in(model):
    """No frames to re-encode (warm-up, the bench): the oldest kept latent is the context's
    first frame, the latent the re-encoded frame would have been decoded from."""
    texts, vaces, _ = inputs(3, 3)
    sampler = open_stream(KREA_REALTIME, model, H, W, None, (1000, 0), seed=2)
    plain, calls = stream(sampler, texts, vaces, [None] * 3)
    assert calls == [2]
    sampler.reset()
    given, _ = stream(sampler, texts, vaces, [None, None, plain[1][:, :, :1]])
    assert torch.equal(given[2], plain[2])


def test_steady_state_passes_keep_one_shape_and_a_maskless_prefix(model):
    """From the third block on, each block is the same rebuild pass then the same block
    passes: fixed shapes and visible prefixes, so CUDA graphs replay."""
    sampler = open_stream(KREA_REALTIME, model, H, W, None, None, seed=1)
    sampler.set_text(randn(1, 5, CFG.text_dim, seed=3))
    seen: list[tuple] = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(
        (args[2].chunk_start, args[2].chunk_frames, args[2].visible_prefix, tuple(args[0].shape),
         args[1][0, 0].item())))
    blocks = []
    try:
        for _ in range(4):
            seen.clear()
            sampler.generate_chunk()
            blocks.append(list(seen))
    finally:
        hook.remove()
    ts = [pytest.approx(t, rel=1e-6) for t in sampler.timesteps]
    shape = (1, 16, 3, H, W)
    assert blocks[0] == [(0, 3, 3, shape, t) for t in ts]
    steady = [(0, 3, 3, shape, 0.0)] + [(3, 3, 6, shape, t) for t in ts]
    assert blocks[1] == blocks[2] == blocks[3] == steady


def test_a_prompt_cut_needs_no_recache_and_a_reset_starts_with_the_new_prompt(model):
    a, b = randn(1, 7, CFG.text_dim, seed=1), randn(1, 9, CFG.text_dim, seed=2)
    sampler = open_stream(KREA_REALTIME, model, H, W, None, (1000, 0), seed=3)
    sampler.set_text(a)
    sampler.generate_chunk()
    sampler.set_text(b)
    assert sampler.recache() == 0
    sampler.reset()  # the new prompt is in place for the next stream's first block
    fresh = open_stream(KREA_REALTIME, model, H, W, None, (1000, 0), seed=3)
    fresh.set_text(b)
    assert torch.equal(sampler.generate_chunk(), fresh.generate_chunk())
    sampler.warm_up()  # a throw-away stream, then afresh
    fresh.reset()
    assert torch.equal(sampler.generate_chunk(), fresh.generate_chunk())


def test_a_first_latent_of_the_wrong_shape_is_refused(model):
    sampler = open_stream(KREA_REALTIME, model, H, W, None, (1000, 0), seed=3)
    sampler.set_text(randn(1, 4, CFG.text_dim, seed=1))
    sampler.first_latent = lambda: torch.zeros(1, 16, 2, H, W)
    for _ in range(2):
        sampler.generate_chunk()
    with pytest.raises(ValueError, match="first_latent"):
        sampler.generate_chunk()


@pytest.mark.gpu
def test_on_the_gpu_the_steady_state_replays_graphs_without_host_syncs():
    """After `warm_up`, blocks replay captured graphs only (no capture, no host sync) and
    give what the eager step gives."""
    texts, vaces, _ = inputs(5, 3)
    contexts = [v.cuda() for v in vaces if v is not None]
    outs = []
    for graphs in (False, True):
        gpu = randomise(WanDiT(CFG), seed=11).for_inference(torch.bfloat16).cuda()
        if graphs:
            gpu.accelerate(Acceleration(cuda_graph=True))
        sampler = open_stream(KREA_REALTIME, gpu, H, W, None, None, seed=5)
        sampler.set_strength(STRENGTH)
        sampler.set_text(texts[0].cuda())
        sampler.warm_up(vace=True)
        captures = gpu.graphs.captures if graphs else 0
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            outs.append([sampler.generate_chunk(vace=v) for v in contexts])
        finally:
            torch.cuda.set_sync_debug_mode("default")
        if graphs:
            assert gpu.graphs.captures == captures
    for a, b in zip(*outs, strict=True):
        assert rel_err(b.cpu(), a.cpu()) < 1e-3


# ------------------------------------------------------------------- decoded frames
@pytest.fixture(scope="module")
def vae() -> WanVAE:
    torch.manual_seed(0)
    return WanVAE(WanVAEConfig(base_dim=4)).eval()


def test_decoded_frames_keep_the_last_nine_and_encode_the_oldest_alone(vae):
    frames = DecodedFrames(vae, 9)
    assert frames.first_latent() is None
    video = torch.rand(1, 3, 33, 16, 16) * 2 - 1
    chunks = [video[:, :, a:b].clone() for a, b in ((0, 9), (9, 21), (21, 33))]
    for chunk in chunks:  # as decoded: a first chunk of 9 frames, then 12
        frames.push(chunk)
    chunks[-1].zero_()  # the decoder may reuse its output: the frames were copied
    assert len(frames.frames) == 9
    # the oldest of the last nine: frame 24, the last frame of latent 6 (= latent[-3] of 9)
    assert torch.equal(frames.frames[0], video[:, :, 24:25])
    want = vae.causal_encoder().encode(video[:, :, 24:25]).float()
    got = frames.first_latent()
    assert got.shape == (1, 16, 1, 2, 2) and torch.equal(got, want)
    frames.reset()
    assert frames.first_latent() is None


def test_the_pipeline_session_feeds_the_sampler_its_decoded_frames():
    """Through the real pipeline: the session keeps what it decodes, and the sampler's hook
    re-encodes the oldest of the last nine output frames."""
    base = tiny_random()
    dit = randomise(WanDiT(CFG), seed=4).for_inference(torch.float32)
    models = replace(base, dit=dit, recipe=KREA_REALTIME)
    store = store_with(denoising_steps=(1000, 500))
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
    rng = np.random.default_rng(0)
    outs, index = [], 0
    try:
        for n in range(3):
            frames = []
            for _ in range(pixel_frames(3, n == 0)):
                image = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
                frames.append(Frame(image, float(index), index))
                index += 1
            outs.append(images(pipeline(frames, store.snapshot())))
        session = pipeline.session
        assert isinstance(session.sampler, RebuildSampler) and session.decoded is not None
        assert session.sampler.first_latent == session.decoded.first_latent
        kept = pixels_to_frames(torch.cat(list(session.decoded.frames), 2))[0].numpy()
        assert np.array_equal(kept, np.concatenate(outs)[-9:])
    finally:
        pipeline.close()
        models.close()
        base.close()
