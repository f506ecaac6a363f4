"""Diffusers' names of the Wan DiT's tensors, renamed to the original Wan names `WanDiT` uses
(`WanTransformer3DModel` / `WanVACETransformer3DModel` checkpoints, diffusers-named LoRAs)."""

from __future__ import annotations

import re

DIFFUSERS_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"^((?:vace_)?blocks\.\d+)\.scale_shift_table$", r"\1.modulation"),
    (r"^((?:vace_)?blocks\.\d+)\.attn1\.", r"\1.self_attn."),
    (r"^((?:vace_)?blocks\.\d+)\.attn2\.", r"\1.cross_attn."),
    (r"\.(self_attn|cross_attn)\.to_([qkv])\.", r".\1.\2."),
    (r"\.(self_attn|cross_attn)\.to_out\.0\.", r".\1.o."),
    (r"^((?:vace_)?blocks\.\d+)\.norm2\.", r"\1.norm3."),
    (r"^((?:vace_)?blocks\.\d+)\.ffn\.net\.0\.proj\.", r"\1.ffn.0."),
    (r"^((?:vace_)?blocks\.\d+)\.ffn\.net\.2\.", r"\1.ffn.2."),
    (r"^(vace_blocks\.\d+)\.proj_in\.", r"\1.before_proj."),
    (r"^(vace_blocks\.\d+)\.proj_out\.", r"\1.after_proj."),
)
DIFFUSERS_MARKERS = ("condition_embedder.", ".attn1.", ".attn2.", "scale_shift_table", ".ffn.net.")
"""Substrings only diffusers' names have."""


def diffusers_to_wan(key: str) -> str:
    for pattern, repl in DIFFUSERS_RENAMES:
        key = re.sub(pattern, repl, key)
    return key
