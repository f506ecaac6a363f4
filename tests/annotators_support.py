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
