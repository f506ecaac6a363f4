"""`--weights random`: a model's real set of shapes with random weights, made on the device.

Speed does not depend on weight values, so benchmarks (and a VJ trying the node's speed
before a 20 GB download) can run the real architectures at their real sizes with nothing on
disk: the recipe's DiT with its VACE blocks (Wan2.1-1.3B with the 15 VACE-1.3B blocks for
LongLive; 14B for Krea, made on the meta device and allocated once in its dtype, so no
float32 copy ever exists), the Wan VAE (127 M parameters) and the taew2_1 tiny decoder. UMT5-XXL (5.7 B parameters, 11 GB in bf16) is replaced by random
text embeddings — one random 4096-wide row per character token — because prompts are encoded
on a worker thread only when they change, never on the per-chunk path; `text_encoder="umt5"`
builds the real-shape UMT5-XXL instead (random weights) when its memory or encode time is
what is being measured. The pictures are noise. Nothing is downloaded or read.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from livevace.models.wan.dit import WanDiT
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.models.wan.tae import TAEConfig, TinyAutoencoder
from livevace.models.wan.text import WanTextEncoder, umt5_config
from livevace.models.wan.vae import WanVAE, WanVAEConfig
from livevace.pipelines.vace.choices import RANDOM
from livevace.pipelines.vace.model_set import ModelSet, Progress, make_parts
from livevace.pipelines.vace.tiny import char_tokenizer

TextEncoderChoice = Literal["random", "umt5"]
TEXT_ENCODERS: tuple[TextEncoderChoice, ...] = ("random", "umt5")


class RandomTextEmbedding(nn.Module):
    """Stands in for UMT5-XXL behind `WanTextEncoder`: token ids → a fixed random row each,
    [B, L, dim] (the DiT's text input shape; `WanTextEncoder` zeroes the padding rows)."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.shared = nn.Embedding(vocab_size, dim)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=self.shared(input_ids))


@torch.no_grad()
def materialise(module: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A module built on the meta device, allocated on `device` in `dtype` and filled with
    small random values (norm weights 1): big models are then made in seconds on the GPU,
    never in host memory."""
    module = module.to(dtype).to_empty(device=device)
    for name, p in module.named_parameters():
        if "norm" in name:
            p.fill_(1.0)
        else:
            p.normal_(0.0, 0.02)
    return module.eval().requires_grad_(False)


def random_umt5(device: torch.device, dtype: torch.dtype = torch.bfloat16,
                **config: Any) -> nn.Module:
    """UMT5-XXL's encoder at its real shape (`text.UMT5_XXL`, or changed by `config`) with
    random weights."""
    from transformers import UMT5EncoderModel

    with torch.device("meta"):
        model = UMT5EncoderModel(umt5_config(**config))
    model = materialise(model, device, dtype)
    model.encoder.embed_tokens.weight = model.shared.weight  # tied, as in the checkpoint
    return model


def random_dit(recipe: Recipe, device: torch.device, dtype: torch.dtype) -> WanDiT:
    """The recipe's DiT at its real shape, random weights straight in `dtype` on `device`."""
    with torch.device("meta"):
        dit = WanDiT(recipe.config)
    return materialise(dit, device, dtype).for_inference(dtype)


def random_set(recipe: Recipe = LONGLIVE, device: torch.device | str = "cuda",
               dtype: torch.dtype = torch.bfloat16, text_encoder: TextEncoderChoice = "random",
               seed: int = 0, progress: Progress | None = None) -> ModelSet:
    """`recipe`'s model set at the real shapes with random weights, on `device` (see module
    doc). The global random state is left alone."""
    device = torch.device(device)
    cfg = recipe.config
    tokenizer = char_tokenizer()
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []

    def text() -> nn.Module:
        if text_encoder == "umt5":
            return random_umt5(device, dtype)
        with torch.device(device):
            return RandomTextEmbedding(len(tokenizer), cfg.text_dim).to(dtype).eval()

    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        with torch.device(device):
            dit, vae, tae, umt5 = make_parts((
                ("DiT + VACE", lambda: random_dit(recipe, device, dtype)),
                ("VAE", lambda: WanVAE(WanVAEConfig()).to(dtype).eval().requires_grad_(False)),
                ("tiny decoder", lambda: TinyAutoencoder(TAEConfig()).to(dtype).eval()
                 .requires_grad_(False)),
                ("text encoder", text)), progress)
    encoder = WanTextEncoder(umt5, tokenizer, text_len=cfg.text_len)
    return ModelSet(f"{recipe.name} ({RANDOM})", dit, vae, tae, encoder, device, recipe, RANDOM)
