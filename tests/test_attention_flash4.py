"""FlashAttention-4 as the attention of every maskless attention ("flash4"): on the
GPU (skipped without one, or without the flash-attn-4 package) it matches the explicit
float32 path and a whole DiT step matches SDPA's; anywhere it cannot run, "flash4" is SDPA
and `accelerate` reports it off."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
import torch.nn.functional as F

from livevace.models.wan import attention
from livevace.models.wan.attention import attend, flash4_runs_on
from livevace.models.wan.compiled import Acceleration
from livevace.models.wan.config import TINY
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.kv_cache import CacheLayout

def gpu_flash4(test):  # noqa: ANN001, ANN201 - a GPU test that also needs flash-attn-4
    runs = torch.cuda.is_available() and flash4_runs_on(torch.device("cuda"))
    skip = pytest.mark.skipif(not runs, reason="needs a Hopper/Blackwell GPU and flash-attn-4")
    return pytest.mark.gpu(skip(test))


def qkv(nq: int, nk: int, device: str = "cpu", dtype: torch.dtype = torch.float32):
    g = torch.Generator(device).manual_seed(0)
    make = lambda n: torch.randn(1, 12, n, 128, generator=g, device=device, dtype=dtype)  # noqa: E731
    return make(nq), make(nk), make(nk)


def test_flash4_is_sdpa_where_it_cannot_run() -> None:
    q, k, v = qkv(64, 96)
    torch.testing.assert_close(attend(q, k, v, impl="flash4"), F.scaled_dot_product_attention(q, k, v))
    allowed = torch.rand(64, 96, generator=torch.Generator().manual_seed(1)) > 0.3
    torch.testing.assert_close(attend(q, k, v, allowed, impl="flash4"),
                               attend(q, k, v, allowed, impl="explicit"), rtol=1e-4, atol=1e-5)


def test_accelerate_reports_flash4_off_where_it_cannot_run(monkeypatch) -> None:
    model = WanDiT(TINY)
    model.accelerate(Acceleration(flash4=True))  # a CPU: never
    assert model.acceleration.flash4 is False and model.attn_impl == "sdpa"
    assert "fa4" not in model.acceleration.label
    monkeypatch.setattr("livevace.models.wan.compiled.flash4_runs_on", lambda *where: True)
    model.accelerate(Acceleration(flash4=True))
    assert model.acceleration.flash4 and model.attn_impl == "flash4"
    assert model.acceleration.label == "eager+fa4"
    model.accelerate(Acceleration())
    assert model.attn_impl == "sdpa"
    model.attn_impl = "explicit"  # chosen by hand (bench dit --attn explicit): kept
    model.accelerate(Acceleration(flash4=True))
    assert model.attn_impl == "explicit" and not model.acceleration.flash4


@gpu_flash4
@pytest.mark.parametrize("nq,nk", [(4680, 18720), (2160, 8640), (4680, 4680), (720, 8640),
                                   (4680, 512), (720, 512)],
                         ids=["832-self", "576-self", "832-vace", "1-latent", "832-cross",
                              "1-latent-cross"])
def test_flash4_matches_float32_attention_on_the_dits_shapes(nq: int, nk: int,
                                                             monkeypatch) -> None:
    """Every maskless attention of the DiT goes to FA4: self-attention over the window at
    both sizes, VACE's in-chunk attention, a 1-latent chunk's, cross-attention to the text."""
    kernel, calls = attention.flash4(), []
    monkeypatch.setattr(attention, "flash4", lambda: lambda *a: calls.append(1) or kernel(*a))
    q, k, v = qkv(nq, nk, "cuda", torch.bfloat16)
    # keys as the cache holds them: head-major [B, H, N, D]
    got = attend(q, k, v, impl="flash4")
    assert calls == [1]
    want = attend(q, k, v, impl="explicit")
    sdpa = attend(q, k, v, impl="sdpa")
    assert (got.float() - want.float()).abs().max() <= 1.5 * (sdpa.float() - want.float()).abs().max() + 1e-3


@gpu_flash4
def test_a_dit_step_with_flash4_matches_sdpa() -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, dim=256, num_heads=2)  # head_dim 128, as the 1.3B model's
    model = WanDiT(cfg).to("cuda").for_inference(torch.bfloat16)
    layout = CacheLayout(height=8, width=8, window=6, sink=3, chunk=3)
    x = torch.randn(1, 16, 3, 8, 8, device="cuda")
    t = torch.full((1, 3), 500.0, device="cuda")
    text = torch.randn(1, cfg.text_len, cfg.text_dim, device="cuda")
    outs = {}
    for flash in (False, True):
        model.accelerate(Acceleration(flash4=flash))
        assert model.attn_impl == ("flash4" if flash else "sdpa")
        cache = model.new_cache(layout)
        model.set_text(cache, text)
        cache.begin_chunk(0)
        outs[flash] = model(x, t, cache).float()
    err = (outs[True] - outs[False]).abs().max() / outs[False].abs().max()
    assert err < 2e-2


def test_an_installed_flash4_that_does_not_load_is_said_once(tmp_path, monkeypatch, caplog) -> None:
    package = tmp_path / "flash_attn" / "cute"
    package.mkdir(parents=True)
    (tmp_path / "flash_attn" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "interface.py").write_text("raise OSError('libcute_dsl_runtime.so: cannot open')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("flash_attn", "flash_attn.cute", "flash_attn.cute.interface")
    real = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    attention.flash4.cache_clear()
    try:
        assert attention.flash4() is None
        assert attention.flash4() is None  # (cached: said once)
    finally:
        for name in names:  # the stand-in goes; a real install comes back
            sys.modules.pop(name, None)
        sys.modules.update(real)
        attention.flash4.cache_clear()
    said = [r.getMessage() for r in caplog.records if "FlashAttention-4" in r.getMessage()]
    assert len(said) == 1 and "libcute_dsl_runtime.so" in said[0] and "cuDNN" in said[0]
