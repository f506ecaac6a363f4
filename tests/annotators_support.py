"""Shared helpers for the annotator tests: real pictures and real MediaPipe Tasks files.

The Tasks API needs model files with TFLite metadata that the mediapipe wheel does not ship
in that form; these helpers build them from the wheel's bundled models (same networks, with
the input normalisation written into the metadata), in the folder layout `livevace models
pull` produces, so the Tasks code path runs for real without a download.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


def astronaut(size: tuple[int, int] | None = None) -> np.ndarray:
    """scikit-image's bundled photograph of a person (512×512), optionally resized (w, h)."""
    from skimage import data

    img = data.astronaut()
    return np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA) if size else img)


def _modules() -> Path:
    import mediapipe as mp

    return Path(os.path.dirname(mp.__file__)) / "modules"


def _with_image_metadata(path: Path, mean: float, std: float) -> bytes:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer as mw

    writer = mw.MetadataWriter.create(bytearray(path.read_bytes()))
    return bytes(writer.add_general_info("livevace-test").add_image_input([mean], [std]).populate()[0])


def write_pose_task(models_dir: Path) -> Path:
    """<models>/mediapipe/pose_landmarker_full.task built from the bundled pose models."""
    from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils as bundle

    out = models_dir / "mediapipe" / "pose_landmarker_full.task"
    out.parent.mkdir(parents=True, exist_ok=True)
    m = _modules()
    bundle.create_model_asset_bundle({
        "pose_detector.tflite": _with_image_metadata(m / "pose_detection/pose_detection.tflite", 127.5, 127.5),
        "pose_landmarks_detector.tflite": _with_image_metadata(
            m / "pose_landmark/pose_landmark_full.tflite", 0.0, 255.0),
    }, str(out))
    return out


def write_selfie_segmenter(models_dir: Path) -> Path:
    """<models>/mediapipe/selfie_segmenter.tflite from the bundled selfie model."""
    out = models_dir / "mediapipe" / "selfie_segmenter.tflite"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_with_image_metadata(
        _modules() / "selfie_segmentation/selfie_segmentation_landscape.tflite", 0.0, 255.0))
    return out


# --- tiny random depth models in the folder layout `livevace models pull` produces

INIT = 0.2
"""Weight init scale of the tiny depth models: transformers' default (0.02) shrinks a tiny
random network's output to ~1e-7, below fp16's normal range; at 0.2 it is ~20, like a real
model's relative inverse depth, so the fp16 GPU path is tested on meaningful numbers."""


def write_depth_anything(models_dir: Path, seed: int = 0) -> Path:
    """A tiny random Depth-Anything (DINOv2 backbone) with the real preprocessor settings."""
    import torch
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config,
                              DPTImageProcessorPil)

    from livevace.store.annotator_files import DEPTH_ANYTHING_V2_SMALL

    folder = models_dir / DEPTH_ANYTHING_V2_SMALL.folder
    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                            intermediate_size=64, patch_size=14, image_size=518,
                            out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
                            initializer_range=INIT)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32,
                                 neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                 head_hidden_size=8, patch_size=14, initializer_range=INIT)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessorPil(size={"height": 518, "width": 518}, keep_aspect_ratio=True,
                         ensure_multiple_of=14, resample=3, do_pad=False,
                         image_mean=[0.485, 0.456, 0.406],
                         image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def write_dpt_hybrid(models_dir: Path, seed: int = 0) -> Path:
    """A tiny random DPT-Hybrid (BiT + ViT) like Intel/dpt-hybrid-midas, at 64² input."""
    import torch
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation, DPTImageProcessorPil

    from livevace.store.annotator_files import DPT_HYBRID

    folder = models_dir / DPT_HYBRID.folder
    torch.manual_seed(seed)
    bit = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1],
                    hidden_sizes=[16, 32, 64], embedding_size=8, num_groups=2,
                    out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True)
    config = DPTConfig(is_hybrid=True, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                       intermediate_size=64, image_size=64, patch_size=16,
                       backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 32, 32],
                       fusion_hidden_size=16, readout_type="project", backbone_config=bit,
                       backbone_featmap_shape=[1, 64, 4, 4], reassemble_factors=[1, 1, 1, 0.5],
                       initializer_range=INIT)
    DPTForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessorPil(size={"height": 64, "width": 64}, keep_aspect_ratio=False,
                         image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]).save_pretrained(folder)
    return folder


class TinyMidas:
    """A two-convolution stand-in with MiDaS-small's ONNX interface (RGB 0..1 at 256²,
    ImageNet normalisation inside the graph, [N, 256, 256] inverse depth out)."""

    def __init__(self, seed: int = 0) -> None:
        import torch

        torch.manual_seed(seed)

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
                self.a = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
                self.b = torch.nn.Conv2d(4, 1, 3, padding=1)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                y = self.b(torch.relu(self.a((x - self.mean) / self.std)))
                y = torch.nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear")
                return torch.relu(y).squeeze(1)

        self.net = Net().eval()

    def write(self, models_dir: Path) -> Path:
        import torch

        from livevace.store.annotator_files import MIDAS_SMALL

        path = models_dir / MIDAS_SMALL.folder / MIDAS_SMALL.files[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(self.net, torch.rand(1, 3, 256, 256), str(path), dynamo=False,
                          input_names=["input_image"], output_names=["output_depth"],
                          dynamic_axes={"input_image": {0: "n"}, "output_depth": {0: "n"}},
                          opset_version=13)
        return path

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Reference output for one RGB frame, resized the way OpenCV's blob maker does."""
        import torch

        x = cv2.resize(image, (256, 256), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        with torch.no_grad():
            return self.net(torch.from_numpy(x).permute(2, 0, 1)[None]).numpy()[0]
