"""`--weights tiny-random`: any model's whole set at toy sizes with random weights, in memory.

Every stage of the real pipeline runs — a UMT5 text encoder, the causal DiT with VACE blocks
(the recipe's `tiny_config`, e.g. `TINY_VACE`: 4 layers, 2 VACE blocks) streaming by the
recipe (its schedule, cache policy and sampler), the Wan VAE encoder and decoder and the tiny
decoder,
all in the real architectures — fast enough on a CPU for tests and for trying the node on a
laptop. The pictures are noise that moves and reacts to every parameter, at the right sizes
and rates. Nothing is downloaded: the tokenizer is a character vocabulary built here. The
same seed gives the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from livevace.models.wan.config import TINY_VACE
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.tae import TAEConfig, TinyAutoencoder
from livevace.models.wan.text import WanTextEncoder, umt5_config
from livevace.models.wan.vae import WanVAE, WanVAEConfig
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.pipelines.vace.choices import TINY_RANDOM
from livevace.pipelines.vace.model_set import ModelSet, Progress, make_parts

TINY_VAE = WanVAEConfig(base_dim=4)
TINY_TAE = TAEConfig(encoder_width=8, decoder_widths=(16, 8, 8, 8))
TINY_TEXT = dict(d_model=TINY_VACE.text_dim, d_kv=8, num_heads=3, d_ff=48, num_layers=2)
"""The toy UMT5 (`tiny_random` makes it as wide as the recipe's tiny DiT's `text_dim`)."""
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
"""UMT5's conventions: padding 0, end of sequence 1 (appended), unknown 2."""


def char_tokenizer():
    """A tokenizer with one token per printable ASCII character (others are <unk>)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *map(chr, range(32, 127))])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                             special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>")


@torch.no_grad()
def visible(tae: TinyAutoencoder, mean: float = 0.5, std: float = 0.2) -> TinyAutoencoder:
    """Random taehv weights decode everything to black (default inits shrink the signal
    through its ReLU stack): He-initialise the convolutions and scale the last one so random
    latents decode to pictures around mid-grey with visible structure, as a trained decoder's
    would be. Uses the global random state (the caller seeds it)."""
    for module in tae.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    last: nn.Conv2d = tae.decoder[-1]
    seen: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda _m, _i, out: seen.append(out))
    tae.causal_decoder().decode(torch.randn(1, TINY_TAE.latent_channels, 3, 8, 8))
    hook.remove()
    out = seen[0]
    scale = std / out.std()
    last.weight.mul_(scale)
    last.bias.copy_(mean - out.mean(dim=(0, 2, 3)) * scale)
    return tae


def tiny_random(recipe: Recipe = LONGLIVE, seed: int = 0, device: torch.device | str = "cpu",
                progress: Progress | None = None) -> ModelSet:
    """`recipe`'s tiny model set in float32 on `device` (CPU by default; CUDA exercises the
    GPU path of the pipeline without weights). The global random state is left alone."""
    from transformers import UMT5EncoderModel

    cfg = recipe.tiny_config
    tokenizer = char_tokenizer()
    text_config = umt5_config(vocab_size=len(tokenizer), **{**TINY_TEXT, "d_model": cfg.text_dim})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dit, vae, tae, text = make_parts((
            ("DiT + VACE", lambda: WanDiT(cfg).for_inference(torch.float32)),
            ("VAE", lambda: WanVAE(TINY_VAE).eval().requires_grad_(False)),
            ("tiny decoder", lambda: visible(TinyAutoencoder(TINY_TAE).eval()
                                             .requires_grad_(False))),
            ("text encoder", lambda: UMT5EncoderModel(text_config))), progress)
    device = torch.device(device)
    encoder = WanTextEncoder(text.eval().requires_grad_(False).to(device), tokenizer,
                             text_len=cfg.text_len)
    return ModelSet(f"{recipe.name} ({TINY_RANDOM})", dit.to(device), vae.to(device),
                    tae.to(device), encoder, device, recipe, TINY_RANDOM)
