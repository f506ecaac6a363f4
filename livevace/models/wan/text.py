"""UMT5-XXL text encoder (through `transformers`).

Weights come in three forms, all loaded into `transformers.UMT5EncoderModel`:
- a diffusers `text_encoder/` folder (config.json + safetensors shards, transformers names);
- Wan's original `models_t5_umt5-xxl-enc-bf16.pth` (Wan's own names: converted here);
- a single safetensors file in either naming, in bf16 or fp8 (Kijai's
  `umt5-xxl-enc-fp8_e4m3fn.safetensors`, ComfyUI's scaled fp8 with `.scale_weight`s); fp8
  weights are upcast at load or, with `keep_fp8`, kept in fp8 and upcast per matmul.
Encoding follows Wan: text cleaned (ftfy when installed, HTML entities, whitespace), 512
tokens with </s>, all positions encoded with padding masked, then the padding rows set to
zero, the form the DiT's text embedding expects.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from livevace.errors import ModelError
from livevace.models.wan.codec_weights import check_state_dict, read_state_dict

TEXT_LEN = 512
UMT5_XXL: dict[str, Any] = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                                num_heads=64, relative_attention_num_buckets=32,
                                relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                                layer_norm_epsilon=1e-6, dropout_rate=0.0)
"""Wan's `umt5_xxl` encoder (5.7B parameters), in `transformers.UMT5Config` terms."""

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)

_WAN_T5_KEYS = [
    (r"token_embedding\.weight", "shared.weight"),
    (r"norm\.weight", "encoder.final_layer_norm.weight"),
    (r"blocks\.(\d+)\.norm1\.weight", r"encoder.block.\1.layer.0.layer_norm.weight"),
    (r"blocks\.(\d+)\.attn\.([qkvo])\.weight", r"encoder.block.\1.layer.0.SelfAttention.\2.weight"),
    (r"blocks\.(\d+)\.pos_embedding\.embedding\.weight",
     r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias.weight"),
    (r"blocks\.(\d+)\.norm2\.weight", r"encoder.block.\1.layer.1.layer_norm.weight"),
    (r"blocks\.(\d+)\.ffn\.gate\.0\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wi_0.weight"),
    (r"blocks\.(\d+)\.ffn\.fc1\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wi_1.weight"),
    (r"blocks\.(\d+)\.ffn\.fc2\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wo.weight"),
]
"""Wan's T5Encoder (shared_pos=False: a relative-position table per block; FFN =
fc1(x) · gelu_tanh(gate(x))) → transformers' UMT5 (wi_0 is the GELU branch, wi_1 the linear)."""


def umt5_config(**overrides: Any):
    from transformers import UMT5Config

    return UMT5Config(**{**UMT5_XXL, **overrides})


def convert_wan_t5_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Wan's original T5 encoder names → transformers' UMT5EncoderModel names (others kept,
    so the shape check names them)."""
    out = {}
    for key, value in sd.items():
        for pattern, repl in _WAN_T5_KEYS:
            new, hit = re.subn(f"^{pattern}$", repl, key)
            if hit:
                key = new
                break
        out[key] = value
    return out


class Fp8Linear(nn.Module):
    """A bias-free Linear whose weight stays in fp8 (half of bf16's memory), upcast per call."""

    def __init__(self, weight: Tensor, scale: Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype)
        return F.linear(x, w if self.scale is None else w * self.scale.to(x.dtype))


_MARKERS = ("scaled_fp8", "spiece_model")
"""Non-weight entries some single-file checkpoints carry."""
_KEEP_UPCAST = ("relative_attention_bias.weight", "DenseReluDense.wo.weight")
"""Never kept in fp8: an embedding table, and `wo`, whose input transformers casts to wo's dtype."""


def _prepare(sd: dict[str, Tensor], scales: dict[str, Tensor], device: torch.device | str, dtype: torch.dtype,
             keep_fp8: bool) -> tuple[dict[str, Tensor], dict[str, tuple[Tensor, Tensor | None]]]:
    """Move every tensor to `device` in `dtype` (a progress bar: gigabytes for the real model),
    upcasting fp8 ones with their ComfyUI-style scale; with `keep_fp8` the fp8 Linear weights of
    the blocks are set aside in fp8 instead, with their scales."""
    out, kept = {}, {}
    big = sum(v.numel() * v.element_size() for v in sd.values()) > 1 << 30
    for key, v in tqdm(sd.items(), desc="text encoder", unit="tensor", disable=not big, leave=False):
        scale = scales.get(key.removesuffix(".weight"))
        scale = None if scale is None else scale.to(device, torch.float32)
        if v.dtype in FP8_DTYPES and keep_fp8 and ".block." in key and v.dim() == 2 \
                and not key.endswith(_KEEP_UPCAST):
            kept[key] = (v.to(device), scale)
            continue
        v = v.to(device)
        if v.dtype in FP8_DTYPES:
            v = v.to(torch.float32) * (1.0 if scale is None else scale)
        out[key] = v.to(dtype) if v.is_floating_point() else v
    return out, kept


def load_umt5(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16,
              config: Any = None, keep_fp8: bool = False):
    """Load the UMT5 encoder from any of the supported files (see module doc); wrong files
    raise ModelError naming what is missing or misshapen."""
    from transformers import UMT5Config, UMT5EncoderModel

    path = Path(path).expanduser()
    if config is None:
        config = UMT5Config.from_pretrained(path) if (path / "config.json").is_file() else umt5_config()
    raw = read_state_dict(path, "UMT5 text encoder")
    if "blocks.0.attn.q.weight" in raw or "token_embedding.weight" in raw:
        raw = convert_wan_t5_keys(raw)
    scales = {k.removesuffix(".scale_weight"): v for k, v in raw.items() if k.endswith(".scale_weight")}
    tensors = {k: v for k, v in raw.items() if not k.endswith(".scale_weight") and k not in _MARKERS}
    for a, b in (("shared.weight", "encoder.embed_tokens.weight"), ("encoder.embed_tokens.weight", "shared.weight")):
        if a in tensors and b not in tensors:
            tensors[b] = tensors[a]  # tied embedding, often saved once
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    check_state_dict(model, tensors, path, "UMT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth or a text_encoder/ folder)")
    tensors.pop("encoder.embed_tokens.weight")  # moved once, tied below
    sd, fp8 = _prepare(tensors, scales, device, dtype, keep_fp8)
    sd["encoder.embed_tokens.weight"] = sd["shared.weight"]
    for key, (weight, scale) in fp8.items():
        parent, _, _ = key.removesuffix(".weight").rpartition(".")
        name = key.removesuffix(".weight").rsplit(".", 1)[1]
        setattr(model.get_submodule(parent), name, Fp8Linear(weight, scale))
    model.load_state_dict(sd, assign=True, strict=not fp8)
    model.encoder.embed_tokens.weight = model.shared.weight
    return model.eval().requires_grad_(False)


def load_text_encoder(weights: str | Path, tokenizer: str | Path, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.bfloat16, keep_fp8: bool = False,
                      config: Any = None) -> "WanTextEncoder":
    """The encoder from its weights (any supported form) and the umt5-xxl tokenizer folder."""
    return WanTextEncoder(load_umt5(weights, device, dtype, config, keep_fp8), load_tokenizer(tokenizer))


def load_tokenizer(path: str | Path):
    """The google/umt5-xxl tokenizer from a local folder (never downloads)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(Path(path).expanduser()), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"tokenizer: cannot load {path} ({str(e).splitlines()[0][:120]})") from None


def clean_text(text: str) -> str:
    """Wan's prompt cleaning: ftfy (when installed), HTML entities twice, one space."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class WanTextEncoder:
    """Tokenizer + UMT5 encoder: texts → [B, 512, 4096] embeddings, padding rows zero."""

    def __init__(self, model: nn.Module, tokenizer: Any, text_len: int = TEXT_LEN) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.text_len = text_len

    @property
    def device(self) -> torch.device:
        return self.model.shared.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.shared.weight.dtype

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(embeddings [B, text_len, D] with padding rows zeroed, token counts [B])."""
        tok = self.tokenizer([clean_text(t) for t in texts], padding="max_length", truncation=True,
                             max_length=self.text_len, add_special_tokens=True, return_tensors="pt")
        ids, mask = tok.input_ids.to(self.device), tok.attention_mask.to(self.device)
        return self.encode_ids(ids, mask), mask.sum(1)

    @torch.no_grad()
    def encode_ids(self, ids: Tensor, mask: Tensor) -> Tensor:
        out = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return out * mask[..., None].to(out.dtype)
