"""Draw landmarks the way OpenPose / ControlNet / VACE pose maps look: 18 body keypoints
with coloured limbs on black, rainbow hand bones with blue joints, white face dots.

VACE's pose task was trained on DWPose drawings in this style; drawing MediaPipe's
landmarks the same way lets VACE read them without fine-tuning.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from livevace.annotators.mediapipe_backends import Landmarks

NECK = -1
OPENPOSE_FROM_MEDIAPIPE = (0, NECK, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
"""OpenPose-18 order (nose, neck, right arm, left arm, right leg, left leg, right eye, left
eye, right ear, left ear) as MediaPipe pose indices; the neck is the shoulders' midpoint.
MediaPipe's 'right' is the person's right, as in OpenPose."""

LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))

COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
           (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
           (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
           (255, 0, 255), (255, 0, 170), (255, 0, 85))
"""RGB colour of keypoint i and of limb i (OpenPose's palette)."""

HAND_BONES = tuple((0 if j % 4 == 0 else j, j + 1) for j in range(20))
"""Wrist → each finger base, then along each finger (MediaPipe and OpenPose share the
21-point hand order)."""

FACE_POINTS = (162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454,
               389, 71, 63, 105, 66, 107, 336, 296, 334, 293, 301, 168, 197, 5, 4, 75, 97, 2,
               326, 305, 33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380, 61, 39,
               37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87)
"""Face-mesh points nearest the 68 dlib/OpenPose face keypoints (jaw, brows, nose, eyes,
lips): drawing all 468 would paint a white blob instead of a face."""


def _hand_colour(i: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(i / len(HAND_BONES), 1.0, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


HAND_COLOURS = tuple(_hand_colour(i) for i in range(len(HAND_BONES)))


def default_thickness(height: int, width: int) -> int:
    """OpenPose draws 4-pixel sticks at 512 px; keep that proportion at any size."""
    return max(1, int(4 * min(height, width) / 512 + 0.5))


def openpose_keypoints(body: np.ndarray, min_visibility: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(18×2 normalised points, 18 visible flags) from a MediaPipe (33, 3) body."""
    points = np.zeros((18, 2))
    visible = np.zeros(18, bool)
    inside = (body[:, 2] >= min_visibility) & np.all((body[:, :2] > -0.02) & (body[:, :2] < 1.02), axis=1)
    for i, j in enumerate(OPENPOSE_FROM_MEDIAPIPE):
        if j == NECK:
            points[i] = (body[11, :2] + body[12, :2]) / 2
            visible[i] = inside[11] and inside[12]
        else:
            points[i], visible[i] = body[j, :2], inside[j]
    return points, visible


def draw_body(canvas: np.ndarray, points: np.ndarray, visible: np.ndarray, thickness: int) -> None:
    """Limbs as filled ellipses at 60 % colour, then joints as full-colour dots."""
    h, w = canvas.shape[:2]
    px = points * (w, h)
    for (a, b), colour in zip(LIMBS, COLOURS):
        if not (visible[a] and visible[b]):
            continue
        (x0, y0), (x1, y1) = px[a], px[b]
        length = math.hypot(x1 - x0, y1 - y0)
        angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
        polygon = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)),
                                   (int(length / 2), thickness), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, tuple(int(c * 0.6) for c in colour))
    for i, colour in enumerate(COLOURS):
        if visible[i]:
            cv2.circle(canvas, (int(px[i, 0]), int(px[i, 1])), thickness, colour, -1)


def draw_hand(canvas: np.ndarray, hand: np.ndarray, thickness: int) -> None:
    h, w = canvas.shape[:2]
    px = (hand[:, :2] * (w, h)).astype(np.int32)
    line = max(1, thickness // 2)
    for (a, b), colour in zip(HAND_BONES, HAND_COLOURS):
        cv2.line(canvas, tuple(px[a]), tuple(px[b]), colour, line, cv2.LINE_AA)
    for x, y in px:
        cv2.circle(canvas, (int(x), int(y)), line, (0, 0, 255), -1)


def draw_face(canvas: np.ndarray, face: np.ndarray, thickness: int) -> None:
    h, w = canvas.shape[:2]
    dot = max(1, thickness - 1)
    for x, y in face[list(FACE_POINTS), :2] * (w, h):
        cv2.circle(canvas, (int(x), int(y)), dot, (255, 255, 255), -1)


def render(landmarks: Landmarks, height: int, width: int, thickness: int | None = None,
           min_visibility: float = 0.5) -> np.ndarray:
    """The pose map: uint8 RGB height×width, black where nobody is."""
    canvas = np.zeros((height, width, 3), np.uint8)
    t = thickness or default_thickness(height, width)
    for body in landmarks.bodies:
        draw_body(canvas, *openpose_keypoints(body, min_visibility), t)
    for hand in landmarks.hands:
        draw_hand(canvas, hand, t)
    for face in landmarks.faces:
        if len(face) > max(FACE_POINTS):
            draw_face(canvas, face, t)
    return canvas
