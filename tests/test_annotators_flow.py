"""Optical flow on synthetic motion with a known answer, and the colour wheel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livevace.annotators import make_annotator
from livevace.annotators.flow import flow_to_rgb

_rng = np.random.default_rng(1)
TEXTURE = _rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
BACKGROUND = cv2.GaussianBlur(_rng.integers(0, 256, (160, 250, 3), dtype=np.uint8), (0, 0), 2)


def scene(x: int, y: int, h: int = 160, w: int = 250) -> np.ndarray:
    """A textured square over a still, textured background (real scenes have texture;
    flow on flat areas is undefined)."""
    img = cv2.resize(BACKGROUND, (w, h)) if (h, w) != BACKGROUND.shape[:2] else BACKGROUND.copy()
    img[y:y + 48, x:x + 48] = TEXTURE[:max(0, h - y), :max(0, w - x)]
    return img


@pytest.mark.parametrize("step", [(5, 0), (-6, 2), (0, 4), (0, -4), (3, 3)])
def test_moving_square_flows_in_its_direction(step: tuple[int, int]) -> None:
    flow = make_annotator("flow")
    x0, y0 = 90, 50
    flow(scene(x0, y0))
    field = flow.flow(scene(x0 + step[0], y0 + step[1]))
    inside = field[y0 + 12:y0 + 36, x0 + 12:x0 + 36].reshape(-1, 2).mean(axis=0)
    assert inside == pytest.approx(step, abs=0.5)
    assert np.abs(field[:, :60]).max() < 0.5  # the background stays still


def test_rendering_colours_motion_and_leaves_stillness_white() -> None:
    flow = make_annotator("flow")
    first = flow(scene(90, 50))
    assert (first == 255).all()  # no previous frame: no motion
    out = flow(scene(96, 50))  # moving right
    square = out[62:86, 102:126].reshape(-1, 3).mean(axis=0)
    assert square[0] > 200 and square[2] < 120  # rightward is red on the Middlebury wheel
    assert (out[:, :60] > 230).all()  # still background is (near) white


def test_colour_wheel_directions_are_distinct() -> None:
    dirs = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1)}
    colours = {k: tuple(flow_to_rgb(np.array([[v]], np.float32), 1.0)[0, 0]) for k, v in dirs.items()}
    assert colours["right"] == (255, 0, 0)
    assert len(set(colours.values())) == 4
    half = flow_to_rgb(np.array([[[0.5, 0.0]]], np.float32), 1.0)[0, 0]
    assert half[0] == 255 and 100 < half[1] < 150  # half speed: halfway to white


def test_reset_and_size_change_restart_from_white() -> None:
    flow = make_annotator("flow")
    flow(scene(90, 50))
    flow.reset()
    assert (flow(scene(96, 50)) == 255).all()
    assert (flow(scene(90, 50, h=97, w=31)) == 255).all()  # new size: no previous frame


@pytest.mark.parametrize("shape", [(1, 1), (9, 13), (321, 181)])
def test_odd_sizes(shape: tuple[int, int]) -> None:
    flow = make_annotator("flow")
    rng = np.random.default_rng(0)
    for _ in range(2):
        out = flow(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
        assert out.shape == (*shape, 3) and out.dtype == np.uint8
