"""Depth through our loading code: tiny random transformers / ONNX models saved in the real
folder layout of the models directory, compared with transformers' own preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from annotators_support import TinyMidas, astronaut, write_depth_anything, write_dpt_hybrid
from livevace.annotators import make_annotator
from livevace.annotators.depth import load_estimator, resize_target
from livevace.store.annotator_files import DEPTH_ANYTHING_V2_SMALL
from livevace.errors import ModelError


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_depth_anything(root)
    write_dpt_hybrid(root)
    return root


@pytest.fixture(autouse=True)
def models_dir(models: Path, monkeypatch) -> Path:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(models))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(models / "no-scope"))
    return models


def test_our_preprocessing_matches_transformers(models: Path) -> None:
    from transformers import AutoModelForDepthEstimation, DPTImageProcessorPil

    folder = models / DEPTH_ANYTHING_V2_SMALL.folder
    img = astronaut((200, 120))
    ours = load_estimator("depth_anything_v2_small")(torch.from_numpy(img[None]))
    processor = DPTImageProcessorPil.from_pretrained(folder)
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        ref = model(**processor(images=img, return_tensors="pt")).predicted_depth
    assert ours.shape == ref.shape == (1, 308, 518)
    corr = np.corrcoef(ours.flatten().numpy(), ref.flatten().numpy())[0, 1]
    assert corr > 0.999  # bicubic resampling differs only in rounding (torch vs PIL)


def test_resize_target_follows_dpt_rules() -> None:
    assert resize_target(320, 576, (518, 518), True, 14) == (294, 518)
    assert resize_target(576, 320, (518, 518), True, 14) == (518, 294)
    assert resize_target(3, 5, (518, 518), True, 14) == (308, 518)
    assert resize_target(320, 576, (384, 384), False, 1) == (384, 384)


@pytest.mark.parametrize("model", ["depth_anything_v2_small", "dpt_hybrid"])
@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (320, 176), (120, 200)])
def test_depth_map_shape_and_range(model: str, shape: tuple[int, int]) -> None:
    depth = make_annotator("depth", model=model, smoothing=0, input_size=126)
    img = astronaut((shape[1], shape[0]))
    out = depth(img)
    assert out.shape == (*shape, 3) and out.dtype == np.uint8
    assert np.all(out == out[..., :1])
    if min(shape) > 16:
        assert out.min() <= 10 and out.max() >= 245  # normalised per frame to the full range


def test_a_chunk_equals_frame_by_frame() -> None:
    frames = [astronaut((96, 64)), astronaut((96, 64))[::-1].copy(), astronaut((96, 64))[:, ::-1].copy()]
    batched = make_annotator("depth", smoothing=0, input_size=98).batch(frames)
    single = make_annotator("depth", smoothing=0, input_size=98)
    for got, frame in zip(batched, frames):
        assert np.abs(got.astype(int) - single(frame).astype(int)).max() <= 1


def test_smoothing_steadies_noisy_video_and_restarts_on_a_cut() -> None:
    rng = np.random.default_rng(0)
    base = astronaut((112, 84))
    clip = [np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8) for _ in range(10)]

    def run(smoothing: float) -> np.ndarray:
        depth = make_annotator("depth", smoothing=smoothing, input_size=98)
        return np.array([depth(f)[..., 0] for f in clip], np.float32)

    raw, smooth = run(0.0), run(0.7)
    flicker = lambda maps: float(np.abs(np.diff(maps[3:], axis=0)).mean())  # noqa: E731
    assert flicker(smooth) < 0.6 * flicker(raw)

    depth = make_annotator("depth", smoothing=0.9, input_size=98)
    fresh = make_annotator("depth", smoothing=0, input_size=98)
    for f in clip[:4]:
        depth(f)
    cut = 255 - base  # a different scene: the average starts again, no ghost of the last
    np.testing.assert_array_equal(depth(cut), fresh(cut))


def test_midas_small_onnx_through_opencv(models: Path) -> None:
    tiny = TinyMidas()
    tiny.write(models)
    img = astronaut((160, 96))
    estimator = load_estimator("midas_small")
    ours = estimator(torch.from_numpy(np.stack([img, img[::-1].copy()]))).numpy()
    assert ours.shape == (2, 256, 256)
    np.testing.assert_allclose(ours[0], tiny(img), atol=1e-4)
    np.testing.assert_allclose(ours[1], tiny(img[::-1].copy()), atol=1e-4)
    out = make_annotator("depth", model="midas_small")(img)
    assert out.shape == img.shape


def test_missing_weights_name_models_pull(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="livevace models pull depth_anything_v2_small"):
        make_annotator("depth")
    with pytest.raises(ModelError, match="livevace models pull midas_small"):
        make_annotator("depth", model="midas_small")
    with pytest.raises(ModelError, match="unknown depth model"):
        make_annotator("depth", model="zoe")


@pytest.mark.gpu
def test_cuda_fp16_matches_cpu() -> None:
    img = astronaut((176, 96))
    cpu = make_annotator("depth", smoothing=0, device="cpu")(img).astype(int)
    gpu = make_annotator("depth", smoothing=0, device="cuda")(img).astype(int)
    assert np.abs(cpu - gpu).mean() < 3


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_graphs_made_only_while_learning_replay_the_eager_network(models: Path,
                                                                      compile: bool) -> None:
    """The depth network's CUDA graph per chunk shape: made inside `learning()` only, then
    replayed for new frames of that shape with the eager call's result (to fp16 rounding
    when compiled); a shorter chunk replays it on its rows; any other shape runs eagerly."""
    from livevace.annotators.depth import TransformersDepth

    estimator = TransformersDepth.from_folder(models / DEPTH_ANYTHING_V2_SMALL.folder, "cuda",
                                              input_size=126)
    estimator.graphs = type(estimator.graphs)(estimator.forward, "depth", compile=compile,
                                              rows_independent=True)
    rng = np.random.default_rng(0)  # (no scikit-image on the GPU machine)
    picture = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    chunk = lambda flip: torch.from_numpy(np.stack(  # noqa: E731
        [picture[::flip].copy() for _ in range(4)])).cuda()
    assert estimator.graphs(chunk(1)) is None  # live and unknown: the caller runs it eagerly
    with estimator.learning():
        learned = estimator(chunk(1))
    assert estimator.graphs.shapes == [(4, 64, 96, 3)]
    tol = dict(rtol=2e-2, atol=2e-2 * float(learned.abs().max())) if compile else dict(rtol=0, atol=0)
    torch.testing.assert_close(learned, estimator.forward(chunk(1)), **tol)
    replayed = estimator(chunk(-1))  # other pictures, same shape: the graph's replay
    assert estimator.graphs.replays == 2
    torch.testing.assert_close(replayed, estimator.forward(chunk(-1)), **tol)
    assert not torch.allclose(replayed, learned)
    shorter = chunk(-1)[:3]  # a first chunk: the graph's first rows
    torch.testing.assert_close(estimator(shorter), estimator.forward(shorter), **tol)
    assert estimator.graphs.replays == 3
    longer = torch.from_numpy(np.stack([picture] * 5)).cuda()
    assert estimator.graphs(longer) is None and estimator.graphs.shapes == [(4, 64, 96, 3)]


def test_a_shorter_batch_replays_the_graph_with_the_fewest_rows_that_hold_it() -> None:
    from livevace.cuda_graphs import serving

    gpu, half = torch.device("cuda"), torch.float16
    keys = [((12, 64, 96, 3), half, gpu), ((4, 64, 96, 3), half, gpu),
            ((16, 32, 96, 3), half, gpu), ((8, 64, 96, 3), torch.float32, gpu)]
    assert serving(((3, 64, 96, 3), half, gpu), keys) == keys[1]
    assert serving(((9, 64, 96, 3), half, gpu), keys) == keys[0]
    assert serving(((12, 64, 96, 3), half, gpu), keys) == keys[0]
    assert serving(((13, 64, 96, 3), half, gpu), keys) is None  # more rows than any
    assert serving(((2, 32, 64, 3), half, gpu), keys) is None  # another picture size
    assert serving(((6, 64, 96, 3), torch.float32, gpu), keys) == keys[3]
    assert serving(((6, 64, 96, 3), half, torch.device("cuda", 1)), keys) is None
    assert serving(((6, 64, 96), half, gpu), keys) is None
    assert serving(((), half, gpu), [((), half, gpu)]) is None  # a scalar has no rows


@pytest.mark.gpu
def test_a_shape_that_cannot_be_captured_runs_eagerly_after_one_warning(caplog) -> None:
    """A network that syncs with the host cannot be captured: said once, then None (the
    caller's eager run) for that shape, never a failed chunk."""
    import logging

    from livevace.cuda_graphs import ShapeGraphs

    graphs = ShapeGraphs(lambda x: x * float(x.sum().item()), "syncing net", compile=False)
    x = torch.ones(2, 3, device="cuda")
    with caplog.at_level(logging.WARNING, logger="livevace"), graphs.learning():
        assert graphs(x) is None and graphs(x) is None
    assert graphs.shapes == []
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "syncing net: no CUDA graph for chunks of 2×3"]
    torch.testing.assert_close(x * 6.0, torch.full((2, 3), 6.0, device="cuda"))  # GPU usable
    torch.manual_seed(0)
    first = torch.rand(4, device="cuda")  # the device's random generator too
    torch.manual_seed(0)
    assert torch.equal(torch.rand(4, device="cuda"), first)
