"""Annotator speed: ms per frame for every control, pose+edges together, and depth on GPU.

CPU annotators are timed one frame at a time on a moving clip of a person (scikit-image's
astronaut panning over a gradient, or `--video`), plus pose+edges both in sequence and
overlapped through two AnnotatorWorkers (the way the pipeline runs them). Depth is
Depth-Anything-V2-Small at its real shape with random weights built from its config (no
download; speed does not depend on weight values), timed end to end per chunk (upload,
preprocess, network, normalisation, download) and network-only, fp16 on CUDA.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from livevace.annotators import AnnotatorWorker, make_annotator, make_person_mask
from livevace.bench.report import Timing, table, time_cpu, write_result

CPU_ANNOTATORS = ("gray", "edges", "scribble", "flow", "pose", "person_mask")
ALL = (*CPU_ANNOTATORS, "pose+edges", "depth")

DEPTH_ANYTHING_V2_SMALL_PREPROCESSOR = {
    "size": {"height": 518, "width": 518}, "keep_aspect_ratio": True, "ensure_multiple_of": 14,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
"""preprocessor_config.json of depth-anything/Depth-Anything-V2-Small-hf (the part we read)."""


def depth_anything_v2_small(device: Any, dtype: Any, tiny: bool = False) -> Any:
    """Depth-Anything-V2-Small (24.8 M parameters: DINOv2-S/14, 12 layers, 384 wide, DPT
    head 48/96/192/384 → 64) with random weights; `tiny` shrinks it for CPU smoke runs."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    if tiny:
        backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                intermediate_size=64, patch_size=14, image_size=518,
                                out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
        config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32,
                                     neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                     head_hidden_size=8)
    else:
        backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                patch_size=14, image_size=518, out_indices=[3, 6, 9, 12],
                                reshape_hidden_states=False)
        config = DepthAnythingConfig(backbone_config=backbone)
    return DepthAnythingForDepthEstimation(config).to(device=device, dtype=dtype)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="576x320", help="WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--only", default=",".join(ALL), help="comma list of %s (default: all)" % ", ".join(ALL))
    parser.add_argument("--repeat", type=int, default=60, help="timed frames or chunks per row (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default: %(default)s)")
    parser.add_argument("--chunk", type=int, default=12, help="frames per worker/depth chunk (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="depth device: cuda, cpu or auto (default: %(default)s)")
    parser.add_argument("--dtype", default=None, help="depth dtype (default: fp16 on CUDA, fp32 on CPU)")
    parser.add_argument("--depth-input-size", type=int, default=None,
                        help="depth network target size (default: the model's 518)")
    parser.add_argument("--video", default=None, help="take frames from this video instead of the built-in clip")
    parser.add_argument("--tiny", action="store_true", help="a narrow depth model (CPU smoke run)")
    parser.add_argument("--out", default=None, help="results folder (default: bench/results)")


def run(args: argparse.Namespace) -> int:
    width, height = (int(v) for v in args.size.lower().split("x"))
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(ALL))
    if unknown:
        raise SystemExit(f"unknown annotator(s) {', '.join(unknown)}: choose from {', '.join(ALL)}")
    clip = _clip(width, height, max(2 * args.chunk, 24), args.video)
    rows: list[dict[str, Any]] = []
    for name in wanted:
        if name in CPU_ANNOTATORS:
            annotator = _make(name)
            rows.append(_time_frames(name, annotator, clip, args.repeat, args.warmup))
            if hasattr(annotator, "batch"):  # pose: key frames + interpolation per chunk
                rows.append(_time_chunks(f"{name} (chunk)", annotator, clip, args.chunk,
                                         max(3, args.repeat // args.chunk), args.warmup))
        elif name == "pose+edges":
            rows += _time_pose_and_edges(clip, args.repeat, args.warmup, args.chunk)
        elif name == "depth":
            rows += _time_depth(clip, args)
    load = _load_average()
    print(f"{width}x{height}, {_cpu_count()} CPU cores, load average {load} (other work on the "
          f"machine slows CPU rows), p50/p95 over {args.repeat} timed calls")
    print(table(rows, ["annotator", "device", "batch", "ms_per_frame", "p95_ms", "fps", "cpu_ms_per_frame"]))
    path = write_result("annotators", {"size": [width, height], "cpu_cores": _cpu_count(),
                                       "load_average": load, "rows": rows},
                        Path(args.out) if args.out else None)
    print(f"wrote {path}")
    return 0


def _make(name: str) -> Callable[[np.ndarray], np.ndarray]:
    return make_person_mask() if name == "person_mask" else make_annotator(name)


Measured = tuple[Timing, "float | None"]


def _measure(fn: Callable[[], Any], repeat: int, warmup: int) -> Measured:
    """Wall-clock timing, and the CPU time (all threads) per call: on a busy machine the
    wall clock includes waiting for a core, the CPU time is the work itself."""
    import time

    start = time.process_time()
    timing = time_cpu(fn, repeat, warmup)
    return timing, (time.process_time() - start) * 1e3 / (repeat + warmup)


def _row(name: str, device: str, batch: int, measured: Measured, per: int = 1) -> dict[str, Any]:
    timing, cpu_ms = measured
    ms = timing.p50 / per
    return {"annotator": name, "device": device, "batch": batch, "ms_per_frame": ms,
            "p95_ms": timing.p95 / per, "fps": 1000.0 / ms if ms > 0 else float("inf"),
            "cpu_ms_per_frame": cpu_ms / per if cpu_ms is not None else "", "timing": timing.as_dict()}


def _cycle(clip: list[np.ndarray]) -> Callable[[], np.ndarray]:
    state = {"i": 0}

    def next_frame() -> np.ndarray:
        state["i"] += 1
        return clip[state["i"] % len(clip)]

    return next_frame


def _time_frames(name: str, annotator: Callable[[np.ndarray], Any], clip: list[np.ndarray],
                 repeat: int, warmup: int) -> dict[str, Any]:
    frame = _cycle(clip)
    return _row(name, "cpu", 1, _measure(lambda: annotator(frame()), repeat, warmup))


def _chunks(clip: list[np.ndarray], chunk: int) -> Callable[[], list[np.ndarray]]:
    return _cycle([clip[i:i + chunk] for i in range(0, len(clip) - chunk + 1, chunk)])  # type: ignore[arg-type,return-value]


def _time_chunks(name: str, annotator: Any, clip: list[np.ndarray], chunk: int, repeat: int,
                 warmup: int) -> dict[str, Any]:
    frames = _chunks(clip, chunk)
    return _row(name, "cpu", chunk, _measure(lambda: annotator.batch(frames()), repeat, warmup), per=chunk)


def _time_pose_and_edges(clip: list[np.ndarray], repeat: int, warmup: int, chunk: int) -> list[dict[str, Any]]:
    pose, edges = make_annotator("pose"), make_annotator("edges")
    frame = _cycle(clip)

    def both() -> None:
        f = frame()
        pose(f)
        edges(f)

    rows = [_row("pose+edges (in turn)", "cpu", 1, _measure(both, repeat, warmup))]
    pose.close()
    which = _chunks(clip, chunk)
    with AnnotatorWorker("pose") as pw, AnnotatorWorker("edges") as ew:
        def overlapped() -> None:
            c = which()
            a, b = pw.submit(c), ew.submit(c)
            a.result()
            b.result()

        measured = _measure(overlapped, max(3, repeat // chunk), 2)
    rows.append(_row("pose+edges (2 workers)", "cpu", chunk, measured, per=chunk))
    return rows


def _time_depth(clip: list[np.ndarray], args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from livevace.annotators.depth import DepthAnnotator, TransformersDepth, pick_device
    from livevace.bench.report import time_cuda

    device = pick_device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (
        torch.float16 if device.type == "cuda" else torch.float32)
    model = depth_anything_v2_small(device, dtype, args.tiny)
    estimator = TransformersDepth(model, DEPTH_ANYTHING_V2_SMALL_PREPROCESSOR, args.depth_input_size)
    depth = DepthAnnotator(estimator=estimator)
    h, w = clip[0].shape[:2]
    label = f"depth_anything_v2_small{' (tiny)' if args.tiny else ''} {str(dtype).split('.')[-1]} " \
            f"@{'x'.join(map(str, estimator.input_shape(h, w)[::-1]))}"
    batches = [1, args.chunk] if device.type == "cuda" else [1]
    repeat = args.repeat if device.type == "cuda" or args.tiny else max(3, args.repeat // 20)
    rows = []
    for batch in batches:
        frames = _chunks(clip, batch)
        rows.append(_row(f"{label} end to end", str(device), batch,
                         _measure(lambda: depth.batch(frames()), repeat, args.warmup), per=batch))
        on_device = torch.from_numpy(np.stack(clip[:batch])).to(device)

        def network() -> None:
            with torch.inference_mode():
                estimator(on_device)

        measured = ((time_cuda(network, repeat, args.warmup), None) if device.type == "cuda"
                    else _measure(network, repeat, args.warmup))
        rows.append(_row(f"{label} network", str(device), batch, measured, per=batch))
    return rows


def _clip(width: int, height: int, n: int, video: str | None) -> list[np.ndarray]:
    """`n` frames: from a video, else a person panning across a gradient backdrop."""
    if video:
        capture = cv2.VideoCapture(video)
        frames = []
        while len(frames) < n:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height)))
        capture.release()
        if frames:
            return frames
        raise SystemExit(f"could not read frames from {video}")
    backdrop = np.zeros((height, width, 3), np.uint8)
    backdrop[..., 2] = np.linspace(40, 200, width, dtype=np.uint8)[None, :]
    backdrop[..., 1] = np.linspace(30, 120, height, dtype=np.uint8)[:, None]
    try:
        from skimage import data

        person = data.astronaut()
    except ImportError:  # runtime installs lack scikit-image: textured noise stands in
        person = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (512, 512, 3), np.uint8), (0, 0), 3)
    side = max(8, min(height, width))
    person = cv2.resize(person, (side, side), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        frame = backdrop.copy()
        x = int((width - side) * (0.5 + 0.5 * np.sin(2 * np.pi * i / n)))
        frame[:side, x:x + side] = person[:, : width - x]
        frames.append(frame)
    return frames


def _load_average() -> str:
    import os

    return "/".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
