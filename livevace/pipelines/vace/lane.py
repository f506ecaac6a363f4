"""A second CUDA stream for the VACE context encode, so it can run beside the DiT.

The annotators already work one chunk ahead (`lookahead=1`), so when chunk n is being
denoised the control frames of chunk n+1 are usually in hand: their Wan VAE encode (the
costliest thing besides the DiT) is queued on the lane right after the DiT of chunk n is
launched, and the DiT of chunk n+1 only waits for the lane's event. Ordering rules:

- everything the lane encodes into is either its own (staging buffers, encoder memory,
  allocated while the lane was current) or waits for its last reader first (the context
  buffers: `ContextEncoder` keeps an event per buffer, recorded after the DiT that read it);
- the main stream waits for `done()`'s event before it reads the context (`join`), a GPU-side
  wait: the host never synchronises with the lane;
- the encoder's causal memory advances in chunk order because every context encode of a
  session goes through this one lane, in chunk order (a speculative encode that turns out
  stale is rolled back before the chunk is encoded again, see `ContextEncoder`).

On a CPU, or with overlap switched off, there is no second CUDA stream: the same calls run
the same work in the same order, inline (so CPU tests exercise the ordering logic).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class Lane:
    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.stream = (torch.cuda.Stream(device) if enabled and device.type == "cuda"
                       else None)

    @property
    def separate(self) -> bool:
        """Whether work on the lane runs beside the main stream (CUDA, overlap on)."""
        return self.stream is not None

    @contextmanager
    def work(self) -> Iterator[None]:
        """Queue the enclosed GPU work on the lane (inline without one)."""
        if self.stream is None:
            yield
            return
        with torch.cuda.stream(self.stream):
            yield

    def done(self) -> torch.cuda.Event | None:
        """An event after everything queued on the lane so far (None: nothing to wait for)."""
        if self.stream is None:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def join(self, event: torch.cuda.Event | None) -> None:
        """Make the main (current) stream wait, on the GPU, for an event of `done`."""
        if event is not None and self.stream is not None:
            torch.cuda.current_stream(self.stream.device).wait_event(event)
