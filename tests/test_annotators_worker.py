"""The off-thread worker: chunk order, live switching, fallback, errors."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from livevace.annotators import AnnotatorWorker, FrameError, make_annotator, make_person_mask


def clip(n: int = 6, h: int = 48, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w + 2 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, i:i + w]) for i in range(n)]  # a panning picture


def through_worker(control: str, frames: list[np.ndarray], chunk: int) -> list[np.ndarray]:
    """Submit every chunk before collecting any, as the pipeline does."""
    with AnnotatorWorker(control) as worker:
        futures = [worker.submit(frames[i:i + chunk]) for i in range(0, len(frames), chunk)]
        return [out for future in futures for out in future.result()]


@pytest.mark.parametrize("control", ["edges", "flow"])  # stateless (pooled) and stateful (in order)
def test_chunks_come_back_in_order_and_equal_direct_calls(control: str) -> None:
    frames = clip(8)
    direct = make_annotator(control)
    for got, frame in zip(through_worker(control, frames, 3), frames, strict=True):
        np.testing.assert_array_equal(got, direct(frame))


def test_switch_takes_effect_at_the_next_chunk() -> None:
    frames = clip(4)
    with AnnotatorWorker("gray") as worker:
        first = worker.submit(frames[:2])
        worker.switch("edges")
        second = worker.submit(frames[2:])
        a, b = first.result(), second.result()
        assert worker.active == "edges"
    np.testing.assert_array_equal(a[0], make_annotator("gray")(frames[0]))
    np.testing.assert_array_equal(b[0], make_annotator("edges")(frames[2]))


def test_work_runs_off_the_calling_thread() -> None:
    seen: list[str] = []

    class Spy:
        name, stateless = "spy", False

        def __call__(self, image: np.ndarray) -> np.ndarray:
            seen.append(threading.current_thread().name)
            return image

    with AnnotatorWorker("spy", factory=lambda name, **o: Spy()) as worker:
        worker.submit(clip(2)).result()
    assert seen and all(name.startswith("annotator-lane") for name in seen)


def test_missing_depth_weights_fall_back_to_edges_and_say_so(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "scope"))
    frames = clip(2)
    with caplog.at_level(logging.WARNING, logger="livevace.annotators"):
        with AnnotatorWorker("depth") as worker:
            out = worker.submit(frames).result()
            assert (worker.requested, worker.active) == ("depth", "edges")
    assert "livevace models pull depth_anything_v2_small" in caplog.text
    assert "falling back to edges" in caplog.text
    np.testing.assert_array_equal(out[0], make_annotator("edges")(frames[0]))


def test_bad_frames_fail_their_chunk_only() -> None:
    with AnnotatorWorker("gray") as worker:
        bad = worker.submit([np.zeros((4, 4), np.uint8)])
        good = worker.submit(clip(1))
        with pytest.raises(FrameError):
            bad.result()
        assert good.result()[0].shape == (48, 64, 3)


def test_person_masks_through_the_worker() -> None:
    frames = [np.zeros((64, 96, 3), np.uint8)] * 3
    with AnnotatorWorker("person", factory=lambda name, **o: make_person_mask(**o),
                         fallback=None) as worker:
        masks = worker.submit(frames).result()
    assert [m.shape for m in masks] == [(64, 96)] * 3 and masks[0].dtype == np.float32


def test_a_control_switched_away_before_use_is_released() -> None:
    closed: list[str] = []

    class Closing:
        stateless = False

        def __init__(self, name: str) -> None:
            self.name = name

        def __call__(self, image: np.ndarray) -> np.ndarray:
            return image

        def close(self) -> None:
            closed.append(self.name)

    with AnnotatorWorker("a", factory=lambda name, **o: Closing(name)) as worker:
        worker.switch("b")  # "a" was never used by a chunk
        worker.switch("c")
        worker.submit(clip(1)).result()
        assert worker.active == "c"
    assert sorted(closed) == ["a", "b", "c"]  # a and b when superseded, c at close


class Failing:
    """An annotator that breaks while it runs (a CUDA error, a backend crash)."""

    name, stateless = "failing", False

    def __call__(self, image: np.ndarray) -> np.ndarray:
        raise RuntimeError("device lost")


def factory(name: str, **options) -> object:
    if name == "failing":
        return Failing()
    if name == "corrupt":
        raise OSError("model.safetensors: header too large\nsecond line")
    return make_annotator(name, **options)


def test_an_annotator_failing_while_it_runs_falls_back_with_one_line(caplog) -> None:
    frames = clip(4)
    with caplog.at_level(logging.WARNING, logger="livevace.annotators"):
        with AnnotatorWorker("failing", factory=factory) as worker:
            first = worker.submit(frames[:2]).result()
            second = worker.submit(frames[2:]).result()
            assert (worker.requested, worker.active) == ("failing", "edges")
    edges = make_annotator("edges")
    np.testing.assert_array_equal(first[0], edges(frames[0]))
    np.testing.assert_array_equal(second[1], edges(frames[3]))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["control failing failed (RuntimeError: device lost); falling back to edges"]


def test_an_annotator_that_cannot_start_falls_back_whatever_the_error(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="livevace.annotators"):
        with AnnotatorWorker("corrupt", factory=factory) as worker:
            out = worker.submit(clip(1)).result()
            assert worker.active == "edges"
    assert out[0].shape == (48, 64, 3)
    assert [r.getMessage() for r in caplog.records] == [
        "control corrupt unavailable (OSError: model.safetensors: header too large); "
        "falling back to edges"]


def test_without_a_fallback_every_chunk_gets_the_same_error_until_a_switch() -> None:
    with AnnotatorWorker("corrupt", factory=factory, fallback=None) as worker:
        futures = [worker.submit(clip(1)) for _ in range(3)]
        errors = [f.exception() for f in futures]
        assert all(isinstance(e, OSError) and "header too large" in str(e) for e in errors)
        worker.switch("gray")
        assert worker.submit(clip(1)).result()[0].shape == (48, 64, 3)


def test_only_a_learning_chunk_runs_inside_the_annotators_learning_window() -> None:
    """`prepare` submits its warm-up chunks with learn=True: the annotator may compile and
    capture then, and never for a live chunk."""
    from contextlib import contextmanager

    class Learner:
        stateless = False

        def __init__(self) -> None:
            self.open, self.seen = False, []

        @contextmanager
        def learning(self):
            self.open = True
            try:
                yield
            finally:
                self.open = False

        def batch(self, frames):
            self.seen.append(self.open)
            return frames

    learner = Learner()
    with AnnotatorWorker("learner", factory=lambda name, **o: learner) as worker:
        worker.submit(clip(2)).result()
        worker.submit(clip(2), learn=True).result()
        worker.submit(clip(2)).result()
        assert worker.submit(clip(1), learn=True).result()[0].shape == (48, 64, 3)
    assert learner.seen == [False, True, False, True]
    assert not learner.open
