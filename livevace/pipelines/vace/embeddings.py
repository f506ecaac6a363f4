"""Prompt embeddings computed off the denoise path.

`PromptEmbeddings` caches one embedding per prompt text and computes new ones on a worker
thread (on its own CUDA stream when on a GPU), returning futures: a prompt change never
holds up a chunk; the old prompt plays until the new one is ready. It is runtime policy
(a thread, a cache), so it lives with the pipeline, not with the networks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import Tensor

from livevace.models.wan.text import WanTextEncoder


class PromptEmbeddings:
    """One embedding per prompt text, computed on a worker thread and cached (LRU).

    `request(text)` returns at once with a Future of the embedding trimmed to its tokens,
    [tokens, D] on `output_device`; `prompt_blend.pad` restores the 512 rows.
    """

    def __init__(self, encoder: WanTextEncoder, output_device: torch.device | str | None = None,
                 max_cached: int = 256) -> None:
        self.encoder = encoder
        self.output_device = torch.device(output_device) if output_device is not None else encoder.device
        self.max_cached = max_cached
        self._cache: OrderedDict[str, Future[Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="umt5")
        self._stream = torch.cuda.Stream(encoder.device) if encoder.device.type == "cuda" else None

    def request(self, text: str) -> Future[Tensor]:
        with self._lock:
            fut = self._cache.get(text)
            if fut is not None and not (fut.done() and fut.exception() is not None):
                self._cache.move_to_end(text)
                return fut
            fut = self._pool.submit(self._encode, text)
            self._cache[text] = fut
            while len(self._cache) > self.max_cached:
                oldest = next(iter(self._cache))
                if not self._cache[oldest].done():
                    break
                del self._cache[oldest]
            return fut

    def get(self, text: str, timeout: float | None = None) -> Tensor:
        """Blocking form (a session's start, tests)."""
        return self.request(text).result(timeout)

    def _encode(self, text: str) -> Tensor:
        if self._stream is None:
            emb, n = self.encoder.encode([text])
            return emb[0, : int(n[0])].to(self.output_device)
        with torch.cuda.stream(self._stream):
            emb, n = self.encoder.encode([text])
            out = emb[0, : int(n[0])].to(self.output_device, non_blocking=True)
        self._stream.synchronize()
        if out.device.type == "cuda":  # used later on the loop's stream: keep its memory safe
            out.record_stream(torch.cuda.default_stream(out.device))
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
