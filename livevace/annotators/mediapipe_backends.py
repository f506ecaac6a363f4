"""MediaPipe behind one small interface: landmarks of people, hands and faces per frame.

mediapipe ≤ 0.10.21 bundles the pose (full), hand, face and selfie models for
`mp.solutions`; from 0.10.30 on only the Tasks API remains and its model files must be
fetched (`livevace models pull`). `open_pose_backend` picks what the installed mediapipe
and the models directory allow, and logs the choice. The Tasks pose landmarker also tracks
several people, which the bundled solution cannot.

MediaPipe's C++ side (TFLite, absl logging) writes info and warning lines straight to file
descriptor 2 while a graph starts, out of reach of Python's logging and of the environment
variables (GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL) that quiet TensorFlow: `quiet_native_start`
catches fd 2 while a graph opens and runs its first frame (and, once per process, until a
first body is found), and passes every other line on.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from livevace.store import annotator_files as weights
from livevace.errors import ModelError

log = logging.getLogger("livevace.annotators")

NATIVE_NOISE = re.compile(
    r"INFO: Created TensorFlow Lite \w+ delegate for"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] ")
"""Start-up chatter of a graph: TFLite's delegate line, absl's pre-init banner, and absl/glog
lines of severity I(nfo) and W(arning). E(rror) and F(atal) lines are never filtered."""

WARM_UP = np.zeros((64, 64, 3), np.uint8)
"""The first frame a graph runs while fd 2 is caught (its calculators open on first use)."""

_fd2 = threading.Lock()


@contextmanager
def quiet_native_start() -> Iterator[None]:
    """Catch fd 2 for the block and pass on every line that is not `NATIVE_NOISE`, so real
    errors still show (a moment later). One block at a time: two interleaved redirections
    would leave fd 2 pointing at a closed file."""
    with _fd2, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True)
                    if not NATIVE_NOISE.match(line.decode("utf-8", "replace"))]
            if kept:
                os.write(2, b"".join(kept))


@dataclass
class Landmarks:
    """Landmarks of one frame, x and y normalised to 0..1 (x right, y down).

    bodies: (33, 3) arrays in MediaPipe's pose order (last column: visibility 0..1);
    hands: (21, 3) arrays, faces: (468, 3) face-mesh arrays (last column 1).
    """

    bodies: list[np.ndarray] = field(default_factory=list)
    hands: list[np.ndarray] = field(default_factory=list)
    faces: list[np.ndarray] = field(default_factory=list)


class PoseBackend(Protocol):
    description: str

    def __call__(self, image: np.ndarray, timestamp_ms: int) -> Landmarks: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


_body_found = False


def until_first_body(find: Callable[[], Landmarks]) -> Landmarks:
    """`find()`, inside `quiet_native_start` until this process has found a first body:
    MediaPipe warns once per process (a W line) when it first projects a body's landmarks."""
    global _body_found
    if _body_found:
        return find()
    with quiet_native_start():
        found = find()
    _body_found = bool(found.bodies)
    return found


def _mediapipe() -> Any:
    import mediapipe as mp  # heavy (≈1 s): imported only when pose or masks are used

    # mediapipe's Tasks call an old protobuf API; the warning is theirs to act on, not a VJ's
    warnings.filterwarnings("ignore", "MessageFactory class is deprecated", UserWarning)
    return mp


def _points(landmarks: Any, visibility: bool = False) -> np.ndarray:
    return np.array([(p.x, p.y, p.visibility if visibility else 1.0) for p in landmarks],
                    np.float64)


def bundled_model(relative: str) -> Path | None:
    """A model file shipped inside the installed mediapipe wheel (`modules/...`), or None."""
    try:
        mp = _mediapipe()
    except ImportError:
        return None
    path = Path(os.path.dirname(mp.__file__)) / "modules" / relative
    return path if path.is_file() and hasattr(mp, "solutions") else None


_HOLISTIC_FILES = ("pose_landmark/pose_landmark_full.tflite", "hand_landmark/hand_landmark_full.tflite",
                   "holistic_landmark/hand_recrop.tflite", "face_landmark/face_landmark.tflite")


class SolutionsPose:
    """The bundled `mp.solutions` models: Pose, or Holistic when hands or face are wanted.

    Only the full pose model ships in the wheel (other complexities would be downloaded at
    run time, which livevace never does). Tracks one person. MediaPipe's own landmark
    smoothing is off: the annotator smooths with its One-Euro filters for every backend.
    """

    def __init__(self, hands: bool = False, face: bool = False) -> None:
        mp = _mediapipe()
        self.hands, self.face = hands, face
        solution = mp.solutions.holistic.Holistic if hands or face else mp.solutions.pose.Pose
        with quiet_native_start():
            self._solution = solution(static_image_mode=False, model_complexity=1,
                                      smooth_landmarks=False)
            self._solution.process(WARM_UP)
        self.description = ("mediapipe solutions (bundled Holistic: body, hands, face; 1 person)"
                            if hands or face else "mediapipe solutions (bundled Pose full; 1 person)")

    def __call__(self, image: np.ndarray, timestamp_ms: int) -> Landmarks:
        return until_first_body(lambda: self._find(image))

    def _find(self, image: np.ndarray) -> Landmarks:
        result = self._solution.process(image)
        out = Landmarks()
        if result.pose_landmarks is not None:
            out.bodies.append(_points(result.pose_landmarks.landmark, visibility=True))
        if self.hands:
            for hand in (getattr(result, "left_hand_landmarks", None),
                         getattr(result, "right_hand_landmarks", None)):
                if hand is not None:
                    out.hands.append(_points(hand.landmark))
        if self.face and getattr(result, "face_landmarks", None) is not None:
            out.faces.append(_points(result.face_landmarks.landmark))
        return out

    def reset(self) -> None:
        with quiet_native_start():  # the graph restarts
            self._solution.reset()
            self._solution.process(WARM_UP)

    def close(self) -> None:
        self._solution.close()


class TasksPose:
    """The MediaPipe Tasks landmarkers in video mode, with model files from the models
    directory: several people; hands and face when their files are there too."""

    def __init__(self, pose_model: Path, people: int = 1, hand_model: Path | None = None,
                 face_model: Path | None = None) -> None:
        self._args = (pose_model, people, hand_model, face_model)
        self._open()
        parts = ["body"] + (["hands"] if hand_model else []) + (["face"] if face_model else [])
        self.description = (f"mediapipe tasks ({pose_model.name}: {', '.join(parts)}; "
                            f"up to {people} {'person' if people == 1 else 'people'})")

    def _open(self) -> None:
        mp = _mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        pose_model, people, hand_model, face_model = self._args
        video = vision.RunningMode.VIDEO
        with quiet_native_start():
            self._pose = vision.PoseLandmarker.create_from_options(vision.PoseLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(pose_model)), running_mode=video,
                num_poses=people))
            self._hands = vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(hand_model)), running_mode=video,
                num_hands=2 * people)) if hand_model else None
            self._face = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(face_model)), running_mode=video,
                num_faces=people)) if face_model else None
            self._image = lambda rgb: mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
            self._last_ms = -1
            self._find(WARM_UP, 0)

    def __call__(self, image: np.ndarray, timestamp_ms: int) -> Landmarks:
        return until_first_body(lambda: self._find(image, timestamp_ms))

    def _find(self, image: np.ndarray, timestamp_ms: int) -> Landmarks:
        timestamp_ms = max(int(timestamp_ms), self._last_ms + 1)  # video mode: strictly rising
        self._last_ms = timestamp_ms
        picture = self._image(image)
        out = Landmarks()
        for body in self._pose.detect_for_video(picture, timestamp_ms).pose_landmarks:
            out.bodies.append(_points(body, visibility=True))
        if self._hands is not None:
            out.hands = [_points(h) for h in self._hands.detect_for_video(picture, timestamp_ms).hand_landmarks]
        if self._face is not None:
            out.faces = [_points(f) for f in self._face.detect_for_video(picture, timestamp_ms).face_landmarks]
        return out

    def reset(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        for task in (self._pose, self._hands, self._face):
            if task is not None:
                task.close()


def open_pose_backend(backend: str = "auto", people: int = 1, hands: bool = False,
                      face: bool = False, model: str = "full") -> PoseBackend:
    """The pose backend for these wishes; logs which one and what it cannot do.

    backend: "solutions" (bundled models), "tasks" (files from the models directory) or
    "auto": Tasks when several people or the lite model are asked for and its file is
    there, else the bundled models, else Tasks. model: "full" or "lite" (Tasks only).
    """
    if backend not in ("auto", "solutions", "tasks"):
        raise ModelError(f"pose backend must be auto, solutions or tasks, not {backend!r}")
    if model not in ("full", "lite"):
        raise ModelError(f"pose model must be full or lite, not {model!r}")
    task_file = (weights.POSE_LANDMARKER_LITE if model == "lite" else weights.POSE_LANDMARKER_FULL)
    task_folder = task_file.find()
    bundled = bundled_model("pose_landmark/pose_landmark_full.tflite") is not None
    wants_tasks = people > 1 or model == "lite"
    if backend == "tasks" or (backend == "auto" and (not bundled or (wants_tasks and task_folder))):
        folder = task_file.require()
        hand = weights.HAND_LANDMARKER.find() if hands else None
        face_folder = weights.FACE_LANDMARKER.find() if face else None
        for wanted, found, entry in ((hands, hand, weights.HAND_LANDMARKER),
                                     (face, face_folder, weights.FACE_LANDMARKER)):
            if wanted and found is None:
                log.warning("pose: %s not found; drawing without it "
                            "(`livevace models pull %s`)", entry.description, entry.key)
        chosen: PoseBackend = TasksPose(
            folder / task_file.files[0], people,
            hand / weights.HAND_LANDMARKER.files[0] if hand else None,
            face_folder / weights.FACE_LANDMARKER.files[0] if face_folder else None)
    else:
        if not bundled:
            raise ModelError("this mediapipe has no bundled pose model: install mediapipe==0.10.21 "
                             f"or run `livevace models pull {task_file.key}`")
        if wants_tasks:
            log.warning("pose: the bundled model tracks one person at full size; for %s run "
                        "`livevace models pull %s`",
                        "several people" if people > 1 else "the lite model", task_file.key)
        holistic = (hands or face) and all(bundled_model(f) for f in _HOLISTIC_FILES)
        if (hands or face) and not holistic:
            log.warning("pose: this mediapipe lacks the bundled hand/face models; body only")
        chosen = SolutionsPose(hands=hands and holistic, face=face and holistic)
    log.info("pose: %s", chosen.description)
    return chosen
