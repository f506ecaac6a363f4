"""Pose on a real photograph with MediaPipe's real models (bundled and through Tasks)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from annotators_support import astronaut, write_pose_task
from livevace.annotators import make_annotator
from livevace.annotators.pose_render import COLOURS, render
from livevace.errors import ModelError


@pytest.fixture(scope="module")
def pose():
    annotator = make_annotator("pose", smoothing=False)
    yield annotator
    annotator.close()


def test_finds_the_astronaut(pose) -> None:
    body = pose.landmarks(astronaut()).bodies
    assert len(body) == 1 and body[0].shape == (33, 3)
    nose, left_shoulder, right_shoulder = body[0][0], body[0][11], body[0][12]
    assert nose[:2] == pytest.approx((0.44, 0.25), abs=0.03)
    assert right_shoulder[:2] == pytest.approx((0.22, 0.47), abs=0.04)
    assert left_shoulder[:2] == pytest.approx((0.60, 0.50), abs=0.04)


def test_map_is_an_openpose_drawing_where_the_person_is(pose) -> None:
    img = astronaut()
    assert pose(img).shape == img.shape and pose(img).dtype == np.uint8
    found = pose.landmarks(img)
    out = render(found, 512, 512)
    body = found.bodies[0]
    x, y = (body[0, :2] * 512).astype(int)
    assert tuple(out[y, x]) == COLOURS[0]  # nose joint: OpenPose red
    x, y = (body[12, :2] * 512).astype(int)
    assert tuple(out[y, x]) == COLOURS[2]  # right shoulder: orange
    assert not out[:40, :40].any() and not out[:, 480:].any()  # nothing far from her
    colours = {tuple(c) for c in out.reshape(-1, 3)[out.reshape(-1, 3).any(axis=1)]}
    assert len(colours) >= 8  # many limb colours, not a single-colour stick figure


def test_nobody_in_frame_gives_a_black_map(pose) -> None:
    pose.reset()
    for _ in range(2):
        assert not pose(np.full((320, 576, 3), 30, np.uint8)).any()


NOBODY = "pose: no person found in the picture"


@pytest.mark.parametrize("every, notes", [(0.0, 2), (float("inf"), 1)])
def test_nobody_in_frame_is_said_once_each_time_people_leave(caplog, every, notes) -> None:
    """A blank picture says 'no person' once, not per frame; again only after someone was
    seen in between, and no more often than `note_every` (inf: once per annotator)."""
    annotator = make_annotator("pose", smoothing=False)
    annotator.note_every = every
    blank = np.zeros((320, 576, 3), np.uint8)
    with caplog.at_level(logging.INFO, logger="livevace.annotators"):
        for _ in range(3):
            annotator(blank)
        assert [m for m in caplog.messages if NOBODY in m] != []
        assert annotator.landmarks(astronaut()).bodies
        annotator.batch([blank] * 4)
    annotator.close()
    assert sum(NOBODY in m for m in caplog.messages) == notes


def test_a_first_blank_picture_is_said_at_the_default_rate(caplog) -> None:
    annotator = make_annotator("pose", smoothing=False)
    with caplog.at_level(logging.INFO, logger="livevace.annotators"):
        annotator.batch([np.zeros((8, 8, 3), np.uint8)] * 6)
    annotator.close()
    assert sum(NOBODY in m for m in caplog.messages) == 1


@pytest.mark.parametrize("shape", [(1, 1), (20, 30), (321, 181), (181, 321)])
def test_odd_sizes(pose, shape: tuple[int, int]) -> None:
    img = astronaut((shape[1], shape[0]))
    assert pose(img).shape == (*shape, 3)


def test_smoothing_reduces_jitter_on_a_shaking_noisy_clip() -> None:
    rng = np.random.default_rng(0)
    base = astronaut((256, 256))
    clip = []
    for _ in range(24):
        dx, dy = rng.integers(-3, 4, size=2)
        frame = np.roll(base, (dy, dx), axis=(0, 1)).astype(np.int16)
        frame += rng.normal(0, 8, frame.shape).astype(np.int16)
        clip.append(np.clip(frame, 0, 255).astype(np.uint8))

    def nose_path(smoothing: bool) -> np.ndarray:
        annotator = make_annotator("pose", smoothing=smoothing)
        path = [annotator.landmarks(f).bodies[0][0, :2] for f in clip]
        annotator.close()
        return np.array(path[4:])  # after the filter has settled

    raw, smooth = nose_path(False), nose_path(True)
    jitter = lambda p: float(np.abs(np.diff(p, axis=0)).mean())  # noqa: E731
    assert jitter(smooth) < 0.5 * jitter(raw)
    assert np.abs(smooth.mean(0) - raw.mean(0)).max() < 0.01  # steadier, not displaced


def test_face_is_drawn_when_asked() -> None:
    annotator = make_annotator("pose", face=True, smoothing=False)
    img = astronaut()
    out = annotator(img)
    annotator.close()
    white = np.all(out == 255, axis=2)
    assert white[60:200, 150:300].sum() > 100 and not white[300:].any()


def test_tasks_backend_from_the_models_directory(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    write_pose_task(tmp_path)
    with caplog.at_level(logging.INFO, logger="livevace.annotators"):
        annotator = make_annotator("pose", backend="tasks", smoothing=False)
    assert "mediapipe tasks" in caplog.text
    body = annotator.landmarks(astronaut()).bodies
    annotator.close()
    assert len(body) == 1 and body[0][0, :2] == pytest.approx((0.44, 0.25), abs=0.03)


def test_several_people_through_tasks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    write_pose_task(tmp_path)
    img = astronaut()
    two = np.ascontiguousarray(np.concatenate([img, img[:, ::-1]], axis=1))
    annotator = make_annotator("pose", people=2, smoothing=False)  # auto → tasks
    bodies = annotator.landmarks(two).bodies
    annotator.close()
    noses = sorted(b[0, 0] for b in bodies)
    assert len(bodies) == 2 and noses == pytest.approx([0.22, 0.78], abs=0.03)


def test_missing_tasks_file_names_models_pull(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "scope"))
    with pytest.raises(ModelError, match="livevace models pull pose_landmarker_full"):
        make_annotator("pose", backend="tasks")


def _panning_clip(n: int = 12, step: int = 4) -> list[np.ndarray]:
    person = astronaut((200, 200))
    frames = []
    for i in range(n):
        frame = np.zeros((200, 320, 3), np.uint8)
        frame[:, 40 + i * step:240 + i * step] = person
        frames.append(frame)
    return frames


def _nose(pose_map: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(np.all(pose_map == COLOURS[0], axis=2))
    return np.array([xs.mean(), ys.mean()])


def test_a_chunk_with_stride_1_equals_frame_by_frame() -> None:
    clip = _panning_clip(6)
    a, b = make_annotator("pose", stride=1), make_annotator("pose")
    for got, frame in zip(a.batch(clip), clip):
        np.testing.assert_array_equal(got, b(frame))
    a.close()
    b.close()


def test_stride_2_interpolates_between_key_frames() -> None:
    clip = _panning_clip(12)
    every = make_annotator("pose", stride=1, smoothing=False)
    half = make_annotator("pose", stride=2, smoothing=False)
    full = [_nose(m) for m in every.batch(clip)]
    strided = [_nose(m) for m in half.batch(clip[:6]) + half.batch(clip[6:])]  # across chunks too
    every.close()
    half.close()
    # frame 0 of the very first chunk has no earlier key frame and borrows frame 1's
    assert np.abs(np.array(full[1:]) - np.array(strided[1:])).max() <= 2.5  # pixels
    xs = [p[0] for p in strided[1:]]
    assert all(b > a for a, b in zip(xs, xs[1:]))  # the nose keeps moving right, no stalls


QUIET_START = """
import sys
import numpy as np
from annotators_support import astronaut
from livevace.annotators import make_annotator, make_person_mask
for options in ({}, {"hands": True, "face": True}, {"backend": "tasks"}):
    pose = make_annotator("pose", **options)
    pose(astronaut()); pose.reset(); pose(np.zeros((64, 64, 3), np.uint8)); pose.close()
for backend in ("solutions", "tasks"):
    mask = make_person_mask(backend=backend)
    mask(astronaut()); mask.close()
print("done", flush=True)
"""


def test_mediapipe_starts_without_native_chatter_on_stderr(tmp_path: Path) -> None:
    """TFLite's delegate line, absl's banner and its W lines used to greet every start."""
    import subprocess
    import sys

    from annotators_support import write_selfie_segmenter

    write_pose_task(tmp_path)
    write_selfie_segmenter(tmp_path)
    tests = Path(__file__).parent
    env = {**os.environ, "LIVEVACE_MODELS_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    proc = subprocess.run([sys.executable, "-c", QUIET_START], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    assert proc.stderr == ""


def test_real_errors_pass_the_quiet_start(capfd) -> None:
    """Only the known start-up lines are dropped; anything else written to fd 2 (an E line,
    a Python message) comes out once the graph has started."""
    from livevace.annotators.mediapipe_backends import quiet_native_start

    lines = ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
             "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "W0000 00:00:1796629571.155787    7125 inference_feedback_manager.cc:114] Feedback",
             "E0000 00:00:1796629571.155787    7125 calculator_graph.cc:887] a real failure",
             "Traceback (most recent call last): something broke"]
    with quiet_native_start():
        os.write(2, "".join(f"{line}\n" for line in lines).encode())
    assert capfd.readouterr().err == f"{lines[3]}\n{lines[4]}\n"
