"""Host → device copies of a chunk's frames into buffers allocated once per shape.

Frames arrive as numpy arrays; the generator wants [1, 3, T, H, W] pixels in [-1, 1] on its
device. Allocating pinned host memory, device memory and the float copy anew every chunk
costs time and fragments the GPU allocator, so each (slot, shape) keeps its three buffers and
every chunk is copied into them (pinned + non-blocking on CUDA). A returned tensor is valid
until the same slot is staged again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Staging:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._buffers: dict[tuple[str, tuple[int, ...], str], tuple[Tensor, Tensor, Tensor]] = {}

    def _slot(self, slot: str, array: np.ndarray, out_shape: tuple[int, ...]
              ) -> tuple[Tensor, Tensor, Tensor]:
        key = (slot, array.shape, str(array.dtype))
        if key not in self._buffers:
            dtype = torch.from_numpy(array[:0]).dtype
            host = torch.empty(array.shape, dtype=dtype, pin_memory=self.cuda)
            device = torch.empty(array.shape, dtype=dtype, device=self.device) if self.cuda else host
            out = torch.empty(out_shape, dtype=torch.float32, device=self.device)
            self._buffers[key] = (host, device, out)
        host, device, out = self._buffers[key]
        host.numpy()[...] = array
        if self.cuda:
            device.copy_(host, non_blocking=True)
        return host, device, out

    def pixels(self, slot: str, frames: np.ndarray) -> Tensor:
        """uint8 frames [T, H, W, 3] → pixels [1, 3, T, H, W] in [-1, 1]."""
        t, h, w, c = frames.shape
        _, device, out = self._slot(slot, frames, (1, c, t, h, w))
        out[0].copy_(device.permute(3, 0, 1, 2))
        return out.div_(127.5).sub_(1.0)

    def values(self, slot: str, array: np.ndarray) -> Tensor:
        """float32 array → the same values on the device."""
        _, device, out = self._slot(slot, array, array.shape)
        return out.copy_(device)
