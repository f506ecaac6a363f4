"""LoRA files in every published Wan layout: each is read into the same change and merges to
what PEFT's own merge of that LoRA gives; full differences add as written; every file that
cannot be used is refused in one line naming why (another base, another architecture,
LyCORIS, a truncated file, an unknown layout, no such file)."""

from __future__ import annotations

import copy

import pytest
import torch
from lora_support import peft_lora, write
from safetensors.torch import save_file
from wan_support import one_thread, randomise, rel_err  # noqa: F401

from livevace.errors import ModelError, UserError
from livevace.models.wan.config import TINY
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.lora import read_lora
from livevace.models.wan.lora_live import LiveLoras


@pytest.fixture(scope="module")
def base() -> WanDiT:
    return randomise(WanDiT(TINY), seed=61).requires_grad_(False)


def merged(model: WanDiT, path, scale: float = 1.0) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(model)
    live = LiveLoras(model)
    live.add("x", read_lora(path))
    live.apply({"x": scale})
    return model.state_dict()


def assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for k in want:
        assert rel_err(got[k], want[k]) < 1e-5, k


@pytest.mark.parametrize("layout, rank, alpha, stored, fmt", [
    ("peft", 4, 4, None, "peft"),
    ("peft", 4, 8, 8, "peft"),
    ("longlive", 4, 4, None, "peft"),
    ("diffusers", 4, 4, None, "diffusers"),
    ("wan", 4, 2, 2, "wan"),
    ("kohya", 8, 4, 4, "kohya"),
])
def test_each_layout_merges_as_peft_does(tmp_path, base, layout, rank, alpha, stored, fmt):
    pairs, want = peft_lora(base, rank, alpha, seed=rank + alpha)
    suffix = ".pt" if layout == "longlive" else ".safetensors"
    path = write(tmp_path / f"style{suffix}", layout, pairs, stored)
    lora = read_lora(path)
    assert lora.format == fmt and lora.rank == rank
    assert set(lora.deltas) == set(pairs)
    assert_close(merged(base, path), want)


def test_only_some_modules_and_a_scale(tmp_path, base):
    pairs, _ = peft_lora(base, 4, 4, seed=3, modules=["blocks.1.self_attn.q", "blocks.3.ffn.2"])
    path = write(tmp_path / "two.safetensors", "wan", pairs, 4)
    got = merged(base, path, scale=-0.6)
    plain = base.state_dict()
    for k in plain:
        module = k.rsplit(".", 1)[0]
        want = plain[k]
        if module in pairs and k.endswith("weight"):
            a, b = pairs[module]
            want = plain[k] - 0.6 * (b @ a)
        assert rel_err(got[k], want) < 1e-6 if module in pairs else torch.equal(got[k], want), k


def test_full_differences_add_to_weight_and_bias(tmp_path, base):
    g = torch.Generator().manual_seed(5)
    w = base.blocks[2].cross_attn.k
    diff, diff_b = torch.randn(w.weight.shape, generator=g), torch.randn(w.bias.shape, generator=g)
    mod = torch.randn(base.blocks[0].modulation.shape, generator=g)
    path = tmp_path / "diff.safetensors"
    save_file({"diffusion_model.blocks.2.cross_attn.k.diff": diff,
               "diffusion_model.blocks.2.cross_attn.k.diff_b": diff_b,
               "diffusion_model.blocks.0.modulation.diff": mod}, path)
    got = merged(base, path, scale=0.5)
    assert rel_err(got["blocks.2.cross_attn.k.weight"], w.weight + 0.5 * diff) < 1e-6
    assert rel_err(got["blocks.2.cross_attn.k.bias"], w.bias + 0.5 * diff_b) < 1e-6
    assert rel_err(got["blocks.0.modulation"], base.blocks[0].modulation + 0.5 * mod) < 1e-6


def test_the_size_of_the_change_without_forming_it(tmp_path, base):
    pairs, _ = peft_lora(base, 4, 4, seed=9)
    lora = read_lora(write(tmp_path / "n.safetensors", "kohya", pairs, 2))
    dense = torch.stack([(0.5 * b @ a).norm() for a, b in pairs.values()]).norm()
    assert abs(lora.norm() - float(dense)) < 1e-4 * float(dense)


def refused(match: str, path, model: WanDiT | None = None) -> str:
    with pytest.raises(ModelError, match=match) as info:
        lora = read_lora(path)
        if model is not None:
            LiveLoras(copy.deepcopy(model)).add("x", lora)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, UserError)
    return message


def test_bad_files_are_refused_in_one_line(tmp_path, base):
    pairs = {"blocks.0.self_attn.q": (torch.zeros(2, 1536), torch.zeros(1536, 2))}
    assert "made for Wan2.1 1.3B; it does not fit tiny (64 wide)" in refused(
        "made for", write(tmp_path / "13b.safetensors", "wan", pairs), base)
    i2v = {"blocks.0.cross_attn.k_img": (torch.zeros(2, 64), torch.zeros(64, 2)),
           "blocks.0.self_attn.q": (torch.zeros(2, 64), torch.zeros(64, 2))}
    refused(r"made for a Wan model 64 wide I2V \(image-to-video\); it does not fit tiny",
            write(tmp_path / "i2v.safetensors", "wan", i2v), base)
    lacking = {"blocks.7.self_attn.q": (torch.zeros(2, 64), torch.zeros(64, 2))}
    refused("LoRA for blocks.7.self_attn.q, which the model lacks",
            write(tmp_path / "deeper.safetensors", "wan", lacking), base)
    sd = tmp_path / "sd.safetensors"
    unet = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file({f"{unet}.lora_down.weight": torch.zeros(2, 8),
               f"{unet}.lora_up.weight": torch.zeros(8, 2)}, sd)
    refused("not a LoRA for Wan .*Stable Diffusion", sd)
    flux = tmp_path / "flux.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 8),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(8, 2)},
              flux)
    refused("not a LoRA for Wan .*transformer_blocks", flux)
    loha = tmp_path / "loha.safetensors"
    save_file({"lora_unet_blocks_0_self_attn_q.hada_w1_a": torch.zeros(64, 2),
               "lora_unet_blocks_0_self_attn_q.hada_w1_b": torch.zeros(2, 64)}, loha)
    refused("a LoHa file .*not supported", loha)
    lokr = tmp_path / "lokr.safetensors"
    save_file({"lora_unet_blocks_0_self_attn_q.lokr_w1": torch.zeros(8, 8)}, lokr)
    refused("a LoKr file", lokr)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"blocks.0.self_attn.q.weight": torch.zeros(64, 64)}, unknown)
    refused("unknown LoRA key layout", unknown)
    good = write(tmp_path / "good.safetensors", "wan",
                 {"blocks.0.self_attn.q": (torch.zeros(2, 64), torch.zeros(64, 2))})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-40])
    refused("truncated", truncated)
    refused("no such LoRA file", tmp_path / "nowhere.safetensors")
    refused("not a LoRA file", tmp_path / "notes.txt")


def test_loras_list_says_what_each_file_is(tmp_path, base, capsys):
    from livevace.cli import main

    pairs, _ = peft_lora(base, 4, 4, seed=11)
    write(tmp_path / "ink.safetensors", "kohya", pairs, 2)
    (tmp_path / "broken.safetensors").write_bytes(b"\x08\x00")
    assert main(["loras", "list", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path}:"
    assert lines[1].split() == ["broken", "refused:", "cannot", "read", "this", "LoRA", "file",
                                "(truncated,", "damaged", "or", "not", "a", "checkpoint)"]
    norm = read_lora(tmp_path / "ink.safetensors").norm()
    assert lines[2].split() == ["ink", "kohya,", "for", "a", "Wan", "model", "64", "wide,",
                                "rank", "4,", "40", "modules,", "|dW|", f"{norm:.3g}"]


def test_bench_lora_merge_rows_smoke(tmp_path, capsys):
    from livevace.cli import main

    assert main(["bench", "lora", "--weights", "tiny-random", "--device", "cpu", "--ranks", "2",
                 "--changes", "2", "--no-pipeline", "--out", str(tmp_path)]) == 0
    rows = [line.split()[3] for line in capsys.readouterr().out.splitlines()
            if line.startswith("longlive bf16 ")]
    assert rows == ["scale", "rederive", "swap", "upload", "restore"]
