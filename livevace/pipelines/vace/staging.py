"""Host ↔ device copies of a chunk's frames: uploads into buffers allocated once per shape,
downloads into pinned memory without blocking.

Frames arrive as numpy arrays; the generator wants [1, 3, T, H, W] pixels in [-1, 1] on its
device. Allocating pinned host memory, device memory and the float copy anew every chunk
costs time and fragments the GPU allocator, so each (slot, shape) keeps its three buffers and
every chunk is copied into them (pinned + non-blocking on CUDA, on whichever CUDA stream is
current: the context encode stages its frames on its own lane). A returned tensor is valid
until the same slot is staged again. The upload of a slot's previous chunk may still be in
flight when the next one is staged (the lane runs ahead of the host), so each slot keeps an
event of its last copy and the host waits for it before overwriting the pinned buffer.

`download` starts the copy of the output frames to pinned host memory and returns at once,
so the host can queue more GPU work (the next chunk's context) before it waits for the
frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Download:
    """Frames on their way to the host; `numpy()` waits for them."""

    def __init__(self, host: Tensor, event: torch.cuda.Event | None) -> None:
        self.host, self.event = host, event

    def numpy(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.host.numpy()


class Staging:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._buffers: dict[tuple[str, tuple[int, ...], str], tuple[Tensor, Tensor, Tensor]] = {}
        self._copied: dict[tuple[str, tuple[int, ...], str], torch.cuda.Event] = {}

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
        if key in self._copied:
            self._copied[key].synchronize()  # the previous upload has left the pinned buffer
        host.numpy()[...] = array
        if self.cuda:
            device.copy_(host, non_blocking=True)
            self._copied[key] = event = torch.cuda.Event()
            event.record()
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

    def download(self, tensor: Tensor) -> Download:
        """Start copying `tensor` to (pinned, freshly allocated) host memory."""
        if not tensor.is_cuda:
            return Download(tensor, None)
        host = tensor.to("cpu", non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return Download(host, event)
