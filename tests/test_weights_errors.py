"""Damaged or mismatched checkpoints give one clear line: file, layout guessed, first keys."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from wan_support import one_thread, randomise  # noqa: F401

from livevace.errors import ModelError, UserError
from livevace.models.wan.config import TINY, TINY_VACE, WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.weights import load_dit


@pytest.fixture(scope="module")
def weights():
    return randomise(WanDiT(TINY_VACE), seed=51).state_dict()


def main_part(sd):
    return {k: v for k, v in sd.items() if not k.startswith("vace")}


def refused(match, *args, **kwargs) -> str:
    with pytest.raises(ModelError, match=match) as info:
        load_dit(*args, dtype=torch.float32, **kwargs)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, UserError)
    return message


def test_truncated_files(tmp_path, weights):
    st = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file(main_part(weights), st)
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    assert str(st) in refused("truncated", st, cfg=TINY)
    pt = tmp_path / "longlive_base.pt"
    torch.save({"generator": main_part(weights)}, pt)
    pt.write_bytes(pt.read_bytes()[:-4096])
    assert str(pt) in refused("truncated", pt, cfg=TINY)


def test_missing_and_unexpected_keys_are_named(tmp_path, weights):
    sd = main_part(weights)
    del sd["blocks.2.cross_attn.norm_k.weight"]
    sd["blocks.0.self_attn.qkv.weight"] = torch.zeros(3)
    path = tmp_path / "self_forcing_dmd.pt"
    torch.save({"generator": {f"model.{k}": v for k, v in sd.items()}}, path)
    message = refused("missing 1 keys", path, cfg=TINY)
    assert str(path) in message and "[generator] / -model. / wan" in message
    assert "blocks.2.cross_attn.norm_k.weight" in message
    assert "unexpected 1 keys (blocks.0.self_attn.qkv.weight)" in message


def test_a_vace_module_of_another_model_is_refused(tmp_path, weights):
    base = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file(main_part(weights), base)
    other = WanConfig("other", dim=96, ffn_dim=96, num_heads=3, num_layers=4, freq_dim=32,
                      text_dim=24, text_len=16, vace_layers=(0, 2))
    module = tmp_path / "Wan2_1-VACE_module_14B_bf16.safetensors"
    save_file({k: v for k, v in randomise(WanDiT(other)).state_dict().items()
               if k.startswith("vace")}, module)
    message = refused("shapes differ", base, vace=module, cfg=TINY_VACE)
    assert str(module) in message and "vace module" in message
    assert "(96, 96, 1, 2, 2) in the file, (64, 96, 1, 2, 2) expected" in message


def test_vace_keys_missing_from_the_vace_file_blame_that_file(tmp_path, weights):
    base = tmp_path / "base.safetensors"
    save_file(main_part(weights), base)
    module = tmp_path / "vace_module.safetensors"
    save_file({k: v for k, v in weights.items() if k.startswith("vace_blocks.0.")}, module)
    message = refused("missing", base, vace=module, cfg=TINY_VACE)
    assert message.startswith(str(module)) and "vace_blocks.1." in message


def test_two_vace_sources_and_files_without_vace(tmp_path, weights):
    full = tmp_path / "full.safetensors"
    save_file(weights, full)
    refused("already contains VACE", full, vace=full, cfg=TINY_VACE)
    base = tmp_path / "base.safetensors"
    save_file(main_part(weights), base)
    refused("no VACE keys", base, vace=base, cfg=TINY_VACE)
    module = tmp_path / "module.safetensors"
    save_file({k: v for k, v in weights.items() if k.startswith("vace")}, module)
    refused("not a Wan DiT checkpoint", module)  # a VACE module alone is not a generator


def test_lora_that_does_not_fit(tmp_path, weights):
    base = tmp_path / "base.safetensors"
    save_file(main_part(weights), base)
    lora = tmp_path / "lora.pt"
    torch.save({"generator_lora": {
        "base_model.model.blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 64),
        "base_model.model.blocks.0.self_attn.q.lora_B.weight": torch.zeros(32, 4)}}, lora)
    assert str(lora) in refused("does not fit", base, lora=lora, cfg=TINY)
    torch.save({"base_model.model.blocks.9.ffn.0.lora_A.weight": torch.zeros(4, 64),
                "base_model.model.blocks.9.ffn.0.lora_B.weight": torch.zeros(96, 4)}, lora)
    refused("which the model lacks", base, lora=lora, cfg=TINY)
    torch.save({"base_model.model.blocks.0.ffn.0.lora_A.weight": torch.zeros(4, 64)}, lora)
    refused("lora_A only", base, lora=lora, cfg=TINY)


def test_not_a_checkpoint_at_all(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    refused("no such checkpoint", missing)
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    refused("not a state dict", listing)
    folder = tmp_path / "empty"
    folder.mkdir()
    refused("found 0", folder)

