"""Gray, edges and scribble on synthetic frames with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from livevace.annotators import FrameError, UnknownAnnotatorError, make_annotator
from livevace.params import CONTROLS


def square(h: int = 64, w: int = 96, lo: int = 0, hi: int = 255) -> np.ndarray:
    img = np.full((h, w, 3), lo, np.uint8)
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = hi
    return img


def test_gray_is_luma_in_three_channels() -> None:
    img = np.zeros((8, 10, 3), np.uint8)
    img[..., 0] = 255  # pure red: Rec.601 luma 0.299 * 255 ≈ 76
    out = make_annotator("gray")(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.all(out == out[..., :1]) and abs(int(out[0, 0, 0]) - 76) <= 1


@pytest.mark.parametrize("contrast", [(0, 255), (40, 70)])
def test_edges_follow_the_square_outline_at_any_contrast(contrast: tuple[int, int]) -> None:
    img = square(lo=contrast[0], hi=contrast[1])
    out = make_annotator("edges")(img)
    edge = out[..., 0] > 0
    assert np.all(out == out[..., :1])
    ys, xs = np.nonzero(edge)
    # the edges lie on the square's border (±2 px), nowhere else
    near_border = (np.minimum(np.abs(ys - 16), np.abs(ys - 47)) <= 2) | (
        np.minimum(np.abs(xs - 24), np.abs(xs - 71)) <= 2)
    assert near_border.all()
    assert edge[16:48, 22:27].sum() >= 20  # left side found along its length
    assert not edge[24:40, 34:62].any()     # flat inside stays black


def test_scribble_is_soft_and_thicker_than_edges() -> None:
    img = square(h=128, w=128)
    hard = make_annotator("edges")(img)[..., 0]
    soft = make_annotator("scribble")(img)[..., 0]
    assert (soft > 0).sum() > 2 * (hard > 0).sum()
    assert len(np.unique(soft)) > 10  # graded values, not just 0/255
    assert soft[64, 64] == 0 and soft[32, 32] > 0


@pytest.mark.parametrize("name", ["gray", "edges", "scribble", "none"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 33), (321, 181)])
def test_odd_sizes_keep_their_shape(name: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = make_annotator(name)(img)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_bad_input_and_unknown_names_are_user_errors() -> None:
    with pytest.raises(FrameError):
        make_annotator("edges")(np.zeros((4, 4), np.uint8))
    with pytest.raises(FrameError):
        make_annotator("gray")(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UnknownAnnotatorError, match="choose one of"):
        make_annotator("canny")


def test_every_registry_control_has_a_factory() -> None:
    from livevace.annotators.factory import _FACTORIES

    assert set(CONTROLS) == set(_FACTORIES)
