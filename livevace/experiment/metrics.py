"""Numbers for the stratification experiment: how steady, how obedient and how stable a
generated video is. Plain numpy/OpenCV over uint8 RGB frames (H×W×3), so any video —
ours, Scope's, a reference — can be scored the same way.

- temporal consistency: optical-flow warp error between consecutive frames (Lai et al.,
  "Learning Blind Video Temporal Consistency", 2018): warp frame t onto frame t+1 with
  OpenCV DIS flow, and average |frame t+1 − warped t| over pixels whose forward and
  backward flows agree (occluded and out-of-frame pixels are left out). 0 = perfectly
  steady; real motion costs nothing, flicker and popping do.
- control adherence: Pearson correlation between each control frame and the same annotator
  run on the output frame — does the output still show the pose/depth/edges it was given?
  1 = follows it, 0 = ignores it.
- drift: Bhattacharyya distance between the colour histogram of each chunk and that of the
  first chunk. 0 = the palette holds, 1 = nothing in common.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from livevace.bench.report import Timing

HIST_BINS = 8
"""Per RGB channel: coarse enough that noise and small shifts do not count as drift."""
ADHERENCE_BLUR_PX = 2.0
"""Both maps are blurred this much so a one-pixel shift of a thin edge is not a miss."""


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _dis() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def warp_errors(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Per consecutive pair: mean absolute error (0..1) of frame t warped onto frame t+1."""
    dis = _dis()
    h, w = frames[0].shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)
    errors = []
    for a, b in zip(frames, frames[1:]):
        ga, gb = _grey(a), _grey(b)
        back = dis.calc(gb, ga, None)  # for each pixel of b: where it was in a
        fwd = dis.calc(ga, gb, None)
        where = grid + back
        warped = cv2.remap(a.astype(np.float32), where[..., 0], where[..., 1], cv2.INTER_LINEAR)
        fwd_at = cv2.remap(fwd, where[..., 0], where[..., 1], cv2.INTER_LINEAR)
        # forward-backward consistency (Sundaram et al. 2010): a round trip returns home
        loop = np.sum((back + fwd_at) ** 2, -1)
        valid = loop < 0.01 * (np.sum(back**2, -1) + np.sum(fwd_at**2, -1)) + 0.5
        valid &= (where[..., 0] >= 0) & (where[..., 0] <= w - 1)
        valid &= (where[..., 1] >= 0) & (where[..., 1] <= h - 1)
        diff = np.abs(b.astype(np.float32) - warped).mean(-1) / 255.0
        errors.append(float(diff[valid].mean()) if valid.any() else float("nan"))
    return np.asarray(errors)


def temporal_warp_error(frames: Sequence[np.ndarray]) -> float:
    """Mean warp error over the video (lower is steadier)."""
    return float(np.nanmean(warp_errors(frames))) if len(frames) > 1 else 0.0


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:  # a blank map (no person in frame): agree only if both blank alike
        return 1.0 if sx == sy and np.allclose(x, y) else 0.0
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def adherence_per_frame(controls: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
                        annotate: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Correlation of each control frame with `annotate(output)`, on blurred luma."""
    scores = []
    for control, output in zip(controls, outputs, strict=True):
        target = _grey(control).astype(np.float32)
        seen = _grey(annotate(output)).astype(np.float32)
        if seen.shape != target.shape:
            seen = cv2.resize(seen, target.shape[::-1], interpolation=cv2.INTER_AREA)
        target = cv2.GaussianBlur(target, (0, 0), ADHERENCE_BLUR_PX)
        seen = cv2.GaussianBlur(seen, (0, 0), ADHERENCE_BLUR_PX)
        scores.append(_correlation(target, seen))
    return np.asarray(scores)


def control_adherence(controls: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
                      annotate: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean correlation between the control video and the annotator run on the output."""
    return float(adherence_per_frame(controls, outputs, annotate).mean())


def colour_histogram(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Normalised RGB histogram (HIST_BINS³) of a group of frames."""
    hist = np.zeros((HIST_BINS,) * 3, np.float32)
    for frame in frames:
        hist += cv2.calcHist([np.ascontiguousarray(frame)], [0, 1, 2], None, [HIST_BINS] * 3,
                             [0, 256] * 3)
    return hist / max(float(hist.sum()), 1.0)


def drift_curve(chunks: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Per chunk: Bhattacharyya distance of its colour histogram from the first chunk's."""
    first = colour_histogram(chunks[0])
    return np.asarray([cv2.compareHist(first, colour_histogram(c), cv2.HISTCMP_BHATTACHARYYA)
                       for c in chunks])


@dataclass(frozen=True)
class VideoMetrics:
    """One strategy's scores, as the report prints them."""

    frames: int
    warp_error: float
    control_adherence: float | None
    drift_mean: float
    drift_last: float
    fps: float | None
    chunk_latency_p50_ms: float | None
    chunk_latency_p95_ms: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def measure(chunks: Sequence[Sequence[np.ndarray]],
            controls: Sequence[np.ndarray] | None = None,
            annotate: Callable[[np.ndarray], np.ndarray] | None = None,
            chunk_ms: Sequence[float] | None = None) -> VideoMetrics:
    """Every metric of one generated video, given as the chunks the pipeline produced, the
    control frames it was given (one per output frame), and each chunk's latency."""
    frames = [f for chunk in chunks for f in chunk]
    drift = drift_curve(chunks)
    adherence = (control_adherence(controls, frames, annotate)
                 if controls is not None and annotate is not None else None)
    timing = Timing.of(chunk_ms) if chunk_ms else None
    return VideoMetrics(
        frames=len(frames),
        warp_error=temporal_warp_error(frames),
        control_adherence=adherence,
        drift_mean=float(drift[1:].mean()) if len(drift) > 1 else 0.0,
        drift_last=float(drift[-1]),
        fps=len(frames) / (sum(chunk_ms) / 1e3) if chunk_ms else None,
        chunk_latency_p50_ms=timing.p50 if timing else None,
        chunk_latency_p95_ms=timing.p95 if timing else None,
    )
