"""Animated test pattern: the default source, so a fresh install shows a picture at once.

Moving shapes make motion and dropped frames visible, the burned-in clock and frame counter
make latency readable on any screen (photograph the pattern next to the output), and a row
of black/white blocks carries the frame index in a form that survives NDI and H.264
compression, so tests and benchmarks can identify every frame that comes out.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from livevace.frames import Frame, now
from livevace.io.clock import sleep_until
from livevace.io.draw import FONT, put_text, text_scale

INDEX_BITS = 16


def _index_strip(width: int, height: int) -> tuple[int, int, int]:
    """(y0, y1, block width) of the index strip at the bottom of the picture."""
    bh = max(8, height // 24)
    return height - bh, height, width // (INDEX_BITS + 2)


def encode_index(img: np.ndarray, index: int) -> None:
    """Burn `index` (mod 2**16) into the bottom strip as white (1) / black (0) blocks."""
    h, w = img.shape[:2]
    y0, y1, bw = _index_strip(w, h)
    img[y0:y1] = 0
    for bit in range(INDEX_BITS):
        if (index >> bit) & 1:
            x0 = (bit + 1) * bw
            img[y0:y1, x0:x0 + bw] = 255


def decode_index(img: np.ndarray) -> int:
    """Read back what `encode_index` wrote (after any resize-free lossy transport)."""
    h, w = img.shape[:2]
    y0, y1, bw = _index_strip(w, h)
    yc = (y0 + y1) // 2
    value = 0
    for bit in range(INDEX_BITS):
        xc = (bit + 1) * bw + bw // 2
        if img[yc, xc].mean() > 127:
            value |= 1 << bit
    return value


def _background(width: int, height: int) -> np.ndarray:
    """Colour bars over a luminance ramp: checks colour order (RGB vs BGR) at a glance."""
    bars = np.array([[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0],
                     [192, 0, 192], [192, 0, 0], [0, 0, 192], [16, 16, 16]], np.float32)
    cols = (np.arange(width) * len(bars) // width)
    img = bars[cols][None, :, :].repeat(height, axis=0)
    ramp = np.linspace(0.35, 1.0, height, dtype=np.float32)[:, None, None]
    return (img * ramp).astype(np.uint8)


class Glyphs:
    """Digits pre-rendered once as tiles, stamped by copying: anti-aliased text rendered per
    frame costs milliseconds at 1080p, a few tile copies cost microseconds."""

    CHARS = "0123456789:. "

    def __init__(self, scale: float, color: tuple[int, int, int]) -> None:
        thick = max(1, int(round(2 * scale)))
        (w, h), base = cv2.getTextSize("0", FONT, scale, thick + 2)
        self.w, self.h = w + 2, h + base + 4
        self.tiles = {}
        for ch in self.CHARS:
            tile = np.zeros((self.h, self.w, 3), np.uint8)
            put_text(tile, ch, 1, h + 2, scale, color)
            self.tiles[ch] = tile

    def stamp(self, img: np.ndarray, text: str, x: int, y: int) -> None:
        """Copy the tiles of `text` with their top-left at (x, y); what does not fit is cut."""
        y = max(0, y)
        if y + self.h > img.shape[0]:
            return
        for i, ch in enumerate(text):
            x0 = x + i * self.w
            if x0 + self.w > img.shape[1]:
                return
            img[y:y + self.h, x0:x0 + self.w] = self.tiles[ch]


class PatternSource:
    """Frames generated at the configured rate, stamped when each one is complete."""

    name = "pattern"

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.period = width, height, 1.0 / fps
        scale = text_scale(height)
        self._bg = _background(width, height)
        label = f"livevace  {width}x{height}  frame "
        put_text(self._bg, label, int(12 * scale), int(40 * scale), scale)
        (lw, _), _ = cv2.getTextSize(label, FONT, scale, max(1, int(round(2 * scale))))
        self._counter = Glyphs(scale, (255, 255, 255))
        self._clock = Glyphs(scale * 1.4, (255, 255, 0))
        self._counter_at = (int(12 * scale) + lw, int(40 * scale) - self._counter.h + 8)
        self._clock_at = (int(12 * scale), int(56 * scale))
        self._t0 = 0.0
        self._k = 0

    def open(self) -> None:
        self._t0 = now()
        self._k = 0

    def read(self, timeout: float) -> Frame | None:
        late = sleep_until(self._t0 + self._k * self.period, timeout)
        if late is None:
            return None
        if late > self.period:  # fell behind: skip ahead, stay on the wall clock
            self._k = int((now() - self._t0) / self.period)
        img = self.render(self._k)
        frame = Frame(img, now(), self._k)
        self._k += 1
        return frame

    def render(self, k: int) -> np.ndarray:
        w, h = self.width, self.height
        img = self._bg.copy()
        t = k * self.period
        r = max(6, h // 10)
        cx = int((0.5 + 0.4 * math.sin(2 * math.pi * t / 4.0)) * w)
        cy = int((0.45 + 0.25 * math.cos(2 * math.pi * t / 3.0)) * h)
        cv2.circle(img, (cx, cy), r, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(img, (cx, cy), r // 2, (230, 40, 40), -1, cv2.LINE_AA)
        a = 2 * math.pi * (k % 60) / 60  # one turn per 60 frames: a skipped frame shows
        c, s = math.cos(a), math.sin(a)
        hx, hy = w // 2, h // 2
        cv2.line(img, (int(hx - c * r * 2), int(hy - s * r * 2)),
                 (int(hx + c * r * 2), int(hy + s * r * 2)), (255, 255, 0), max(2, h // 120))
        wall = time.time()
        clock = time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"
        self._counter.stamp(img, f"{k % 10_000_000:07d}", *self._counter_at)
        self._clock.stamp(img, clock, *self._clock_at)
        encode_index(img, k)
        return img

    def close(self) -> None:
        pass
