"""What the vace pipeline feeds the model, checked exactly on fixed input chunks (direct calls,
so every run sees the same frames): cache-stratified strengths, references in the sink,
keyframes, masks and outpainting in the context, video-to-video starting points, lookahead."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from livevace.commands.node_options import find_preset, read_preset
from livevace.frames import Frame
from livevace.models.wan.codec import frames_to_pixels
from livevace.pipelines.vace.context import mask_channels
from livevace.pipelines.vace.motion import MotionNoise, start_timesteps
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.session import pixel_frames
from pipeline_support import SIZE, images, models, one_thread, store_with  # noqa: F401

CHUNKS = 3


def clip(chunks: int = CHUNKS, chunk: int = 3, seed: int = 0) -> list[list[Frame]]:
    """Input chunks of smooth moving blobs (annotators find edges in them)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out, index = [], 0
    for n in range(chunks):
        frames = []
        for _ in range(pixel_frames(chunk, n == 0)):
            cx, cy = 8 + index % 16, 12 + (index // 2) % 10
            blob = ((xx - cx) ** 2 + (yy - cy) ** 2 < 60).astype(np.uint8) * 200
            image = np.stack([blob, 255 - blob, (xx * 8).astype(np.uint8)], -1)
            image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
            frames.append(Frame(image, float(index), index))
            index += 1
        out.append(frames)
    return out


def render(models, settings: dict, chunks=None, *, lookahead: int = 0,  # noqa: F811
           changes: dict[int, dict] | None = None) -> tuple[list[np.ndarray], StreamingVace]:
    """Output per call; `changes[i]` is applied before call i."""
    store = store_with(**settings)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=lookahead)
    outs = []
    for i, frames in enumerate(chunks or clip()):
        for name, value in (changes or {}).get(i, {}).items():
            store.set(name, value)
        out = pipeline(frames, store.snapshot())
        outs.append(images(out) if out else np.zeros((0,)))
    return outs, pipeline


def strategy(name: str) -> dict:
    return read_preset(find_preset(f"stratification/{name}"))[1]


CONTROL = dict(control="edges")


# ------------------------------------------------------------------------ stratified VACE
def test_stratified_strengths_change_the_output_and_baseline_is_plain_vace(models) -> None:  # noqa: F811
    baseline, _ = render(models, {**CONTROL, **strategy("baseline")})
    plain, _ = render(models, CONTROL)  # no stratification parameters set at all
    strong, _ = render(models, {**CONTROL, **strategy("strong")})
    inverse, _ = render(models, {**CONTROL, **strategy("inverse")})
    assert all(np.array_equal(a, b) for a, b in zip(baseline, plain))
    # the refinement scale only shapes what is written into the cache: the first chunk is the
    # same, every chunk that attends to the cache differs
    assert np.array_equal(strong[0], baseline[0])
    assert all(not np.array_equal(s, b) for s, b in zip(strong[1:], baseline[1:]))
    # the generation scale acts while the chunk itself is denoised
    assert all(not np.array_equal(i, b) for i, b in zip(inverse, baseline))


def test_strength_is_the_product_of_context_and_role_scales(models) -> None:  # noqa: F811
    a, _ = render(models, {**CONTROL, "vace_context_scale": 0.5})
    b, _ = render(models, {**CONTROL, "vace_refinement_scale": 0.5, "vace_generation_scale": 0.5})
    assert all(np.allclose(x, y, atol=1) for x, y in zip(a, b))
    off, _ = render(models, {**CONTROL, "vace_context_scale": 0.0})
    assert not np.array_equal(off[0], a[0])


@pytest.mark.parametrize("name, value", [("vace_generation_scale", 1.7),
                                         ("vace_context_scale", 0.3),
                                         ("vace_layer_profile", (0.0, 2.0)),
                                         ("control", "gray")])
def test_a_vace_change_lands_on_the_next_chunk(models, name, value) -> None:  # noqa: F811
    before, _ = render(models, CONTROL)
    after, _ = render(models, CONTROL, changes={2: {name: value}})
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2])


def test_lookahead_overlaps_annotation_without_changing_the_pictures(models) -> None:  # noqa: F811
    serial, _ = render(models, {**CONTROL, "mask": "person"}, clip(4))
    overlapped, pipeline = render(models, {**CONTROL, "mask": "person"}, clip(4), lookahead=1)
    assert overlapped[0].size == 0  # the first call only submits its chunk
    assert all(np.array_equal(a, b) for a, b in zip(serial, overlapped[1:]))
    assert pipeline.stats.snapshot()["stage_annotate_ms"] > 0


def test_by_default_three_latent_chunks_are_annotated_ahead_and_one_latent_ones_not(
        models) -> None:  # noqa: F811
    store = store_with(**CONTROL)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot())
    counts = []
    for i in range(5):
        if i == 2:
            store.set("chunk_frames", 1)  # for latency: each chunk out in its own call
        frames = [Frame(f.image, f.t_capture, f.index)
                  for f in clip(1, chunk=3, seed=i)[0][:pipeline.frames_per_call]]
        out = pipeline(frames, store.snapshot())
        counts.append((pipeline.lookahead, len(out)))
    pipeline.close()
    # 3-latent chunks: the first call only submits; at the switch the held chunk (the new
    # session's first: 1 frame) and the call's own (4) both come out, and from then on every
    # call returns its own 4 frames
    assert counts[:2] == [(1, 0), (1, 9)]
    assert counts[2:] == [(0, 5), (0, 4), (0, 4)]


class BrokenDepth:
    """A depth network that fails while the show runs (a CUDA error, a driver reset)."""

    device = torch.device("cpu")

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_a_control_that_breaks_mid_show_falls_back_to_edges_and_goes_on(
        models, caplog) -> None:  # noqa: F811
    edges, _ = render(models, CONTROL)
    store = store_with(**{**CONTROL, "control": "depth"})
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0,
                             depth_estimator=BrokenDepth)
    with caplog.at_level(logging.WARNING):
        outs = [images(pipeline(frames, store.snapshot())) for frames in clip()]
    pipeline.close()
    assert all(np.array_equal(a, b) for a, b in zip(edges, outs, strict=True))
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failures == ["control depth failed (RuntimeError: CUDA error: an illegal memory "
                        "access was encountered); falling back to edges"]


# ----------------------------------------------------------------------------- references
def picture(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> str:
    image = np.full((*size, 3), 40, np.uint8)
    image[:, : size[1] // 2] = colour
    cv2.imwrite(str(path), image)
    return str(path)


def encode_alone(models, image: np.ndarray) -> torch.Tensor:  # noqa: F811
    """The VAE latent of one picture encoded on its own (one latent frame)."""
    pixels = frames_to_pixels(torch.from_numpy(image)[None])
    return models.vae.causal_encoder().encode(pixels).float()


def test_references_live_in_the_sink_encoded_once(models, tmp_path: Path) -> None:  # noqa: F811
    a, b = picture(tmp_path / "a.png", (255, 0, 0)), picture(tmp_path / "b.png", (0, 0, 255))
    outs, pipeline = render(models, {**CONTROL, "reference_images": (a, b)})
    session, refs = pipeline.session, pipeline.references
    cache = session.cache
    # three sink slots: r1 r2 r1; the session's chunks start behind them
    assert cache.slot_frame[:3] == [0, 1, 2]
    assert (cache.chunk_start, cache.next_frame) == (9, 12)  # chunks at frames 3-5, 6-8, 9-11
    latents, context = refs.sink_frames(3)
    expected = encode_alone(models, pipeline.images.rgb(a, "reference image"))
    assert torch.allclose(latents[:, :, 0], expected[:, :, 0], atol=1e-5)
    assert torch.equal(latents[:, :, 2], latents[:, :, 0])
    assert torch.equal(context[:, :16], latents) and not context[:, 16:].any()  # mask 0: keep
    encoded = refs.latents
    pipeline(clip(4)[3], pipeline.params)
    assert refs.latents is encoded  # not re-encoded per chunk
    plain, _ = render(models, CONTROL)
    assert not np.array_equal(outs[0], plain[0])


def test_references_swap_in_place_and_removal_resets(models, tmp_path: Path,  # noqa: F811
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    a, b = picture(tmp_path / "a.png", (255, 0, 0)), picture(tmp_path / "b.png", (0, 0, 255))
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((9000, 10, 3), np.uint8))
    outs, pipeline = render(models, {**CONTROL, "reference_images": (a,)}, clip(4), changes={
        1: {"reference_images": (b, str(huge))}, 3: {"reference_images": ()}})
    assert f"reference image {huge}: 10×9000 pixels is too large" in caplog.text
    assert [len(o) for o in outs] == [9, 12, 12, 9]  # swap: no reset; removal: a new session
    assert "reference_images: cache reset" in caplog.text
    kept, _ = render(models, {**CONTROL, "reference_images": (a,)}, clip(4))
    assert np.array_equal(outs[0], kept[0]) and not np.array_equal(outs[1], kept[1])


# ------------------------------------------------------------------------------ keyframes
def test_first_frame_image_is_the_first_latent_kept(models, tmp_path: Path) -> None:  # noqa: F811
    key = picture(tmp_path / "key.png", (255, 255, 0))
    _, pipeline = render(models, {**CONTROL, "first_frame_image": key}, clip(1))
    sampler = pipeline.session.sampler
    expected = encode_alone(models, pipeline.images.rgb(key, "first frame image"))
    # frame 0's context: inactive = the picture (frame 0 is encoded alone by the causal VAE)
    assert torch.allclose(sampler.contexts[:, :16, 0], expected[:, :, 0], atol=1e-4)


def test_last_frame_image_lands_at_the_end_of_the_next_chunk(models, tmp_path: Path) -> None:  # noqa: F811
    key = picture(tmp_path / "key.png", (0, 255, 255))
    _, plain = render(models, CONTROL, clip(2))
    _, landed = render(models, CONTROL, clip(2), changes={1: {"last_frame_image": key}})
    slots = [plain.session.cache.layout.slot(f) for f in range(3, 6)]  # chunk 1: frames 3..5
    a, b = plain.session.sampler.contexts[:, :, slots], landed.session.sampler.contexts[:, :, slots]
    differs = (a - b).abs().amax(dim=(0, 3, 4)) > 1e-6  # [channels, latent frame]
    assert differs[:16, 2].all()  # the kept picture is in the last latent frame …
    assert not differs[:16, :2].any() and not differs[32:].any()  # … and nowhere else


# ----------------------------------------------------------------- masks and outpainting
def test_outpainting_keeps_the_placed_input_and_generates_the_border(models) -> None:  # noqa: F811
    _, pipeline = render(models, {**CONTROL, "outpaint": (0.25, 0.0, 0.25, 0.0)}, clip(1))
    mask = pipeline.session.sampler.contexts[0, 32:, 0]  # [64, h, w] of the first latent
    assert (mask[:, :, :1] == 1).all() and (mask[:, :, -1:] == 1).all()  # 8-px borders
    assert (mask[:, :, 1:3] == 0).all()  # the input, kept


def test_mask_image_regenerates_its_white_part(models, tmp_path: Path,  # noqa: F811
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "mask.png"
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[:, SIZE // 2:] = 255
    cv2.imwrite(str(path), m)
    _, pipeline = render(models, {**CONTROL, "mask": "image", "mask_image": str(path)}, clip(1))
    mask = pipeline.session.sampler.contexts[0, 32:, 0]
    assert (mask[:, :, 2:] == 1).all() and (mask[:, :, :2] == 0).all()
    caplog.set_level(logging.ERROR)
    outs, _ = render(models, {**CONTROL, "mask": "image", "mask_image": str(tmp_path / "x.png")},
                     clip(1))
    assert "mask image" in caplog.text and "no such file" in caplog.text and len(outs[0]) == 9


def test_mask_channels_follow_vace_block_layout() -> None:
    mask = torch.zeros(5, 16, 16)
    mask[:, 0:8, 8:16] = 1.0  # the top-right 8×8 block of every frame
    mask[:, 9, 3] = 1.0  # one pixel: row 1, column 3 of the bottom-left block
    ch = mask_channels(mask)
    assert ch.shape == (1, 64, 2, 2, 2)
    assert (ch[0, :, :, 0, 1] == 1).all() and ch[0, :, :, 1, 1].sum() == 0
    assert ch[0, 1 * 8 + 3, :, 1, 0].tolist() == [1.0, 1.0] and ch[0, :, :, 1, 0].sum() == 2


# ------------------------------------------------------------------------ video-to-video
def test_video_to_video_starts_from_the_noised_input(models) -> None:  # noqa: F811
    frames = clip(1)
    _, pipeline = render(models, dict(vace_enabled=False, noise_scale=0.1), frames)
    sampler = pipeline.session.sampler
    encoded = models.vae.causal_encoder().encode(
        frames_to_pixels(torch.from_numpy(images(frames[0])))).float()
    noise = sampler.noise(0, 0, encoded.shape)
    # at noise 0.1 the first (and only) step is t = 0: the result is the noised input itself
    assert start_timesteps(sampler.timesteps, 0.1) == [0.0]
    assert torch.allclose(sampler.latents[:, :, :3], 0.1 * noise + 0.9 * encoded, atol=1e-5)


def test_start_timesteps_follow_scope() -> None:
    warped = [1000.0, 937.5, 833.3, 625.0]
    assert start_timesteps(warped, 0.7) == [600.0]
    assert start_timesteps(warped, 0.9) == [800.0, 625.0]
    assert start_timesteps(warped, 1.0) == [900.0, 833.3, 625.0]


def test_motion_lowers_the_noise_scale() -> None:
    still = [np.full((32, 32, 3), 100, np.uint8)] * 12
    moving = [np.full((32, 32, 3), 40 * (i % 2), np.uint8) for i in range(12)]
    controller = MotionNoise()
    assert controller(still, 0.7) == pytest.approx(0.7)
    fast = controller(moving, 0.7)
    assert fast < 0.7 and controller.motion(moving) == 1.0
    assert fast == pytest.approx(0.9 * (0.7 - 0.1) + 0.1 * 0.7)


def test_motion_noise_is_streamdiffusionv2s_estimator() -> None:
    """The authors' `compute_noise_scale_and_step` on [-1, 1] RGB video: per-frame RMS of the
    change from the frame before (the previous chunk's last included), the largest over 0.2
    clamped, s = 0.9·(s_set − 0.1·motion) + 0.1·s_previous, first step int(1000·s) − 100."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (1, 24, 32, 3))
    video = np.clip(base + rng.integers(-10, 10, (9, 24, 32, 3)) * np.arange(9)[:, None, None,
                    None] // 4, 0, 255).astype(np.uint8)
    pixels = torch.from_numpy(video).double().permute(3, 0, 1, 2)[None] / 127.5 - 1.0
    controller, expected = MotionNoise(), 0.8
    assert controller(list(video[:1]), 0.8) == 0.8  # the first chunk: nothing to compare with
    for end in (5, 9):  # chunks of four frames after the first
        change = pixels[:, :, end - 4:end] - pixels[:, :, end - 5:end - 1]
        motion = float((change.pow(2).mean(dim=(0, 1, 3, 4)).sqrt().max() / 0.2).clamp(0, 1))
        expected = (0.8 - 0.1 * motion) * 0.9 + expected * 0.1
        assert controller(list(video[end - 4:end]), 0.8) == pytest.approx(expected, abs=1e-9)
    assert 0 < motion < 1
    assert start_timesteps([700.0, 500.0], expected)[0] == int(1000 * expected) - 100
