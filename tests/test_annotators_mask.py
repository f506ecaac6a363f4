"""Person mask on a real photograph with MediaPipe's selfie segmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotators_support import astronaut, write_selfie_segmenter
from livevace.annotators import make_person_mask
from livevace.errors import ModelError


def check_covers_the_person(mask: np.ndarray) -> None:
    assert mask.dtype == np.float32 and mask.shape == (512, 512)
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert mask[150:300, 100:300].mean() > 0.8  # her face and suit
    assert mask[:60, :60].mean() < 0.05         # flag in the corner
    assert mask[60:200, 380:480].mean() < 0.05  # the shuttle model


@pytest.mark.parametrize("landscape", [True, False])
def test_mask_covers_the_astronaut(landscape: bool) -> None:
    mask = make_person_mask(landscape=landscape)
    check_covers_the_person(mask(astronaut()))
    mask.close()


def test_inverse_mask_is_the_background() -> None:
    img = astronaut()
    person = make_person_mask(smoothing=0)(img)
    background = make_person_mask(inverse=True, smoothing=0)(img)
    np.testing.assert_allclose(person + background, 1.0, atol=1e-6)


def test_empty_scene_and_odd_sizes() -> None:
    mask = make_person_mask()
    assert mask(np.full((320, 576, 3), 90, np.uint8)).max() < 0.1
    for shape in [(1, 1), (7, 5), (321, 181)]:
        out = mask(np.zeros((*shape, 3), np.uint8))
        assert out.shape == shape and out.dtype == np.float32


def test_smoothing_steadies_a_flickering_mask_and_restarts_on_a_cut() -> None:
    rng = np.random.default_rng(0)
    img = astronaut((256, 256))
    noisy = [np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    raw, smooth = make_person_mask(smoothing=0), make_person_mask(smoothing=0.7)
    r = np.array([raw(f) for f in noisy])
    s = np.array([smooth(f) for f in noisy])
    assert np.abs(np.diff(s, axis=0)).mean() < 0.6 * np.abs(np.diff(r, axis=0)).mean()
    empty = smooth(np.zeros_like(img))  # a cut to black: no ghost of the person
    assert empty.max() < 0.1


def test_tasks_backend_from_the_models_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    write_selfie_segmenter(tmp_path)
    mask = make_person_mask(backend="tasks")
    check_covers_the_person(mask(astronaut()))
    mask.close()


def test_missing_tasks_file_names_models_pull(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "scope"))
    with pytest.raises(ModelError, match="livevace models pull selfie_segmenter"):
        make_person_mask(backend="tasks")
