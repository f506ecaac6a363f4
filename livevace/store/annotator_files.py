"""Every model file the annotators read, declared once, for `livevace models pull` to fetch.

Annotators never download: they look for these files under the models directory
(`livevace.store.paths`: $LIVEVACE_MODELS_DIR, then Scope's folder). Each entry lives in
`<models dir>/<folder>/`; for Hugging Face entries `folder` is the repo name (the part after
the slash, Scope's layout), holding the repo's files at their paths in the repo. Entries with
a `url` are single files from elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livevace.errors import ModelError
from livevace.store import paths


@dataclass(frozen=True)
class WeightFiles:
    """One downloadable model: where it comes from and which files the loader reads."""

    key: str
    description: str
    folder: str
    files: tuple[str, ...]
    any_of: tuple[str, ...] = ()
    """Alternatives of which one is enough (e.g. safetensors or a pickled .bin); `models pull`
    fetches the first the repository has."""
    repo_id: str = ""
    url: str = ""
    size_mb: float = 0.0

    def find(self) -> Path | None:
        """The folder holding all `files`, searched in the models directories, or None."""
        for base in paths.search_dirs():
            folder = base / self.folder
            if all((folder / f).is_file() for f in self.files) and (
                    not self.any_of or any((folder / f).is_file() for f in self.any_of)):
                return folder
        return None

    def require(self) -> Path:
        """The folder holding the files, or a ModelError telling the VJ how to get them."""
        folder = self.find()
        if folder is None:
            looked = " or ".join(str(base / self.folder) for base in paths.search_dirs())
            raise ModelError(f"{self.description} is not downloaded (looked in {looked}): "
                             f"run `livevace models pull {self.key}`")
        return folder


DEPTH_ANYTHING_V2_SMALL = WeightFiles(
    key="depth_anything_v2_small",
    description="Depth-Anything-V2-Small (depth)",
    repo_id="depth-anything/Depth-Anything-V2-Small-hf",
    folder="Depth-Anything-V2-Small-hf",
    files=("config.json", "preprocessor_config.json"),
    any_of=("model.safetensors",),
    size_mb=99,
)
DPT_HYBRID = WeightFiles(
    key="dpt_hybrid",
    description="DPT-Hybrid / MiDaS 3.0 (depth)",
    repo_id="Intel/dpt-hybrid-midas",
    folder="dpt-hybrid-midas",
    files=("config.json", "preprocessor_config.json"),
    any_of=("model.safetensors", "pytorch_model.bin"),
    size_mb=490,
)
MIDAS_SMALL = WeightFiles(
    key="midas_small",
    description="MiDaS v2.1 small (depth, ONNX for OpenCV DNN)",
    repo_id="simonguest/midas_v21_small_256x256-ONNX",
    folder="midas_v21_small_256x256-ONNX",
    files=("onnx/model.onnx",),
    size_mb=33,
)
DEPTH_WEIGHTS: dict[str, WeightFiles] = {
    w.key: w for w in (DEPTH_ANYTHING_V2_SMALL, DPT_HYBRID, MIDAS_SMALL)}
"""By `depth_model` choice (livevace.params)."""

def _mediapipe_task(family: str, name: str, what: str, size_mb: float,
                    suffix: str = ".task") -> WeightFiles:
    """A MediaPipe Tasks model as Google publishes it (float16, latest), kept in
    `<models dir>/mediapipe/`."""
    file = f"{name}{suffix}"
    return WeightFiles(
        key=name, description=f"MediaPipe {what} for the Tasks API", folder="mediapipe",
        files=(file,), size_mb=size_mb,
        url=f"https://storage.googleapis.com/mediapipe-models/{family}/{name}/float16/latest/{file}")


POSE_LANDMARKER_FULL = _mediapipe_task("pose_landmarker", "pose_landmarker_full", "pose landmarker (full)", 9)
POSE_LANDMARKER_LITE = _mediapipe_task("pose_landmarker", "pose_landmarker_lite", "pose landmarker (lite)", 6)
HAND_LANDMARKER = _mediapipe_task("hand_landmarker", "hand_landmarker", "hand landmarker", 8)
FACE_LANDMARKER = _mediapipe_task("face_landmarker", "face_landmarker", "face landmarker", 4)
SELFIE_SEGMENTER = _mediapipe_task("image_segmenter", "selfie_segmenter",
                                   "selfie segmenter (person mask)", 0.3, suffix=".tflite")
MEDIAPIPE_TASKS: dict[str, WeightFiles] = {w.key: w for w in (
    POSE_LANDMARKER_FULL, POSE_LANDMARKER_LITE, HAND_LANDMARKER, FACE_LANDMARKER,
    SELFIE_SEGMENTER)}
"""Only needed where the installed mediapipe lacks the bundled `mp.solutions` models
(releases from 0.10.30 on), or for several people (the Tasks pose landmarker tracks up to N)."""

ALL: tuple[WeightFiles, ...] = (*DEPTH_WEIGHTS.values(), *MEDIAPIPE_TASKS.values())
"""Everything the annotators can use, for the models catalogue."""
