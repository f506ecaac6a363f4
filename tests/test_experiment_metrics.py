"""Experiment metrics on synthetic videos whose answers are known, and the report files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from livevace.experiment import metrics, report

H, W, N = 96, 128, 8


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A smooth random texture, large enough to pan across."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (320, 400, 3)).astype(np.float32), (0, 0), 3)
    return cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def pan(texture: np.ndarray, dx: int, dy: int, n: int = N) -> list[np.ndarray]:
    return [texture[20 + dy * t:20 + dy * t + H, 20 + dx * t:20 + dx * t + W].copy() for t in range(n)]


def naive_difference(frames: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(a.astype(float) - b).mean() / 255 for a, b in zip(frames, frames[1:])]))


def edges(frame: np.ndarray) -> np.ndarray:
    """A real annotator of the kind the node runs: Canny edges as an RGB control frame."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(cv2.Canny(grey, 40, 120), cv2.COLOR_GRAY2RGB)


# --- temporal consistency ------------------------------------------------------------------

def test_static_video_has_no_warp_error(texture: np.ndarray) -> None:
    assert metrics.temporal_warp_error(pan(texture, 0, 0)) == 0.0


def test_motion_is_compensated_by_the_flow(texture: np.ndarray) -> None:
    frames = pan(texture, 3, 2)
    assert naive_difference(frames) > 0.03  # the pixels do change a lot
    assert metrics.temporal_warp_error(frames) < 0.005  # but nothing flickers


def test_flicker_and_noise_are_penalised(texture: np.ndarray) -> None:
    steady = pan(texture, 3, 2)
    flicker = [np.clip(f.astype(int) + (30 if t % 2 else -30), 0, 255).astype(np.uint8)
               for t, f in enumerate(steady)]
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(N)]
    errors = [metrics.temporal_warp_error(v) for v in (steady, flicker, noise)]
    assert errors[0] < 0.005 < 0.15 < errors[1] and errors[2] > 0.15
    assert metrics.warp_errors(flicker).shape == (N - 1,)


# --- control adherence ---------------------------------------------------------------------

def test_control_equal_to_the_annotated_output_correlates_one(texture: np.ndarray) -> None:
    outputs = pan(texture, 2, 1)
    controls = [edges(f) for f in outputs]
    assert metrics.control_adherence(controls, outputs, edges) == pytest.approx(1.0)


def test_adherence_falls_when_the_output_ignores_the_control(texture: np.ndarray) -> None:
    outputs = pan(texture, 2, 1)
    controls = [edges(f) for f in outputs]
    shifted = [np.roll(f, 1, axis=1) for f in outputs]  # a one-pixel slip still counts
    unrelated = pan(texture[::-1].copy(), 2, 1)
    inverted = [255 - c for c in controls]
    assert metrics.control_adherence(controls, shifted, edges) > 0.7
    assert abs(metrics.control_adherence(controls, unrelated, edges)) < 0.2
    assert metrics.control_adherence(inverted, outputs, edges) == pytest.approx(-1.0)


def test_blank_controls_agree_only_with_blank_annotations(texture: np.ndarray) -> None:
    black = np.zeros((H, W, 3), np.uint8)
    flat = np.full((H, W, 3), 128, np.uint8)
    assert metrics.control_adherence([black], [flat], edges) == 1.0  # no edges, none asked for
    assert metrics.control_adherence([black], [texture[:H, :W]], edges) == 0.0


def test_adherence_compares_at_the_control_size(texture: np.ndarray) -> None:
    outputs = pan(texture, 2, 1, n=2)
    controls = [cv2.resize(edges(f), (W // 2, H // 2), interpolation=cv2.INTER_AREA) for f in outputs]
    assert metrics.control_adherence(controls, outputs, edges) > 0.9


# --- drift ---------------------------------------------------------------------------------

def test_colour_drift_grows_as_the_palette_moves(texture: np.ndarray) -> None:
    base = pan(texture, 1, 0, n=12)
    chunks = []
    for c in range(4):  # each chunk pushes the picture further towards red
        tint = np.array([40 * c, -20 * c, -20 * c])
        chunks.append([np.clip(f.astype(int) + tint, 0, 255).astype(np.uint8) for f in base[3 * c:3 * c + 3]])
    curve = metrics.drift_curve(chunks)
    assert curve[0] == pytest.approx(0.0, abs=1e-6)
    assert all(a < b for a, b in zip(curve, curve[1:]))
    steady = metrics.drift_curve([base[i:i + 3] for i in range(0, 12, 3)])
    assert steady.max() < curve[1]


def test_measure_collects_every_metric(texture: np.ndarray) -> None:
    frames = pan(texture, 2, 1, n=9)
    chunks = [frames[:3], frames[3:6], frames[6:]]
    m = metrics.measure(chunks, controls=[edges(f) for f in frames], annotate=edges,
                        chunk_ms=[100.0, 50.0, 50.0])
    assert m.frames == 9 and m.fps == pytest.approx(9 / 0.2)
    assert m.chunk_latency_p50_ms == 50.0 and m.chunk_latency_p95_ms == 100.0
    assert m.control_adherence == pytest.approx(1.0)
    assert m.warp_error < 0.005 and m.drift_last < 0.1
    bare = metrics.measure(chunks)
    assert bare.control_adherence is None and bare.fps is None


# --- report --------------------------------------------------------------------------------

def _result(name: str, refinement: float, generation: float, warp: float) -> report.StrategyResult:
    m = metrics.VideoMetrics(frames=24, warp_error=warp, control_adherence=0.61, drift_mean=0.05,
                             drift_last=0.08, fps=31.5, chunk_latency_p50_ms=380.2,
                             chunk_latency_p95_ms=401.0)
    return report.StrategyResult(name, refinement, generation, f"output_{name}.mp4", m)


def test_metrics_table_in_json_and_markdown(tmp_path: Path) -> None:
    results = [_result("baseline", 1.0, 1.0, 0.0123), _result("strong", 0.2, 1.0, 0.0456)]
    json_path, md_path = report.write_metrics(results, tmp_path, {"source": "video:dance.mp4"})
    data = json.loads(json_path.read_text())
    assert [s["name"] for s in data["strategies"]] == ["baseline", "strong"]
    assert data["strategies"][1]["refinement_scale"] == 0.2
    assert data["strategies"][1]["metrics"]["warp_error"] == 0.0456
    assert set(data["legend"]) == set(results[0].metrics.as_dict()) - {"frames"}
    md = md_path.read_text()
    assert "| strong | 0.2 | 1 | 0.0456 | 0.6100 | 0.0500 | 0.0800 | 31.5 | 380.2 | 401.0 |" in md
    assert "source: video:dance.mp4" in md


def test_grid_video_tiles_labels_and_holds_the_shorter_video(tmp_path: Path) -> None:
    red = [np.full((64, 96, 3), (220, 30, 30), np.uint8)] * 3
    blue = [np.full((64, 96, 3), (30, 30, 220), np.uint8)] * 5
    path = tmp_path / "grid.mp4"
    assert report.write_grid([("baseline", red), ("inverse", blue)], path, fps=16) == 5
    frames = list(report.read_video(path))
    assert len(frames) == 5
    last = frames[-1]
    assert last.shape == (64 + report.LABEL_HEIGHT, 2 * 96, 3)
    tiles = last[report.LABEL_HEIGHT:]
    left, right = tiles[:, :96].reshape(-1, 3).mean(0), tiles[:, 96:].reshape(-1, 3).mean(0)
    assert left[0] > 180 and left[2] < 70  # red held after its 3 frames ran out
    assert right[2] > 180 and right[0] < 70
    strip = last[:report.LABEL_HEIGHT]
    assert (strip[:, :96] > 128).any() and (strip[:, 96:] > 128).any()  # both labels drawn


def test_written_video_has_every_frame_and_an_even_size(tmp_path: Path) -> None:
    frames = [np.full((33, 47, 3), 10 * t, np.uint8) for t in range(6)]
    path = tmp_path / "output_baseline.mp4"
    assert report.write_video(frames, path, fps=16) == 6
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (48, 34)
    decoded = list(report.read_video(path))
    assert len(decoded) == 6
    assert abs(float(decoded[5][:33, :47].mean()) - 50) < 3
