"""The zoo's checkpoint layouts (Reward Forcing, StreamDiffusionV2 1.3B/14B, MemFlow base + LoRA,
Krea Realtime 14B, the 14B VACE module), written tiny and random with their real key layouts,
load strictly through `livevace.models.weights`; a wrong or truncated file is one clear line.
The catalogue's identifying tensors are checked against the real-size networks they name."""

from __future__ import annotations

from dataclasses import replace

import peft
import pytest
import torch
from safetensors.torch import save_file
from wan_support import one_thread, randomise, rel_err  # noqa: F401

from livevace.errors import ModelError
from livevace.models.wan.config import (TINY, TINY_VACE, TINY_VACE_14B, WAN21_VACE_1_3B,
                                        WAN21_VACE_14B, WanConfig)
from livevace.models.wan.dit import WanDiT
from livevace.models.weights import load_dit, read_checkpoint
from livevace.store import catalog

TINY_14B = replace(TINY_VACE_14B, name="tiny-14b", dim=96, num_heads=3, ffn_dim=128)
"""The 14B family in miniature: wider and deeper than TINY, a VACE hint after every fifth layer."""


@pytest.fixture(scope="module")
def small() -> WanDiT:
    return randomise(WanDiT(TINY_VACE), seed=61)


@pytest.fixture(scope="module")
def big() -> WanDiT:
    return randomise(WanDiT(TINY_14B), seed=62)


def main_part(model: WanDiT, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in model.state_dict().items() if not k.startswith("vace")}


def vace_part(model: WanDiT) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith("vace")}


def weights_equal(model: WanDiT, want: dict[str, torch.Tensor]) -> bool:
    got = model.state_dict()
    return got.keys() == want.keys() and all(torch.equal(got[k], want[k].float()) for k in got)


def refused(match: str, *args, **kwargs) -> str:
    with pytest.raises(ModelError, match=match) as info:
        load_dit(*args, dtype=torch.float32, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_reward_forcing_flat_with_model_prefix(tmp_path, small):
    path = tmp_path / "rewardforcing.pt"
    torch.save(main_part(small, "model."), path)
    assert read_checkpoint(path).layout == "pt / -model. / wan"
    assert weights_equal(load_dit(path, cfg=TINY, dtype=torch.float32), main_part(small))


@pytest.mark.parametrize("nesting", ["generator", "generator_ema", "state_dict", None])
@pytest.mark.parametrize("prefix", ["model.", ""])
def test_streamdiffusionv2_model_pt_in_every_nesting(tmp_path, small, nesting, prefix):
    """StreamDiffusionV2's loader takes `generator`, `generator_ema`, `state_dict` or the bare
    dict, with or without the wrapper's `model.` prefix: so do we."""
    path = tmp_path / "wan_causal_dmd_v2v" / "model.pt"
    path.parent.mkdir()
    tensors = main_part(small, prefix)
    torch.save({nesting: tensors} if nesting else tensors, path)
    assert weights_equal(load_dit(path, cfg=TINY, dtype=torch.float32), main_part(small))


def test_streamdiffusionv2_14b_with_the_14b_vace_module(tmp_path, big):
    path = tmp_path / "wan_causal_dmd_v2v_14b" / "model.pt"
    path.parent.mkdir()
    torch.save({"generator": main_part(big, "model.")}, path)
    module = tmp_path / "Wan2_1-VACE_module_14B_bf16.safetensors"
    save_file(vace_part(big), module)
    model = load_dit(path, vace=module, cfg=TINY_14B, dtype=torch.float32)
    assert weights_equal(model, big.state_dict())


def peft_adapted(model: WanDiT, rank: int, seed: int) -> peft.PeftModel:
    """PEFT's own LoRA on every Linear of the main blocks, random (LongLive's and MemFlow's)."""
    targets = [n for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.startswith("blocks.")]
    adapted = peft.get_peft_model(model, peft.LoraConfig(r=rank, lora_alpha=rank,
                                                         target_modules=targets))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return adapted


def forward(model: torch.nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 2, 4, 4, generator=g)
    text = torch.randn(1, TINY.text_len, TINY.text_dim, generator=g)
    with torch.no_grad():
        return model.forward_full(x, torch.full((1, 2), 700.0), text)


@pytest.mark.parametrize("nesting", ["generator", "generator_ema", "model"])
def test_memflow_base_and_lora_merged(tmp_path, small, nesting):
    """MemFlow's base.pt (its loader takes `generator` / `generator_ema`, else `model`) with
    lora.pt (`generator_lora`, PEFT, α = r) merged at load: the same output as PEFT's model."""
    base = tmp_path / "base.pt"
    torch.save({nesting: main_part(small, "model."), "step": torch.tensor(3)}, base)
    plain = WanDiT(TINY)
    plain.load_state_dict(main_part(small))
    adapted = peft_adapted(plain, rank=4, seed=63)
    lora = tmp_path / "lora.pt"
    torch.save({"generator_lora": peft.get_peft_model_state_dict(adapted)}, lora)
    merged = load_dit(base, lora=lora, cfg=TINY, dtype=torch.float32)
    want = forward(adapted.base_model.model)
    assert rel_err(forward(merged), want) < 1e-5
    assert rel_err(forward(load_dit(base, cfg=TINY, dtype=torch.float32)), want) > 1e-3


def test_krea_realtime_14b_with_the_14b_vace_module(tmp_path, big):
    path = tmp_path / "krea-realtime-video-14b.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in main_part(big, "model.").items()}, path)
    module = tmp_path / "Wan2_1-VACE_module_14B_bf16.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in vace_part(big).items()}, module)
    assert read_checkpoint(path).layout == "safetensors / -model. / wan"
    assert read_checkpoint(module).layout.endswith("vace module")
    model = load_dit(path, vace=module, cfg=TINY_14B, dtype=torch.float32)
    want = {k: v.to(torch.bfloat16) for k, v in big.state_dict().items()}
    assert weights_equal(model, want)
    assert model.cfg.vace_layers == (0, 5)


def test_wrong_pairings_and_damaged_files_are_one_line(tmp_path, small, big):
    krea = tmp_path / "krea-realtime-video-14b.safetensors"
    save_file(main_part(big, "model."), krea)
    small_vace = tmp_path / "Wan2_1-VACE_module_1_3B_bf16.safetensors"
    save_file(vace_part(small), small_vace)
    message = refused("shapes differ", krea, vace=small_vace, cfg=TINY_14B)
    assert message.startswith(str(small_vace)) and "(64, 96, 1, 2, 2) in the file" in message

    lora = tmp_path / "lora.pt"  # MemFlow's 1.3B LoRA on a 14B base
    adapted = peft_adapted(randomise(WanDiT(TINY), seed=64), rank=4, seed=65)
    torch.save({"generator_lora": peft.get_peft_model_state_dict(adapted)}, lora)
    assert str(lora) in refused("does not fit", krea, lora=lora, cfg=TINY_14B.without_vace())

    krea.write_bytes(krea.read_bytes()[: krea.stat().st_size // 2])
    assert str(krea) in refused("truncated", krea, cfg=TINY_14B.without_vace())
    base = tmp_path / "base.pt"
    torch.save({"model": main_part(small, "model.")}, base)
    base.write_bytes(base.read_bytes()[:-2048])
    assert str(base) in refused("truncated", base, cfg=TINY)


DIT_ENTRIES = {"longlive_base": WAN21_VACE_1_3B, "self_forcing": WAN21_VACE_1_3B,
               "reward_forcing": WAN21_VACE_1_3B, "sdv2_1_3b": WAN21_VACE_1_3B,
               "memflow_base": WAN21_VACE_1_3B, "wan_t2v_dit": WAN21_VACE_1_3B,
               "vace_module": WAN21_VACE_1_3B, "vace_full": WAN21_VACE_1_3B,
               "sdv2_14b": WAN21_VACE_14B, "krea_realtime_14b": WAN21_VACE_14B,
               "vace_module_14b": WAN21_VACE_14B}


@pytest.mark.parametrize("key", DIT_ENTRIES)
def test_identifying_tensors_are_those_of_the_real_network(key: str):
    """`livevace models verify` tells a 14B file from a 1.3B one by these shapes: each is the
    shape the network of that size has, and at least one differs from the other size's."""
    cfg: WanConfig = DIT_ENTRIES[key]
    other = WAN21_VACE_14B if cfg is WAN21_VACE_1_3B else WAN21_VACE_1_3B
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in WanDiT(cfg).state_dict().items()}
        others = {k: tuple(v.shape) for k, v in WanDiT(other).state_dict().items()}
    tensors = catalog.get(key).tensors
    for spec in tensors:
        name = spec.pattern.lstrip("*")
        assert shapes[name] == spec.shape, (key, name)
    assert any(others.get(t.pattern.lstrip("*")) != t.shape for t in tensors), key
