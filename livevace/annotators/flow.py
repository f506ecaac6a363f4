"""Optical-flow control: OpenCV DIS flow between consecutive frames, drawn on the
Middlebury colour wheel (hue = direction, saturation = speed, white = still), the picture
VACE's flow task was trained on."""

from __future__ import annotations

import cv2
import numpy as np

from livevace.annotators.base import check_frame, luma

_PRESETS = {  # name: (DIS preset, finest pyramid level: 0 = full resolution)
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, 2),
    "fast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, 1),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 1),
}


def _colour_wheel() -> np.ndarray:
    """The 55-colour Middlebury wheel (Baker et al. 2011): red → yellow → green → cyan →
    blue → magenta → red, in segments of 15, 6, 4, 11, 13 and 6 steps."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    rows = []
    for n, start, end in segments:
        t = np.arange(n, dtype=np.float64)[:, None] / n
        rows.append((1 - t) * np.array(start) + t * np.array(end))
    return np.concatenate(rows) / 255.0


WHEEL = _colour_wheel()
_ANGLES, _SPEEDS = 512, 64


def _colour_table() -> np.ndarray:
    """Packed RGBA (uint32) for every (angle bin, speed bin): [_ANGLES·_SPEEDS].

    Middlebury indexes the wheel at (atan2(−v, −u)/π + 1)/2 · (n − 1), which is
    θ/2π · (n − 1) with θ = atan2(v, u) ∈ [0, 2π); speed r ∈ [0, 1] fades white → colour.
    One table lookup per pixel keeps drawing at a millisecond or two per frame.
    """
    n = len(WHEEL)
    fk = np.arange(_ANGLES, dtype=np.float64) / _ANGLES * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    f = (fk - k0)[:, None]
    hue = (1 - f) * WHEEL[k0 % n] + f * WHEEL[(k0 + 1) % n]  # [_ANGLES, 3]
    speed = np.arange(_SPEEDS, dtype=np.float64)[None, :, None] / (_SPEEDS - 1)
    colour = 1.0 - speed * (1.0 - hue[:, None, :])
    rgba = np.zeros((_ANGLES * _SPEEDS, 4), np.uint8)
    rgba[:, :3] = np.round(colour * 255.0).reshape(-1, 3)
    return rgba.view(np.uint32).ravel()  # one 32-bit gather per pixel is the fast path


_TABLE = _colour_table()


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Draw an H×W×2 flow field (pixels, x right, y down) as uint8 RGB.

    Speeds are divided by `max_magnitude` (default: the fastest pixel of this frame);
    the direction of motion picks the hue, zero motion is white.
    """
    u, v = cv2.split(np.asarray(flow, np.float32))
    rad, theta = cv2.cartToPolar(u, v)
    scale = max_magnitude if max_magnitude is not None else float(rad.max(initial=0.0))
    speed = cv2.convertScaleAbs(rad, alpha=(_SPEEDS - 1) / max(scale, 1e-6))  # saturates
    speed = np.minimum(speed, _SPEEDS - 1).astype(np.int32)
    angle = (theta * np.float32(_ANGLES / (2 * np.pi))).astype(np.int32) % _ANGLES
    rgba = np.take(_TABLE, angle * _SPEEDS + speed).view(np.uint8).reshape(*u.shape, 4)
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)


class FlowAnnotator:
    """Dense flow from the previous frame to this one; the first frame (or after `reset`, or
    a size change) is all white (no motion yet).

    preset: ultrafast | fast | medium. DIS's own presets stop at ¼ or ½ resolution and
    miss small fast objects; "fast" (DIS ultrafast patches down to ½ resolution) tracks a
    48-pixel square moving 6 pixels exactly, cheaply enough for one core (BENCHMARKS.md).
    min_magnitude (pixels per frame) keeps sensor noise in a still scene near white instead
    of stretching it to full colour.
    """

    name = "flow"
    stateless = False
    MIN_SIDE = 32  # DIS needs a few patches per pyramid level; smaller frames show no motion

    def __init__(self, preset: str = "fast", min_magnitude: float = 2.0) -> None:
        if preset not in _PRESETS:
            raise ValueError(f"flow preset must be one of {', '.join(_PRESETS)}")
        dis_preset, finest_scale = _PRESETS[preset]
        self._dis = cv2.DISOpticalFlow_create(dis_preset)
        self._dis.setFinestScale(finest_scale)
        self.min_magnitude = float(min_magnitude)
        self._previous: np.ndarray | None = None

    def flow(self, image: np.ndarray) -> np.ndarray:
        """The raw H×W×2 flow field in pixels (zero for the first frame)."""
        grey = luma(check_frame(image))
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape or min(grey.shape) < self.MIN_SIDE:
            return np.zeros((*grey.shape, 2), np.float32)
        return self._dis.calc(previous, grey, None)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        field = self.flow(image)
        peak = float(np.hypot(field[..., 0], field[..., 1]).max(initial=0.0))
        return flow_to_rgb(field, max(peak, self.min_magnitude))

    def reset(self) -> None:
        self._previous = None
