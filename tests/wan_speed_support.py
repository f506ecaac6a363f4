"""Shared by the speed tests: a tiny VACE model streamed chunk by chunk, compared by chunk."""

from __future__ import annotations

import torch
from wan_support import randomise, rel_err

from livevace.models.wan.config import TINY_VACE
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout
from livevace.models.wan.sampler import StreamSampler

LAYOUT = CacheLayout(height=4, width=6, window=6, sink=2, chunk=2)
CHUNKS = 5  # the ring (4 slots) wraps


def new_model(device: str = "cpu", dtype: torch.dtype = torch.float32) -> WanDiT:
    return randomise(WanDiT(TINY_VACE), seed=51).for_inference(dtype).to(device)


def stream(model: WanDiT, device: str = "cpu", chunks: int = CHUNKS, warm_up: bool = False
           ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """(clean latents of every chunk, final cache K, final cache V), VACE on every second
    chunk so both step kinds are exercised."""
    g = torch.Generator().manual_seed(4)
    text = torch.randn(1, TINY_VACE.text_len, TINY_VACE.text_dim, generator=g).to(device)
    control = torch.randn(1, 96, 2 * chunks, LAYOUT.height, LAYOUT.width, generator=g).to(device)
    sampler = StreamSampler(model, model.new_cache(LAYOUT), steps=(1000, 500), seed=9)
    sampler.set_text(text)
    if warm_up:
        sampler.warm_up(vace=True)
        sampler.warm_up(vace=False)
    out = [sampler.generate_chunk(vace=control[:, :, 2 * i:2 * i + 2] if i % 2 else None)
           for i in range(chunks)]
    return out, sampler.cache.k.clone(), sampler.cache.v.clone()


def assert_same_stream(got, want, tol: float) -> None:
    for i, (a, b) in enumerate(zip(got[0], want[0])):
        assert rel_err(a, b) < tol, f"chunk {i}"
    assert rel_err(got[1], want[1]) < tol and rel_err(got[2], want[2]) < tol


