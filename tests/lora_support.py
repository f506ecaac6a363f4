"""Shared by the LoRA tests: a LoRA made and merged by PEFT itself on a tiny Wan DiT, and the
same LoRA written in each published key layout."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import peft
import torch
from safetensors.torch import save_file
from torch import nn

Pairs = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""{Wan module: (A = down [r, in], B = up [out, r])}."""

_TO_DIFFUSERS = ((r"\.self_attn\.", ".attn1."), (r"\.cross_attn\.", ".attn2."),
                 (r"\.(attn[12])\.([qkv])$", r".\1.to_\2"), (r"\.(attn[12])\.o$", r".\1.to_out.0"),
                 (r"\.ffn\.0$", ".ffn.net.0.proj"), (r"\.ffn\.2$", ".ffn.net.2"))
"""Wan module names → diffusers' (`WanTransformer3DModel`), as its LoRAs are published."""


def block_linears(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and n.startswith("blocks.")]


def peft_lora(model: nn.Module, rank: int, alpha: float, seed: int,
              modules: list[str] | None = None) -> tuple[Pairs, dict[str, torch.Tensor]]:
    """A random PEFT LoRA on `modules` (default: every Linear of the main blocks) of a copy of
    `model`: its (A, B) pairs as `get_peft_model_state_dict` gives them, and the state dict
    PEFT's own `merge_and_unload` makes."""
    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=modules or block_linears(model)))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    state = peft.get_peft_model_state_dict(wrapped)
    pairs = {k[len("base_model.model."):-len(".lora_A.weight")]:
             (state[k], state[k.replace("lora_A", "lora_B")]) for k in state if ".lora_A." in k}
    return pairs, wrapped.merge_and_unload().state_dict()


def write(path: Path, layout: str, pairs: Pairs, alpha: float | None = None) -> Path:
    """The LoRA in a published layout: peft (diffusion-pipe), longlive (`generator_lora`
    pickle), diffusers, wan (ComfyUI), kohya (musubi-tuner); `alpha` stored where the layout
    keeps it."""
    out: dict[str, torch.Tensor] = {}
    for module, (a, b) in pairs.items():
        if layout == "kohya":
            name, down, up = "lora_unet_" + module.replace(".", "_"), "lora_down", "lora_up"
        elif layout == "wan":
            name, down, up = f"diffusion_model.{module}", "lora_down", "lora_up"
        elif layout == "diffusers":
            name, down, up = "transformer." + _diffusers(module), "lora_A", "lora_B"
        elif layout == "longlive":
            name, down, up = f"base_model.model.{module}", "lora_A", "lora_B"
        else:
            name, down, up = f"diffusion_model.{module}", "lora_A", "lora_B"
        out[f"{name}.{down}.weight"], out[f"{name}.{up}.weight"] = a.contiguous(), b.contiguous()
        if alpha is not None:
            out[f"{name}.alpha"] = torch.tensor(float(alpha))
    if layout == "longlive":
        torch.save({"generator_lora": out}, path)
    else:
        save_file(out, path)
    return path


def _diffusers(module: str) -> str:
    for pattern, repl in _TO_DIFFUSERS:
        module = re.sub(pattern, repl, module)
    return module
