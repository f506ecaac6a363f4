"""The VRAM estimate and the refusal before loading: parameter counts against the published
files and the real modules (FP8 storage included), each zoo model's cache against the cache
its recipe really allocates, and the refusal naming the changes that fit."""

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
    assert total(model="krea-realtime", width=576, height=320) > total(width=1280, height=720)
    assert total(weights_dtype="fp8") < total()
    assert total(dtype="bf16") < total(dtype="fp32")
    assert total(text_encoder="cpu") < total(text_encoder_dtype="fp8") < total(
        text_encoder_dtype="bf16")
    assert total(vace=False) < total() < total(vace_cache=True)
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
        vram.check(BASE, free_bytes=11.5 * GB, total_bytes=12 * GB, device="GPU 0")
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
        vram.ensure_fits(replace(BASE, width=8192, height=8192, model="krea-realtime"))


def shape_of(cfg) -> vram.DitShape:
    return vram.DitShape(cfg.dim, cfg.ffn_dim, cfg.num_layers, len(cfg.vace_layers),
                         cfg.text_dim, cfg.freq_dim)


def parameter_bytes(module) -> int:
    """Bytes the module's parameters occupy, an FP8-stored weight as its e4m3 data + scales."""
    from livevace.models.wan.fp8_weights import stored_fp8

    total = 0
    for p in module.parameters():
        parts = stored_fp8(p) or (p,)
        total += sum(t.numel() * t.element_size() for t in parts)
    return total


@pytest.mark.parametrize("fp8", [False, True])
def test_weight_bytes_are_the_real_modules_bytes_in_full_width_and_fp8(fp8) -> None:
    """Counted per storage class (block matrices, their rows' scales, the float32 time path,
    the rest) on a real DiT: exact, stored in FP8 or not."""
    import torch

    from livevace.models.wan.config import TINY_VACE
    from livevace.models.wan.dit import WanDiT
    from livevace.models.wan.fp8_weights import store_fp8

    model = WanDiT(TINY_VACE).for_inference(torch.bfloat16)
    if fp8:
        store_fp8(model)
    shape = shape_of(TINY_VACE)
    vace = [model.vace_blocks, model.vace_patch_embedding]
    vace_bytes = sum(parameter_bytes(m) for m in vace)
    assert vace_bytes == vram.vace_params(shape).bytes(2, fp8)
    assert parameter_bytes(model) - vace_bytes == vram.dit_params(shape).bytes(2, fp8)


def fp8_compute_buffers(model) -> list:
    """The e4m3 rows and scales of every FP8 compute buffer (`<prefix>weight_fp8`)."""
    from livevace.models.wan.fp8_weights import stored_fp8

    return [part for name, b in model.named_buffers() if name.endswith("weight_fp8")
            for part in stored_fp8(b)]


def test_fp8_compute_copies_are_the_buffers_it_really_adds() -> None:
    """FP8 compute over bf16 weights adds e4m3 copies and their scales, exactly as many bytes
    as the estimate's `fp8 copies`; over FP8-stored weights it adds none (the stored rows
    serve), and the estimate adds none either."""
    import torch

    from livevace.models.wan.compiled import Acceleration, accelerate
    from livevace.models.wan.config import TINY_VACE
    from livevace.models.wan.dit import WanDiT
    from livevace.models.wan.fp8_weights import block_linears, store_fp8, stored_fp8

    model = WanDiT(TINY_VACE).for_inference(torch.bfloat16)
    accelerate(model, Acceleration(fp8=True))
    added = sum(t.numel() * t.element_size() for t in fp8_compute_buffers(model))
    assert added == vram.fp8_copies(shape_of(TINY_VACE), vace=True).bytes(2, True) > 0

    stored = store_fp8(WanDiT(TINY_VACE).for_inference(torch.bfloat16))
    accelerate(stored, Acceleration(fp8=True))
    weights = {t.untyped_storage().data_ptr() for layer in block_linears(stored)
               for t in stored_fp8(layer.weight)}
    assert {t.untyped_storage().data_ptr() for t in fp8_compute_buffers(stored)} <= weights
    both = replace(BASE, weights_dtype="fp8")
    assert estimate(replace(both, precision="fp8")).parts["fp8 copies"] == 0.0


def test_fp8_compute_over_bf16_weights_counts_and_the_refusal_offers_the_ways_out() -> None:
    krea = replace(BASE, model="krea-realtime", text_encoder="cpu")
    copies = estimate(replace(krea, precision="fp8")).total - estimate(krea).total
    assert 11.5 * GB < copies < 13.5 * GB  # ≈ 12 GB of e4m3 rows at 14B, VACE blocks included
    card = 62 * GB
    assert estimate(krea).total < card < estimate(replace(krea, precision="fp8")).total
    with pytest.raises(ModelError, match=r"fp8 compute.*it would fit with .*fp8 weights \(.*"
                                         r"bf16 compute \("):
        vram.check(replace(krea, precision="fp8"), free_bytes=card, total_bytes=80 * GB,
                   device="GPU 0 (H100)")


def test_fp8_weights_halve_the_14b_and_leave_krea_room_on_a_32gb_card() -> None:
    full = vram.dit_params(vram.WAN_14B) + vram.vace_params(vram.WAN_14B)
    assert 16.5e9 < full.total < 17.5e9  # Wan2.1-14B + its 8 VACE blocks
    assert full.bytes(2, True) < 0.55 * full.bytes(2, False)
    krea = replace(BASE, model="krea-realtime", width=576, height=320)
    card = 31.3 * GB  # what a 32 GB card has free
    assert estimate(replace(krea, text_encoder="cpu")).total > card
    assert estimate(replace(krea, weights_dtype="fp8")).total > card
    assert estimate(replace(krea, weights_dtype="fp8", text_encoder="cpu")).total < card
    with pytest.raises(ModelError, match=r"it would fit with text encoder on the CPU \+ fp8 "
                       r"weights \("):
        vram.check(krea, free_bytes=card, total_bytes=32 * GB, device="GPU 0 (RTX 5090)")


def test_every_zoo_name_has_memory_facts() -> None:
    from livevace.params import MODELS

    assert list(vram.MODELS) == list(MODELS)
    with pytest.raises(ModelError, match="no memory estimate for model 'nope'"):
        estimate(replace(BASE, model="nope"))


def test_a_stream_batch_costs_a_cache_row_per_step() -> None:
    sdv2 = replace(BASE, model="streamdiffusionv2")
    parts = {steps: estimate(replace(sdv2, steps=steps)).parts for steps in (1, 2, 4)}
    assert parts[4]["kv cache"] == 4 * parts[1]["kv cache"] == 2 * parts[2]["kv cache"]
    assert total(steps=1) == total(steps=4)  # LongLive denoises one row, step after step


def cache_tensors(cache, layers: int) -> int:
    """Bytes of the per-block key/value buffers a stream's cache holds ([layers, rows, heads,
    tokens, head_dim], whole frames of tokens; the text K/V and per-frame summaries such as
    the memory bank's mean keys apart)."""
    import torch

    text = {id(cache.text_k), id(cache.text_v)}
    frame = cache.layout.frame_tokens
    return sum(t.numel() * t.element_size() for t in vars(cache).values()
               if isinstance(t, torch.Tensor) and t.dim() == 5 and t.shape[0] == layers
               and t.shape[3] % frame == 0 and id(t) not in text)


def test_each_recipe_has_its_dit_and_the_cache_it_really_allocates() -> None:
    """The facts in `vram.MODELS` against each recipe: its DiT's shape, and the bytes of the
    cache a stream of it allocates (its tiny network at a small latent size, its own step
    list: a stream batch has a row per step)."""
    import torch

    from livevace.models.wan import zoo
    from livevace.models.wan.dit import WanDiT

    for name, recipe in zoo.RECIPES.items():
        facts = vram.MODELS[name]
        assert facts.dit == shape_of(recipe.config), name
        cfg = recipe.tiny_config
        model = WanDiT(cfg).for_inference(torch.float32)
        h, w = 8, 12
        sampler = zoo.open_stream(recipe, model, h, w, None, None, seed=0)
        rows = facts.rows(len(recipe.steps))
        want = vram.cache_bytes(cfg.num_layers, cfg.dim, facts.cached_frames, rows,
                                (h // 2) * (w // 2), 4)
        assert cache_tensors(sampler.cache, cfg.num_layers) == want, name
        assert sampler.cache.text_k.shape[1] == rows, name
