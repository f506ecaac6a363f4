"""What the stratification experiment leaves behind: a metrics table (JSON for tools,
Markdown for people) and videos — one per strategy and a labelled side-by-side grid, so the
differences the numbers claim can be seen."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import av
import cv2
import numpy as np

from livevace.experiment.metrics import VideoMetrics

LEGEND = {
    "warp_error": "optical-flow warp error between consecutive frames, 0..1 (lower = steadier)",
    "control_adherence": "correlation of the control with the annotator run on the output "
                         "(higher = follows the control)",
    "drift_mean": "colour-histogram distance from the first chunk, mean over chunks "
                  "(lower = palette holds)",
    "drift_last": "the same distance for the last chunk",
    "fps": "output frames per second of generation",
    "chunk_latency_p50_ms": "median time to generate one chunk",
    "chunk_latency_p95_ms": "95th percentile time to generate one chunk",
}
LABEL_HEIGHT = 22


@dataclass(frozen=True)
class StrategyResult:
    """One row of the table: a VACE strategy, its scales, its video and its scores."""

    name: str
    refinement_scale: float
    generation_scale: float
    video: str
    metrics: VideoMetrics

    def as_dict(self) -> dict:
        return {"name": self.name, "refinement_scale": self.refinement_scale,
                "generation_scale": self.generation_scale, "video": self.video,
                "metrics": self.metrics.as_dict()}


def write_metrics(results: Sequence[StrategyResult], out_dir: Path,
                  settings: dict | None = None) -> tuple[Path, Path]:
    """metrics.json and metrics.md in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "metrics.json", out_dir / "metrics.md"
    json_path.write_text(json.dumps({"settings": settings or {}, "legend": LEGEND,
                                     "strategies": [r.as_dict() for r in results]}, indent=2))
    md_path.write_text(markdown_table(results, settings))
    return json_path, md_path


def markdown_table(results: Sequence[StrategyResult], settings: dict | None = None) -> str:
    columns = list(LEGEND)
    lines = ["# Cache-stratified VACE", ""]
    if settings:
        lines += [", ".join(f"{k}: {v}" for k, v in settings.items()), ""]
    lines += ["| strategy | refinement | generation | " + " | ".join(columns) + " |",
              "|---|---:|---:|" + "---:|" * len(columns)]
    for r in results:
        values = r.metrics.as_dict()
        cells = [_cell(values[c]) for c in columns]
        lines.append(f"| {r.name} | {r.refinement_scale:g} | {r.generation_scale:g} | "
                     + " | ".join(cells) + " |")
    lines += [""] + [f"- **{name}**: {text}" for name, text in LEGEND.items()] + [""]
    return "\n".join(lines)


def _cell(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float) -> int:
    """H.264 MP4 of uint8 RGB frames (odd sizes padded by one pixel); returns the frame count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                h, w = frame.shape[:2]
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = w + w % 2, h + h % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast"}
            padded = cv2.copyMakeBorder(frame, 0, stream.height - frame.shape[0], 0,
                                        stream.width - frame.shape[1], cv2.BORDER_REPLICATE)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
            count += 1
        if stream is not None:
            container.mux(stream.encode())
    return count


def grid_frames(videos: Sequence[tuple[str, Iterable[np.ndarray]]],
                columns: int | None = None) -> Iterator[np.ndarray]:
    """Tiles the videos side by side, each under a label strip; shorter ones hold their last
    frame. Tiles take the size of the first video's first frame."""
    columns = columns or math.ceil(math.sqrt(len(videos)))
    rows = math.ceil(len(videos) / columns)
    iterators = [iter(frames) for _, frames in videos]
    current: list[np.ndarray | None] = [None] * len(videos)
    tile_hw: tuple[int, int] | None = None
    while True:
        advanced = False
        for i, it in enumerate(iterators):
            frame = next(it, None)
            if frame is not None:
                current[i], advanced = frame, True
        if not advanced:
            return
        if tile_hw is None:
            tile_hw = next(f for f in current if f is not None).shape[:2]
        th, tw = tile_hw
        canvas = np.zeros((rows * (th + LABEL_HEIGHT), columns * tw, 3), np.uint8)
        for i, (label, _) in enumerate(videos):
            y, x = (i // columns) * (th + LABEL_HEIGHT), (i % columns) * tw
            cv2.putText(canvas, label, (x + 4, y + LABEL_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (255, 255, 255), 1, cv2.LINE_AA)
            if current[i] is not None:
                tile = current[i] if current[i].shape[:2] == tile_hw else cv2.resize(
                    current[i], (tw, th), interpolation=cv2.INTER_AREA)
                canvas[y + LABEL_HEIGHT:y + LABEL_HEIGHT + th, x:x + tw] = tile
        yield canvas


def write_grid(videos: Sequence[tuple[str, Iterable[np.ndarray]]], path: Path, fps: float,
               columns: int | None = None) -> int:
    """The side-by-side comparison video; returns its frame count."""
    return write_video(grid_frames(videos, columns), path, fps)


def read_video(path: Path) -> Iterator[np.ndarray]:
    """Decoded uint8 RGB frames of a video file (to score renders made earlier or by Scope)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")
