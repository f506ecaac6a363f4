"""Every DiT/VACE checkpoint layout, written tiny and random, loads strictly and correctly."""

from __future__ import annotations

import peft
import pytest
import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from safetensors.torch import save_file
from wan_support import one_thread, randomise, reference, rel_err  # noqa: F401

from livevace.models.wan.config import (TINY, TINY_VACE, WAN21_T2V_1_3B, WAN21_VACE_1_3B,
                                        WAN21_VACE_14B)
from livevace.models.wan.dit import WanDiT
from livevace.models.weights import infer_config, load_dit, read_checkpoint

F, H, W = 2, 4, 4


@pytest.fixture(scope="module")
def source():
    return randomise(WanDiT(TINY_VACE), seed=41)


def main_part(model):
    return {k: v for k, v in model.state_dict().items() if not k.startswith("vace")}


def vace_part(model):
    return {k: v for k, v in model.state_dict().items() if k.startswith("vace")}


def outputs(model, vace=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 16, F, H, W, generator=g)
    ctx = torch.randn(1, TINY.text_len, TINY.text_dim, generator=g)
    control = torch.randn(1, 96, F, H, W, generator=g) if vace else None
    with torch.no_grad():
        return model.forward_full(x, torch.full((1, F), 700.0), ctx, vace=control)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].dtype)) for k in sa)


def test_original_layout_is_what_diffusers_converts_from(tmp_path, source):
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file(main_part(source), path)
    ours = load_dit(path, cfg=TINY, dtype=torch.float32)
    assert read_checkpoint(path).layout.endswith("wan")
    # diffusers' own single-file converter reads the same file into its model, strictly
    ref = reference(TINY)
    converted = convert_wan_transformer_to_diffusers(read_checkpoint(path).tensors)
    ref.load_state_dict(converted, strict=True)
    x = torch.randn(1, 16, F, H, W)
    ctx = torch.randn(1, TINY.text_len, TINY.text_dim)
    with torch.no_grad():
        got = ours.forward_full(x, torch.zeros(1, F), ctx)
        want = ref(x, torch.zeros(1), ctx).sample
    assert rel_err(got, want) < 1e-5


def test_full_vace_checkpoint_and_comfyui_prefix(tmp_path, source):
    plain = tmp_path / "vace.safetensors"
    save_file(source.state_dict(), plain)
    prefixed = tmp_path / "comfy.safetensors"
    save_file({f"model.diffusion_model.{k}": v for k, v in source.state_dict().items()}, prefixed)
    for path in (plain, prefixed):
        model = load_dit(path, cfg=TINY_VACE, dtype=torch.float32)
        assert same_weights(model, source)
    assert "-model.diffusion_model." in read_checkpoint(prefixed).layout


def test_diffusers_folder_single_and_sharded(tmp_path):
    ref = reference(TINY_VACE, seed=3)
    ref.save_pretrained(tmp_path / "single")
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    a = load_dit(tmp_path / "single", cfg=TINY_VACE, dtype=torch.float32)
    b = load_dit(tmp_path / "sharded" / "diffusion_pytorch_model.safetensors.index.json",
                 cfg=TINY_VACE, dtype=torch.float32)
    assert same_weights(a, b)
    assert "diffusers" in read_checkpoint(tmp_path / "single").layout


def test_self_forcing_generator_and_ema(tmp_path, source):
    ema = randomise(WanDiT(TINY), seed=42)
    path = tmp_path / "self_forcing_dmd.pt"
    torch.save({"generator": {f"model.{k}": v for k, v in main_part(source).items()},
                "generator_ema": {f"model.{k}": v for k, v in ema.state_dict().items()}}, path)
    assert same_weights(load_dit(path, cfg=TINY, dtype=torch.float32), ema)  # EMA preferred
    plain = WanDiT(TINY)
    plain.load_state_dict(main_part(source))
    assert same_weights(load_dit(path, cfg=TINY, prefer_ema=False, dtype=torch.float32), plain)
    assert "[generator_ema] / -model. / wan" in read_checkpoint(path).layout


@pytest.mark.parametrize("rank,alpha,wrapped", [(4, 4, True), (4, 8, False)])
def test_longlive_base_with_peft_lora_merged(tmp_path, source, rank, alpha, wrapped):
    base = tmp_path / "longlive_base.pt"
    torch.save({"generator": {f"model.{k}": v for k, v in main_part(source).items()}}, base)
    # LongLive's adapter: PEFT LoRA on every Linear inside the main blocks, saved as written by
    # peft.get_peft_model_state_dict, under "generator_lora" (or bare)
    peft_model = randomise(WanDiT(TINY), seed=43)
    peft_model.load_state_dict(main_part(source))
    targets = [n for n, m in peft_model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.startswith("blocks.")]
    peft_model = peft.get_peft_model(peft_model, peft.LoraConfig(r=rank, lora_alpha=alpha,
                                                                target_modules=targets))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.1)
    lora_sd = peft.get_peft_model_state_dict(peft_model)
    lora = tmp_path / "lora.pt"
    torch.save({"generator_lora": lora_sd} if wrapped else lora_sd, lora)
    merged = load_dit(base, lora=lora, cfg=TINY, lora_alpha=None if alpha == rank else alpha,
                      dtype=torch.float32)
    want = outputs(peft_model.base_model.model, vace=False)
    assert rel_err(outputs(merged, vace=False), want) < 1e-5
    assert rel_err(outputs(load_dit(base, cfg=TINY, dtype=torch.float32), vace=False), want) > 1e-3


def test_longlive_base_with_vace_module_file(tmp_path, source):
    base = tmp_path / "longlive_base.pt"
    torch.save({"generator": {f"model.{k}": v for k, v in main_part(source).items()}}, base)
    module = tmp_path / "Wan2_1-VACE_module_1_3B_bf16.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in vace_part(source).items()}, module)
    assert read_checkpoint(module).layout.endswith("vace module")
    model = load_dit(base, vace=module, cfg=TINY_VACE, dtype=torch.float32)
    ref = {k: v.to(torch.bfloat16).float() for k, v in source.state_dict().items()}
    got = model.state_dict()
    assert all(torch.equal(got[k], ref[k] if k.startswith("vace") else source.state_dict()[k])
               for k in got)
    # a full VACE checkpoint as the VACE source lends only its VACE blocks
    full = tmp_path / "Wan2.1-VACE-1.3B.safetensors"
    other = randomise(WanDiT(TINY_VACE), seed=44)
    save_file(other.state_dict(), full)
    mixed = load_dit(base, vace=full, cfg=TINY_VACE, dtype=torch.float32)
    assert torch.equal(mixed.blocks[1].ffn[2].weight, source.blocks[1].ffn[2].weight)
    assert torch.equal(mixed.vace_blocks[1].after_proj.weight,
                       other.vace_blocks[1].after_proj.weight)


def test_real_shapes_are_inferred_from_the_tensors():
    with torch.device("meta"):
        small = WanDiT(WAN21_VACE_1_3B).state_dict()
        big = WanDiT(WAN21_VACE_14B).state_dict()
    assert len(small) == 1264  # the public Wan2.1-VACE-1.3B key count
    cfg = infer_config(small)
    assert (cfg.dim, cfg.ffn_dim, cfg.num_heads, cfg.num_layers) == (1536, 8960, 12, 30)
    assert cfg.vace_layers == WAN21_VACE_1_3B.vace_layers and cfg.text_dim == 4096
    assert infer_config(big).vace_layers == (0, 5, 10, 15, 20, 25, 30, 35)
    main = {k: v for k, v in small.items() if not k.startswith("vace")}
    assert len(main) == 825 and not infer_config(main).has_vace
    assert infer_config(main).rope_dims == WAN21_T2V_1_3B.rope_dims == (44, 42, 42)
