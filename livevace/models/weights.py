"""DiT and VACE checkpoints in every layout a user will have, loaded strictly.

Layouts (all end up in the original Wan names that `WanDiT` uses):

- **wan** — original Wan2.1 (`diffusion_pytorch_model.safetensors` of Wan-AI/Wan2.1-T2V-1.3B,
  Wan2.1-VACE-1.3B, sharded 14B with its `.index.json`); also with a `model.diffusion_model.`
  (ComfyUI) or `model.` (Self-Forcing / LongLive wrapper) prefix.
- **diffusers** — `WanTransformer3DModel` / `WanVACETransformer3DModel` names
  (`condition_embedder.*`, `attn1.to_q`, `scale_shift_table`, `proj_in/out` …), renamed here.
- **generator** — Self-Forcing `self_forcing_dmd.pt` (`generator` / `generator_ema`), LongLive
  `longlive_base.pt` (`generator`), MemFlow `base.pt` (`generator` / `generator_ema` / `model`),
  StreamDiffusionV2 `model.pt` (`generator` / `generator_ema` / `state_dict` / flat), Reward
  Forcing and Krea Realtime (flat, `model.` prefix), torch pickles read with `weights_only=True`.
- **lora** — LongLive's and MemFlow's `lora.pt` (PEFT, `generator_lora`), or any LoRA layout
  `livevace.models.wan.lora` reads; merged into the weights at load (W += α/r · B·A, α = r =
  256 for LongLive).
- **vace module** — `Wan2_1-VACE_module_1_3B_bf16.safetensors`: only `vace_blocks.*` and
  `vace_patch_embedding.*`; a full VACE checkpoint given as the VACE source lends only those.

Strict: a key missing or left over, or a shape that differs, is a `ModelError` naming the file,
the layout guessed and the first offending keys. Only safetensors and `torch.load(...,
weights_only=True)` are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from livevace.errors import ModelError
from livevace.models.wan.codec_weights import index_shards, key_mismatches, read_file
from livevace.models.wan.config import WanConfig
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.fp8_weights import store_fp8
from livevace.models.wan.lora import merge_state_dict, read_lora
from livevace.models.wan.names import DIFFUSERS_MARKERS, diffusers_to_wan

StateDict = dict[str, torch.Tensor]

WHAT = "DiT checkpoint"
"""How messages about a file that cannot be read name it."""

WRAPPER_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "_orig_mod.", "module.",
                    "_fsdp_wrapped_module.", "base_model.model.", "model.")
"""Prefixes that training wrappers put before every key; stripped when all keys carry one."""

NESTED_KEYS = ("generator_ema", "generator", "generator_lora", "state_dict", "module",
               "model")
"""Top-level keys of torch checkpoints whose value is the state dict (first found wins,
`generator_ema` preferred unless asked otherwise)."""

VACE_PREFIXES = ("vace_blocks.", "vace_patch_embedding.")


@dataclass
class Checkpoint:
    """A state dict in the original Wan names, with where it came from (for messages)."""

    path: Path
    layout: str
    tensors: StateDict

    def where(self) -> str:
        return f"{self.path} (layout: {self.layout})"


# ------------------------------------------------------------------------------ reading
def read_checkpoint(path: str | Path, prefer_ema: bool = True) -> Checkpoint:
    """Read any supported file (or folder / shard index) and rename it to the Wan layout."""
    path = Path(path).expanduser()
    files = _shards(path)
    raw: dict[str, object] = {}
    for file in files:
        raw.update(read_file(file, WHAT))
    layout = [path.suffix.lstrip(".") or "folder"]
    tensors = _unnest(raw, path, layout, prefer_ema)
    tensors = _strip_prefixes(tensors, layout)
    if any(m in k for k in tensors for m in DIFFUSERS_MARKERS):
        tensors = {diffusers_to_wan(k): v for k, v in tensors.items()}
        layout.append("diffusers")
    elif all(k.startswith(VACE_PREFIXES) for k in tensors):
        layout.append("vace module")
    else:
        layout.append("wan")
    return Checkpoint(path, " / ".join(layout), tensors)


def _shards(path: Path) -> list[Path]:
    if path.is_dir():
        index = sorted(path.glob("*.safetensors.index.json"))
        singles = sorted(path.glob("*.safetensors"))
        if index:
            return _shards(index[0])
        if len(singles) == 1:
            return singles
        raise ModelError(f"{path}: expected one .safetensors file or an .index.json in this "
                         f"folder, found {len(singles)}")
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    if path.name.endswith(".index.json"):
        return index_shards(path, WHAT)
    return [path]


def _unnest(raw: Mapping[str, object], path: Path, layout: list[str],
            prefer_ema: bool) -> StateDict:
    order = NESTED_KEYS if prefer_ema else ("generator",) + NESTED_KEYS
    for key in order:
        if isinstance(raw.get(key), Mapping):
            layout.append(f"[{key}]")
            return _unnest(raw[key], path, layout, prefer_ema)  # type: ignore[arg-type]
    bad = [k for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"{path}: entries that are not tensors ({', '.join(bad[:5])}); "
                         f"known nestings are {', '.join(NESTED_KEYS)}")
    return dict(raw)  # type: ignore[arg-type]


def _strip_prefixes(tensors: StateDict, layout: list[str]) -> StateDict:
    stripped = True
    while stripped and tensors:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix):]: v for k, v in tensors.items()}
                layout.append(f"-{prefix}")
                stripped = True
                break
    return tensors


# ------------------------------------------------------------------------------ config
def infer_config(tensors: Mapping[str, torch.Tensor], name: str = "checkpoint",
                 num_heads: int | None = None) -> WanConfig:
    """Shapes of a Wan layout state dict. The head count is not in the tensors: it comes from
    a config.json beside the file, else head_dim 128 (every Wan2.1 model)."""
    try:
        dim, in_ch, *patch = tensors["patch_embedding.weight"].shape
        ffn = tensors["blocks.0.ffn.0.weight"].shape[0]
        text_dim = tensors["text_embedding.0.weight"].shape[1]
        freq_dim = tensors["time_embedding.0.weight"].shape[1]
        out_ch = tensors["head.head.weight"].shape[0] // (patch[0] * patch[1] * patch[2])
    except KeyError as exc:
        raise ModelError(f"{name}: not a Wan DiT checkpoint (no {exc.args[0]})") from None
    layers = 1 + max(int(k.split(".")[1]) for k in tensors if k.startswith("blocks."))
    vace_n = len({k.split(".")[1] for k in tensors if k.startswith("vace_blocks.")})
    vace = tuple(range(0, layers, layers // vace_n))[:vace_n] if vace_n else ()
    heads = num_heads or max(1, dim // 128)
    pt, ph, pw = patch
    return WanConfig(name, dim=dim, ffn_dim=ffn, num_heads=heads, num_layers=layers,
                     in_channels=in_ch, out_channels=out_ch, patch=(pt, ph, pw),
                     freq_dim=freq_dim, text_dim=text_dim, vace_layers=vace)


# ------------------------------------------------------------------------------ loading
def load_dit(base: str | Path, *, vace: str | Path | None = None, lora: str | Path | None = None,
             cfg: WanConfig | None = None, lora_alpha: float | None = None,
             prefer_ema: bool = True, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.bfloat16, fp8_weights: bool = False) -> WanDiT:
    """Build a `WanDiT` from a generator checkpoint, an optional VACE source and LoRA.

    `base`: any DiT layout (a full VACE checkpoint brings its VACE blocks along);
    `vace`: a VACE module file or a full VACE checkpoint (only its VACE keys are taken);
    `lora`: LongLive's lora.pt, merged into the main blocks; `cfg`: the expected shapes
    (default: inferred from the tensors); `fp8_weights`: the blocks' linear weights stored
    in FP8 (`fp8_weights`, quality-affecting), each block on its way to `device`, so the
    model never sits there in full width. Everything is checked strictly.
    """
    main = read_checkpoint(base, prefer_ema)
    tensors = dict(main.tensors)
    sources = {k: main for k in tensors}
    if vace is not None:
        extra = read_checkpoint(vace, prefer_ema)
        own = [k for k in tensors if k.startswith(VACE_PREFIXES)]
        if own:
            raise ModelError(f"{main.where()} already contains VACE blocks ({own[0]}, …) and "
                             f"{extra.path} was given as VACE too; pass only one of them")
        picked = {k: v for k, v in extra.tensors.items() if k.startswith(VACE_PREFIXES)}
        if not picked:
            raise ModelError(f"{extra.where()}: no VACE keys (vace_blocks.*, "
                             f"vace_patch_embedding.*)")
        tensors.update(picked)
        sources.update({k: extra for k in picked})
    cfg = cfg or infer_config(tensors, main.path.name, _heads_from_config_json(main.path))
    if lora is not None:  # merged for good (live LoRAs: `livevace.models.wan.lora_live`)
        tensors = merge_state_dict(tensors, read_lora(lora, lora_alpha), cfg.name, 1.0, device)
    with torch.device("meta"):
        model = WanDiT(cfg)
    check_keys(model.state_dict(), tensors, sources, f"the {cfg.name} DiT")
    model.load_state_dict(tensors, strict=True, assign=True)
    model = model.for_inference(dtype)  # cast on the host: no fp32 copy on the GPU
    return store_fp8(model, device) if fp8_weights else model.to(device)


def _heads_from_config_json(path: Path) -> int | None:
    """num_heads (Wan) / num_attention_heads (diffusers) from a config.json beside the file."""
    folder = path if path.is_dir() else path.parent
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    heads = config.get("num_heads") or config.get("num_attention_heads")
    return int(heads) if isinstance(heads, int) else None


def check_keys(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
               sources: Mapping[str, Checkpoint], target: str = "the model") -> None:
    """Raise a ModelError naming file, layout and first keys for any key or shape mismatch."""
    missing, unexpected, wrong = key_mismatches(expected, given)
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys ({_first(missing)})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys ({_first(unexpected)})")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} shapes differ ({k}: {tuple(given[k].shape)} in the file, "
                        f"{tuple(expected[k].shape)} expected)")
    blamed = _source_of((wrong + unexpected + missing)[0], sources)
    raise ModelError(f"{blamed.where()}: does not match {target}: {'; '.join(problems)}")


def _source_of(key: str, sources: Mapping[str, Checkpoint]) -> Checkpoint:
    """The file a key came from, or for a missing key the file that should have held it."""
    if key in sources:
        return sources[key]
    is_vace = key.startswith(VACE_PREFIXES)
    same_part = [c for k, c in sources.items() if k.startswith(VACE_PREFIXES) == is_vace]
    return (same_part or list(sources.values()))[0]


def _first(keys: Sequence[str] | Iterable[str], n: int = 3) -> str:
    keys = list(keys)
    more = ", …" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more
