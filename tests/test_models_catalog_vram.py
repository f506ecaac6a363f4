"""The VRAM estimate and the refusal before loading."""

from __future__ import annotations

from dataclasses import replace

import pytest

from livevace.errors import ModelError
from livevace.store import catalog, vram
from livevace.store.vram import GB, VramSettings, estimate

BASE = VramSettings()


def total(**change) -> float:
    return estimate(replace(BASE, **change)).total


def test_parameter_counts_match_the_published_file_sizes() -> None:
    """Two independent facts agree: the architecture (DESIGN §4) and the hub's file sizes."""
    assert vram.DIT_PARAMS * 4 == pytest.approx(catalog.get("wan_t2v_dit").size_bytes, rel=0.01)
    assert vram.T5_PARAMS * 2 == pytest.approx(catalog.get("umt5_bf16").size_bytes, rel=0.01)
    assert vram.VACE_PARAMS * 2 == pytest.approx(catalog.get("vace_module").size_bytes, rel=0.01)
    # the full VACE file: fp32 main model plus bf16 VACE blocks
    assert vram.DIT_PARAMS * 4 + vram.VACE_PARAMS * 2 == pytest.approx(
        catalog.get("vace_full").size_bytes, rel=0.01)


def test_tokens_per_latent_frame_follow_the_design() -> None:
    assert replace(BASE, width=576, height=320).tokens_per_frame == 720
    assert replace(BASE, width=832, height=480).tokens_per_frame == 1560


def test_estimate_grows_with_everything_that_costs_memory() -> None:
    assert total(width=576, height=320) < total() < total(width=1280, height=720)
    assert total(chunk_frames=1) < total(chunk_frames=3)
    assert total(window_frames=6) < total(window_frames=12) < total(window_frames=21)
    assert total(dtype="bf16") < total(dtype="fp32")
    assert total(text_encoder="cpu") < total(text_encoder_dtype="fp8") < total(
        text_encoder_dtype="bf16")
    assert total(vace=False) < total() < total(vace_cache=True)
    assert total(encodes_video=False) < total()
    assert total(annotator_gb=0.5) == pytest.approx(total() + 0.5 * GB * (1 + vram.MARGIN))


def test_the_text_encoder_dominates_and_moving_it_saves_its_weights() -> None:
    saved = total(text_encoder_dtype="bf16") - total(text_encoder="cpu")
    assert saved == pytest.approx(vram.T5_PARAMS * 2 * (1 + vram.MARGIN))
    assert 15 * GB < total() < 25 * GB  # 832×480 with everything on an H100-class GPU


def test_fits_when_there_is_room() -> None:
    est = vram.check(BASE, free_bytes=78 * GB, total_bytes=80 * GB, device="GPU 0 (H100)")
    assert est.total == estimate(BASE).total
    assert "kv cache" in est.breakdown()


def test_refusal_names_estimate_gpu_and_a_change_that_fits() -> None:
    need = estimate(BASE).total
    free = estimate(replace(BASE, text_encoder="cpu")).total + 0.1 * GB
    assert free < need
    with pytest.raises(ModelError) as err:
        vram.check(BASE, free_bytes=free, total_bytes=24 * GB, device="GPU 0 (RTX 4090)")
    message = str(err.value)
    assert f"about {need / GB:.1f} GB" in message and "832×480" in message
    assert f"GPU 0 (RTX 4090) has {free / GB:.1f} GB free of 24.0 GB" in message
    assert "it would fit with text encoder on the CPU" in message


def test_refusal_combines_savings_or_says_none_suffice() -> None:
    with pytest.raises(ModelError, match=r"would fit with text encoder on the CPU \+ .*576×320"):
        vram.check(BASE, free_bytes=9.5 * GB, total_bytes=10 * GB, device="GPU 0")
    with pytest.raises(ModelError, match="even with every saving it needs"):
        vram.check(BASE, free_bytes=2 * GB, total_bytes=4 * GB, device="GPU 0")


def test_without_cuda_nothing_is_refused() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    assert vram.gpu_memory() is None
    assert vram.ensure_fits(replace(BASE, width=8192, height=8192)).total > 100 * GB


@pytest.mark.gpu
def test_real_gpu_refuses_an_impossible_setting() -> None:
    free, total_bytes, name = vram.gpu_memory()
    assert 0 < free <= total_bytes and name.startswith("GPU")
    with pytest.raises(ModelError, match="not enough GPU memory"):
        vram.ensure_fits(replace(BASE, width=8192, height=8192, window_frames=64))
