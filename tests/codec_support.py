"""Shared by the text-encoder and prompt tests: a tokenizer trained here, a tiny UMT5 written in
Wan's original key layout, and Wan's T5 encoder maths as an independent reference."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import torch
import torch.nn.functional as F

from livevace.models.wan.text import WanTextEncoder, load_text_encoder, load_tokenizer, umt5_config

CORPUS = ["a neon city at night, rain on the street", "a forest in the rain, cinematic light",
          "a dancer in a dark club with volumetric light", "slow motion smoke, red and blue"] * 10
TINY = dict(d_model=16, d_kv=4, num_heads=4, d_ff=24, num_layers=2)
TEXT_LEN = 24  # long enough that relative positions reach T5's logarithmic buckets


def train_tokenizer(folder: Path) -> Path:
    """A small unigram tokenizer with UMT5's conventions: <pad>=0, </s>=1, <unk>=2, </s> appended."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.Unigram())
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=80, unk_token="<unk>",
                                                           special_tokens=["<pad>", "</s>", "<unk>"]))
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    return folder


def wan_t5_state_dict(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights named as in Wan's `models_t5_umt5-xxl-enc-bf16.pth`."""
    g = torch.Generator().manual_seed(seed)
    d, f, h = TINY["d_model"], TINY["d_ff"], TINY["num_heads"]

    def rnd(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    sd = {"token_embedding.weight": rnd(vocab, d, std=1.0), "norm.weight": 1 + rnd(d, std=0.1)}
    for i in range(TINY["num_layers"]):
        p = f"blocks.{i}."
        sd[p + "norm1.weight"] = 1 + rnd(d, std=0.1)
        sd[p + "norm2.weight"] = 1 + rnd(d, std=0.1)
        for n in "qkvo":
            sd[p + f"attn.{n}.weight"] = rnd(d, d, std=d**-0.5)
        sd[p + "pos_embedding.embedding.weight"] = rnd(32, h, std=0.5)
        sd[p + "ffn.gate.0.weight"] = rnd(f, d, std=d**-0.5)
        sd[p + "ffn.fc1.weight"] = rnd(f, d, std=d**-0.5)
        sd[p + "ffn.fc2.weight"] = rnd(d, f, std=f**-0.5)
    return sd


def _bucket(rel: torch.Tensor, num_buckets: int = 32, max_dist: int = 128) -> torch.Tensor:
    half = num_buckets // 2
    out = (rel > 0).long() * half
    rel = rel.abs()
    exact = half // 2
    large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(max_dist / exact) * (half - exact)).long()
    return out + torch.where(rel < exact, rel, large.clamp(max=half - 1))


def wan_t5_reference(sd: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Wan's T5Encoder forward written out from its definition, on the original-layout weights."""
    h = TINY["num_heads"]

    def norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    x = sd["token_embedding.weight"].float()[ids]
    b, n, d = x.shape
    pos = torch.arange(n)
    buckets = _bucket(pos[None, :] - pos[:, None])
    for i in range(TINY["num_layers"]):
        p = {k[len(f"blocks.{i}."):]: v.float() for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        y = norm(x, p["norm1.weight"])
        q, k, v = (F.linear(y, p[f"attn.{c}.weight"]).view(b, n, h, d // h) for c in "qkv")
        bias = p["pos_embedding.embedding.weight"][buckets].permute(2, 0, 1)[None]
        scores = torch.einsum("binc,bjnc->bnij", q, k) + bias
        scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
        att = torch.einsum("bnij,bjnc->binc", scores.softmax(-1), v).reshape(b, n, d)
        x = x + F.linear(att, p["attn.o.weight"])
        y = norm(x, p["norm2.weight"])
        gated = F.linear(y, p["ffn.fc1.weight"]) * F.gelu(F.linear(y, p["ffn.gate.0.weight"]), approximate="tanh")
        x = x + F.linear(gated, p["ffn.fc2.weight"])
    x = norm(x, sd["norm.weight"].float())
    return x * mask[..., None]


def tiny_encoder(folder: Path, seed: int = 0) -> tuple[WanTextEncoder, dict[str, torch.Tensor]]:
    """A working tiny text encoder loaded through the original-layout loader."""
    tokenizer_dir = train_tokenizer(folder / "tokenizer")
    vocab = len(load_tokenizer(tokenizer_dir))
    sd = wan_t5_state_dict(vocab, seed)
    torch.save(sd, folder / "models_t5_umt5-xxl-enc-bf16.pth")
    encoder = load_text_encoder(folder / "models_t5_umt5-xxl-enc-bf16.pth", tokenizer_dir, dtype=torch.float32,
                                config=umt5_config(vocab_size=vocab, **TINY))
    encoder.text_len = TEXT_LEN
    return encoder, sd


class HeldEncoder(WanTextEncoder):
    """The real encoder, made to wait until the test releases it (like a slow 5.7B model), and
    to fail on texts listed in `fail` (like a GPU out of memory)."""

    def __init__(self, inner: WanTextEncoder, fail: tuple[str, ...] = ()) -> None:
        super().__init__(inner.model, inner.tokenizer, inner.text_len)
        self.release = threading.Event()
        self.release.set()
        self.fail = fail
        self.calls: list[tuple[str, threading.Thread]] = []

    def encode(self, texts):
        self.calls.append((texts[0], threading.current_thread()))
        assert self.release.wait(10)
        if texts[0] in self.fail:
            raise RuntimeError("CUDA out of memory")
        return super().encode(texts)
