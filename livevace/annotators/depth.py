"""Depth control: monocular depth (near = white), steady over time.

Three estimators, chosen by the `depth_model` parameter, weights from the models directory
(`livevace models pull <name>`; never downloaded here):
- depth_anything_v2_small, dpt_hybrid: `transformers` AutoModelForDepthEstimation, on the
  GPU in fp16 when there is one, preprocessing done in torch on the device (no PIL);
- midas_small: MiDaS v2.1 small. No transformers port of it exists (transformers' DPT
  covers MiDaS 3.x only; v2.1 small is an EfficientNet-Lite3 CNN), so it runs as the
  ONNX export through OpenCV DNN, on the CPU, the light choice for machines without a GPU.

Every estimator predicts relative inverse depth; each frame is normalised between its 2nd
and 98th percentiles, and both those bounds and the map are averaged over time, restarting
on a scene cut, so the depth video does not breathe or flicker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any, ContextManager, Protocol, Sequence

import numpy as np

from livevace.store import annotator_files as weights
from livevace.annotators.base import check_frame
from livevace.annotators.smoothing import SceneCutDetector
from livevace.errors import ModelError

log = logging.getLogger("livevace.annotators")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DepthEstimator(Protocol):
    device: Any

    def __call__(self, frames: Any) -> Any:
        """uint8 tensor [B, H, W, 3] on `device` → float32 relative inverse depth [B, h, w]."""
        ...


def resize_target(height: int, width: int, size: tuple[int, int], keep_aspect_ratio: bool,
                  multiple: int) -> tuple[int, int]:
    """The network input size for a frame: DPT's rule (transformers' DPTImageProcessor) —
    with `keep_aspect_ratio`, scale both sides by whichever factor is closer to 1, then
    round each to a multiple of the patch size."""
    scale_h, scale_w = size[0] / height, size[1] / width
    if keep_aspect_ratio:
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h

    def to_multiple(v: float) -> int:
        return max(multiple, int(round(v / multiple)) * multiple)

    return to_multiple(scale_h * height), to_multiple(scale_w * width)


def pick_device(device: str = "auto") -> Any:
    """torch.device for "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TransformersDepth:
    """A transformers depth model plus its preprocessing, done in torch on the device.

    `preprocessor` is the model's preprocessor_config.json as a dict. `input_size`
    overrides its square target size (smaller is faster; the aspect ratio is kept the same
    way); DPT-Hybrid only accepts its trained size (384²) and ignores it.
    """

    def __init__(self, model: Any, preprocessor: dict[str, Any], input_size: int | None = None) -> None:
        import torch

        self.model = model.eval().requires_grad_(False)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        pre = preprocessor
        size = pre.get("size", {"height": 384, "width": 384})
        if isinstance(size, int):
            size = {"height": size, "width": size}
        self.size = (input_size, input_size) if input_size else (int(size["height"]), int(size["width"]))
        self.keep_aspect_ratio = bool(pre.get("keep_aspect_ratio", False))
        self.multiple = int(pre.get("ensure_multiple_of", 1) or 1)
        config = self.model.config
        if getattr(config, "model_type", "") == "depth_anything":
            self.multiple = max(self.multiple, int(config.patch_size))
        if getattr(config, "is_hybrid", False):  # ViT-hybrid takes exactly its trained size
            side = config.image_size
            self.size = (side, side) if isinstance(side, int) else tuple(side)
            self.keep_aspect_ratio = False
        rescale = float(pre.get("rescale_factor", 1 / 255))
        mean = pre.get("image_mean", IMAGENET_MEAN) if pre.get("do_normalize", True) else (0, 0, 0)
        std = pre.get("image_std", IMAGENET_STD) if pre.get("do_normalize", True) else (1, 1, 1)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) / rescale
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) / rescale
        from livevace.cuda_graphs import ShapeGraphs

        self.graphs = (ShapeGraphs(self.forward, "the depth network", rows_independent=True)
                       if self.device.type == "cuda" else None)
        """On CUDA: the whole call as a compiled CUDA graph per chunk shape, made in `prepare`
        (`learning`); much less GPU time and one launch instead of the eager network's Python
        on the annotator thread (`bench/NOTES_pipeline_speed.md` part 6). Each picture's depth
        is its own, so a shorter chunk (a session's first) replays a longer one's graph on
        its rows; a shape no graph holds runs eagerly."""

    @classmethod
    def from_folder(cls, folder: Path, device: str = "auto", dtype: str | None = None,
                    input_size: int | None = None) -> "TransformersDepth":
        """Load a folder in the Hugging Face layout (config.json, weights,
        preprocessor_config.json); fp16 on CUDA unless `dtype` says otherwise."""
        import torch
        from transformers import AutoModelForDepthEstimation

        where = pick_device(device)
        torch_dtype = getattr(torch, dtype) if dtype else (
            torch.float16 if where.type == "cuda" else torch.float32)
        model = AutoModelForDepthEstimation.from_pretrained(folder, dtype=torch_dtype).to(where)
        pre_file = folder / "preprocessor_config.json"
        pre = json.loads(pre_file.read_text()) if pre_file.is_file() else {}
        return cls(model, pre, input_size)

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        return resize_target(height, width, self.size, self.keep_aspect_ratio, self.multiple)

    def learning(self) -> ContextManager[None]:
        """Chunk shapes met inside get their compiled CUDA graph (`prepare` opens it)."""
        return self.graphs.learning() if self.graphs is not None else contextlib.nullcontext()

    def __call__(self, frames: Any) -> Any:
        out = self.graphs(frames) if self.graphs is not None else None
        return self.forward(frames) if out is None else out

    def forward(self, frames: Any) -> Any:
        """uint8 [B, H, W, 3] → relative inverse depth [B, h, w] float32, eagerly."""
        import torch.nn.functional as F

        x = frames.permute(0, 3, 1, 2).float()
        h, w = self.input_shape(*x.shape[-2:])
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
        x = ((x.clamp(0, 255) - self.mean) / self.std).to(self.dtype)
        return self.model(pixel_values=x).predicted_depth.float()


class OnnxMidasSmall:
    """MiDaS v2.1 small as ONNX through OpenCV DNN (CPU). The file declared in
    `weights.MIDAS_SMALL` takes RGB in 0..1 at 256×256 with ImageNet normalisation inside
    the graph and returns relative inverse depth [1, 256, 256]."""

    SIZE = 256

    def __init__(self, path: Path) -> None:
        import cv2
        import torch

        self._cv2 = cv2
        self.device = torch.device("cpu")
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as err:
            raise ModelError(f"{path} is not an ONNX model OpenCV can run ({str(err).strip()[:120]}); "
                             f"run `livevace models pull {weights.MIDAS_SMALL.key} --force`") from None

    def __call__(self, frames: Any) -> Any:
        import torch

        images = [f for f in frames.numpy()]
        blob = self._cv2.dnn.blobFromImages(images, 1 / 255.0, (self.SIZE, self.SIZE),
                                            swapRB=False, crop=False)
        self._net.setInput(blob)
        out = np.asarray(self._net.forward(), np.float32)
        return torch.from_numpy(out.reshape(len(images), self.SIZE, self.SIZE))


def load_estimator(model: str, device: str = "auto", dtype: str | None = None,
                   input_size: int | None = None) -> DepthEstimator:
    """The estimator for a `depth_model` choice, from the models directory (ModelError
    naming `livevace models pull` when its files are not there)."""
    if model not in weights.DEPTH_WEIGHTS:
        raise ModelError(f"unknown depth model {model!r}: choose one of "
                         f"{', '.join(weights.DEPTH_WEIGHTS)}")
    entry = weights.DEPTH_WEIGHTS[model]
    folder = entry.require()
    if model == "midas_small":
        return OnnxMidasSmall(folder / entry.files[0])
    from tqdm import tqdm

    with tqdm(total=1, desc=f"loading {entry.description}", unit="model", leave=False) as bar:
        estimator = TransformersDepth.from_folder(folder, device, dtype, input_size)
        bar.update()
    return estimator


class DepthAnnotator:
    """Near = white depth map (grey in three channels), same size as the frame.

    model: a `depth_model` choice; smoothing: weight of the past in the running averages
    (0 = per-frame normalisation only); device: auto | cpu | cuda[:n]; dtype: torch dtype
    name (default fp16 on CUDA); input_size: network input override (see TransformersDepth).
    On CUDA the work runs on the annotator's own stream, so it overlaps the generator.
    """

    name = "depth"
    stateless = False

    def __init__(self, model: str = "depth_anything_v2_small", smoothing: float = 0.5,
                 device: str = "auto", dtype: str | None = None, input_size: int | None = None,
                 estimator: DepthEstimator | None = None) -> None:
        import torch

        self._torch = torch
        self.estimator = estimator or load_estimator(model, device, dtype, input_size)
        self.device = self.estimator.device
        self.smoothing = float(min(max(smoothing, 0.0), 0.95))
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._cuts = SceneCutDetector()
        self._bounds: Any = None
        self._map: Any = None
        log.info("depth: %s on %s", model, self.device)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.batch([image])[0]

    def learning(self) -> ContextManager[None]:
        """The estimator makes its fast path for the chunk shapes met inside (`prepare`)."""
        learning = getattr(self.estimator, "learning", None)
        return learning() if learning is not None else contextlib.nullcontext()

    def batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """A chunk at once: one network call for all same-sized frames."""
        torch = self._torch
        images = [check_frame(i) for i in images]
        if not images:
            return []
        if len({i.shape for i in images}) > 1:
            return [out for i in images for out in self.batch([i])]
        cuts = [self._cuts(i) for i in images]
        with torch.inference_mode(), (
                torch.cuda.stream(self._stream) if self._stream else contextlib.nullcontext()):
            frames = torch.from_numpy(np.stack(images))
            if self.device.type == "cuda":
                frames = frames.pin_memory().to(self.device, non_blocking=True)
            depth = self.estimator(frames)
            maps = self._normalise(depth, cuts, images[0].shape[:2])
            out = maps.cpu().numpy()
        return [np.repeat(m[..., None], 3, axis=2) for m in out]

    def _normalise(self, depth: Any, cuts: list[bool], size: tuple[int, int]) -> Any:
        torch = self._torch
        flat = depth.flatten(1)
        if flat.shape[1] > 65536:  # quantiles of a subsample: same answer, far cheaper
            flat = flat[:, :: math.ceil(flat.shape[1] / 65536)]
        q = torch.tensor([0.02, 0.98], device=depth.device)
        bounds = torch.quantile(flat, q, dim=1).T  # [B, 2]
        frames = []
        for i, cut in enumerate(cuts):
            b, d = bounds[i], depth[i]
            if cut or self._bounds is None or self._map is None or self._map.shape != d.shape:
                self._bounds = b
            else:
                self._bounds = self.smoothing * self._bounds + (1 - self.smoothing) * b
            lo, hi = self._bounds[0], self._bounds[1]
            m = ((d - lo) / torch.clamp(hi - lo, min=1e-30)).clamp(0, 1)
            if not (cut or self._map is None or self._map.shape != m.shape):
                m = self.smoothing * self._map + (1 - self.smoothing) * m
            self._map = m
            frames.append(m)
        maps = torch.stack(frames)[:, None]
        maps = torch.nn.functional.interpolate(maps, size=size, mode="bilinear", align_corners=False)
        return (maps[:, 0] * 255 + 0.5).clamp(0, 255).to(torch.uint8)

    def reset(self) -> None:
        self._cuts.reset()
        self._bounds = self._map = None

