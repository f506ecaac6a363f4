"""Every mode of the vace pipeline and several compositions, end to end through the real node
loop (pattern or an ffmpeg-made clip → capture → pipeline → pacer → sink) with the tiny random
model: chunks of the right frame counts (first 1 + 4(C − 1), then 4C), frames of the right size,
one output per input frame carrying its capture time, each stage timed into the stats."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from livevace.io.video import VideoSource
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.session import pixel_frames
from pipeline_support import (SIZE, images, make_clip, models, one_thread,  # noqa: F401
                              run_node, store_with)

CHUNKS = 3


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A clip, two reference pictures (one with transparency), a mask and a keyframe."""
    d = tmp_path_factory.mktemp("assets")
    yy, xx = np.mgrid[0:120, 0:160]
    red = np.zeros((120, 160, 3), np.uint8)
    red[..., 2] = (xx * 255 // 159).astype(np.uint8)
    cv2.imwrite(str(d / "ref_red.png"), red)
    rgba = np.zeros((90, 90, 4), np.uint8)
    cv2.circle(rgba, (45, 45), 30, (255, 128, 0, 255), -1)
    cv2.imwrite(str(d / "ref_cutout.png"), rgba)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 8:40] = 255
    cv2.imwrite(str(d / "mask.png"), mask)
    key = ((yy[..., None] + xx[..., None]) % 64 * 4).astype(np.uint8).repeat(3, -1)
    cv2.imwrite(str(d / "key.jpg"), key)
    return {"clip": str(make_clip(d / "clip.mp4")), "ref": str(d / "ref_red.png"),
            "cutout": str(d / "ref_cutout.png"), "mask": str(d / "mask.png"),
            "key": str(d / "key.jpg")}


CASES = {
    "text-to-video": dict(vace_enabled=False, noise_scale=1.0),
    "video-to-video, motion-aware noise": dict(vace_enabled=False, noise_scale=0.6,
                                               noise_controller=True),
    "depth control": dict(control="depth"),
    "pose control": dict(control="pose"),
    "raw video through VACE": dict(control="none"),
    "edges, inpainting the person": dict(control="edges", mask="person"),
    "gray, regenerating the background": dict(control="gray", mask="person_inverse"),
    "mask image": dict(control="edges", mask="image", mask_image="{mask}"),
    "outpainting": dict(control="edges", outpaint=(0.25, 0.0, 0.25, 0.1)),
    "reference-to-video": dict(vace_enabled=False, noise_scale=1.0,
                               reference_images=("{ref}", "{cutout}")),
    "first and last frame": dict(control="edges", first_frame_image="{key}",
                                 last_frame_image="{ref}"),
    "references + depth + person inpainting": dict(control="depth", mask="person",
                                                   reference_images=("{ref}",)),
    "outpainting + first frame + 3 references + video-to-video": dict(
        vace_enabled=False, noise_scale=0.7, outpaint=(0.0, 0.2, 0.0, 0.2),
        first_frame_image="{key}", reference_images=("{ref}", "{cutout}", "{key}")),
    "1-frame chunks: references + scribble + mask image": dict(
        chunk_frames=1, control="scribble", mask="image", mask_image="{mask}",
        reference_images=("{cutout}",)),
}
CLIP_SOURCE = {"video-to-video, motion-aware noise", "pose control", "outpainting",
               "edges, inpainting the person"}


def _fill(value, assets: dict[str, str]):
    if isinstance(value, str):
        return value.format(**assets)
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return tuple(v.format(**assets) for v in value)
    return value


@pytest.mark.parametrize("case", list(CASES))
def test_mode_runs_through_the_node(case: str, models, assets, tmp_path: Path,  # noqa: F811
                                    monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))  # no depth weights here
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path))
    caplog.set_level(logging.INFO)
    settings = {k: _fill(v, assets) for k, v in CASES[case].items()}
    store = store_with(**settings)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot())
    source = VideoSource(assets["clip"]) if case in CLIP_SOURCE else None
    bursts, sink, stats = run_node(pipeline, store, CHUNKS, source=source)

    assert len(bursts) >= CHUNKS, f"{case}: only {len(bursts)} chunks came out"
    c = int(store.get("chunk_frames"))
    for n, frames in enumerate(bursts[:CHUNKS]):
        assert len(frames) == pixel_frames(c, first=n == 0)
        assert {f.meta["chunk"] for f in frames} == {n}
        indices = [f.index for f in frames]
        assert indices == list(range(indices[0], indices[0] + len(frames)))  # consecutive input
        assert all(f.image.shape == (SIZE, SIZE, 3) and f.image.dtype == np.uint8 for f in frames)
    assert images(bursts[1]).std() > 1.0  # a picture, not a flat field
    # the sink: the configured size and rate, each frame with its input's capture time
    assert sink.opened == (SIZE, SIZE, pytest.approx(60.0))
    generated = [f for f in sink.frames if "chunk" in f.meta]
    assert len({f.meta["chunk"] for f in generated}) >= CHUNKS - 1
    assert all(f.image.shape == (SIZE, SIZE, 3) for f in generated)
    stamps = [f.t_capture for f in generated]
    assert stamps == sorted(stamps)
    s = stats.snapshot()
    for stage in ("cache", "encode", "dit", "decode", "annotate_wait", "pipeline"):
        assert f"stage_{stage}_ms" in s
    assert s["stage_dit_ms"] > 0 and s["stage_decode_ms"] > 0
    assert "vace: " in caplog.text  # the mode is named in the log
    if "depth" in case:  # weights missing here: edges instead, said once, and the mode
        assert "control depth unavailable" in caplog.text and "falling back to edges" in caplog.text
        modes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("vace: ")]
        assert modes and all("VACE edges control" in m for m in modes), modes  # what runs
    if "cutout" in str(settings.get("reference_images")):
        assert "reference images: " in caplog.text


def test_the_mode_line_names_only_the_references_in_use(
        models, assets, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """Refused reference images are not counted: the log says what the chunk really uses."""
    caplog.set_level(logging.INFO)
    missing = tuple(str(tmp_path / f"gone_{i}.png") for i in range(3))
    store = store_with(control="edges", reference_images=missing)
    bursts, _, _ = run_node(StreamingVace(models, SIZE, SIZE, store.snapshot()), store, 2,
                            changes={3: {"reference_images": (assets["ref"], *missing[1:])}})
    assert len(bursts) >= 2
    modes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("vace: ")]
    assert modes[0] == "vace: VACE edges control"
    assert all("3 reference images" not in m for m in modes), modes
    assert f"reference image {missing[0]}: no such file; going on without it" in caplog.text
    assert "vace: VACE edges control + 1 reference image" in modes  # once one is readable


def test_output_size_that_is_no_multiple_of_16(models) -> None:  # noqa: F811
    """Generated at 32×16 (crop-to-fill), delivered at the node's 40×24."""
    store = store_with(control="edges")
    pipeline = StreamingVace(models, 40, 24, store.snapshot())
    assert (pipeline.gen_width, pipeline.gen_height) == (32, 16)
    bursts, sink, _ = run_node(pipeline, store, 2, size=(40, 24))
    frames = [f for burst in bursts for f in burst] + sink.frames
    assert len(bursts) >= 2 and all(f.image.shape == (24, 40, 3) for f in frames)


@pytest.mark.parametrize("settings,fitted", [
    (dict(vace_enabled=False, noise_scale=1.0), False),  # text-to-video: no context at all
    (dict(control="edges"), False),  # a control video alone: only the control frames
    (dict(control="none"), True),  # the raw video is the control
    (dict(control="edges", outpaint=(0.25, 0.0, 0.25, 0.0)), True),  # a region keeps them
])
def test_input_frames_are_fitted_only_where_the_context_uses_them(
        settings: dict, fitted: bool, models, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Stacking the input frames is host time the GPU waits for at a chunk boundary (≈ 2.5 ms
    per chunk at 832×480): a context that does not use them must not pay for it."""
    import livevace.pipelines.vace.planner as vp

    given: list[list[np.ndarray]] = []
    fitted_inputs: list[bool] = []
    context_job, fit_frames = vp.ContextPlanner.job, vp.fit_frames

    def job(self, session, inputs, *args, **kwargs):
        given.append(inputs.images)
        return context_job(self, session, inputs, *args, **kwargs)

    def fit(frames, width, height):
        fitted_inputs.append(any(frames is images for images in given))
        return fit_frames(frames, width, height)

    monkeypatch.setattr(vp.ContextPlanner, "job", job)
    monkeypatch.setattr(vp, "fit_frames", fit)
    store = store_with(**settings)
    bursts, _, _ = run_node(StreamingVace(models, SIZE, SIZE, store.snapshot()), store, 2)
    assert len(bursts) >= 2 and given  # chunks came out, their contexts were asked for
    assert any(fitted_inputs) == fitted
