"""LoRA files for the Wan DiT, in every layout published for Wan2.1, read into one form.

Layouts, told apart by their keys (a file's keys may carry `diffusion_model.`, `transformer.`,
`base_model.model.`, `model.` before the module name):

- **peft** — `<module>.lora_A.weight` / `<module>.lora_B.weight` (`.default` allowed): PEFT,
  diffusion-pipe, LongLive's and MemFlow's `generator_lora`; with diffusers names
  (`blocks.0.attn1.to_q`) renamed to Wan's; α from `<module>.alpha` if present, else the rank
  (PEFT keeps α in its config, not in the file: LongLive's is r = α).
- **wan** — original Wan / ComfyUI: `<module>.lora_down.weight` / `lora_up.weight` + `.alpha`.
- **kohya** — kohya / musubi-tuner: `lora_unet_blocks_0_self_attn_q.lora_down.weight`, `.alpha`.
- full differences beside any of them: `<module>.diff` (the weight) and `<module>.diff_b` (the
  bias), as ComfyUI writes them.

Every layout ends up as `Delta`s per Wan module: ΔW = α/r · up · down (or the full difference),
so a merge is W += s · ΔW whatever the file was. Refused with one line (`ModelError`): LyCORIS
(LoHa, LoKr, …) and DoRA, whose change is not a fixed ΔW; keys of another architecture; a
LoRA whose shapes are another base's (`check_fits` names what it was made for). Only
safetensors and `torch.load(weights_only=True)` are read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from livevace.errors import ModelError
from livevace.models.wan.codec_weights import read_file
from livevace.models.wan.names import DIFFUSERS_MARKERS, diffusers_to_wan

WHAT = "LoRA"

SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
"""Files a LoRA folder lists (the torch ones read with `weights_only=True`)."""

PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.",
            "lora_transformer.", "_orig_mod.", "module.", "model.")
"""What trainers put before the module name; stripped key by key."""

NESTINGS = ("generator_lora", "state_dict", "lora", "model")
"""Top-level keys of torch files whose value is the LoRA's state dict."""

_PART = re.compile(r"^(?P<module>.+?)\.(?P<part>lora_[AB](?:\.default)?\.weight|"
                   r"lora_(?:down|up)\.weight|alpha|diff|diff_b)$")
_PARTS = {"lora_A.weight": "down", "lora_A.default.weight": "down", "lora_down.weight": "down",
          "lora_B.weight": "up", "lora_B.default.weight": "up", "lora_up.weight": "up",
          "alpha": "alpha", "diff": "diff", "diff_b": "diff_b"}
_LYCORIS = {"hada_w1": "LoHa", "hada_t1": "LoHa", "lokr_w1": "LoKr", "lokr_t1": "LoKr",
            "oft_": "OFT", "boft_": "BOFT", "dora_scale": "DoRA", "lora_magnitude_vector": "DoRA",
            ".ia3": "IA3"}
_OTHER = {"down_blocks": "Stable Diffusion (a UNet)", "input_blocks": "Stable Diffusion (a UNet)",
          "double_blocks": "Flux or HunyuanVideo", "single_blocks": "Flux or HunyuanVideo",
          "transformer_blocks": "a DiT with transformer_blocks (Flux, LTX-Video, CogVideoX, "
          "Mochi, …)", "lora_te": "a text encoder"}
_WAN_TOP = re.compile(r"^(blocks|vace_blocks)\.\d+\.|^(text_embedding|time_embedding|"
                      r"time_projection|head|patch_embedding|vace_patch_embedding|img_emb)\b")
_KOHYA = ((re.compile(r"^((?:vace_)?blocks)_(\d+)_((?:self|cross)_attn)_(.+)$"), r"\1.\2.\3.\4"),
          (re.compile(r"^((?:vace_)?blocks)_(\d+)_ffn_(\d+)$"), r"\1.\2.ffn.\3"),
          (re.compile(r"^((?:vace_)?blocks)_(\d+)_(.+)$"), r"\1.\2.\3"),
          (re.compile(r"^head_head$"), "head.head"),
          (re.compile(r"^(.+)_(\d+)$"), r"\1.\2"))
BASES = {1536: "Wan2.1 1.3B", 3072: "Wan2.2 5B", 5120: "Wan2.1 14B"}
"""Wan models by their hidden width (what a LoRA's shapes tell)."""


@dataclass(frozen=True)
class Delta:
    """One module's change at scale 1: α/r · up · down (a LoRA), a full weight difference, a
    bias difference; any of them."""

    down: Tensor | None = None  # [r, in]
    up: Tensor | None = None    # [out, r]
    alpha: float | None = None
    diff: Tensor | None = None
    diff_b: Tensor | None = None

    @property
    def rank(self) -> int:
        return 0 if self.down is None else self.down.shape[0]

    @property
    def scale(self) -> float:
        """α/r of the low-rank part."""
        return 1.0 if self.alpha is None or not self.rank else self.alpha / self.rank

    def weight(self) -> Tensor | None:
        """ΔW in float32 (the low-rank product plus any full difference)."""
        out = None
        if self.down is not None and self.up is not None:
            out = self.scale * (self.up.float() @ self.down.float())
        if self.diff is not None:
            out = self.diff.float() if out is None else out + self.diff.float()
        return out

    def weight_norm(self) -> float:
        """‖ΔW‖_F without forming ΔW: √tr((upᵀup)(down downᵀ)) for the low-rank part."""
        if self.diff is not None:
            w = self.weight()
            return float(w.norm()) if w is not None else 0.0
        if self.down is None or self.up is None:
            return 0.0
        up, down = self.up.double(), self.down.double()
        return abs(self.scale) * math.sqrt(max(float(((up.T @ up) * (down @ down.T)).sum()), 0.0))


@dataclass
class LoraFile:
    """A LoRA read into `Delta`s by Wan module name (`blocks.0.self_attn.q`, …)."""

    path: Path
    format: str
    deltas: dict[str, Delta] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return max((d.rank for d in self.deltas.values()), default=0)

    @property
    def width(self) -> int | None:
        """The hidden width its shapes say (a self-attention projection's input)."""
        for name, d in self.deltas.items():
            if name.endswith("self_attn.q"):
                if d.down is not None:
                    return d.down.shape[1]
                if d.diff is not None:
                    return d.diff.shape[1]
        return None

    @property
    def base(self) -> str:
        """What it was made for, as far as its shapes and modules say."""
        width = self.width
        name = BASES.get(width, f"a Wan model {width} wide" if width else "an unknown Wan model")
        if any("k_img" in m or m.startswith("img_emb") for m in self.deltas):
            name += " I2V (image-to-video)"
        return name

    def norm(self) -> float:
        """‖ΔW‖_F over the whole file (every module's weight change at scale 1)."""
        return math.sqrt(sum(d.weight_norm() ** 2 for d in self.deltas.values()))

    def where(self) -> str:
        return f"LoRA {self.path.name} ({self.format})"


def read_lora(path: str | Path, alpha: float | None = None) -> LoraFile:
    """Read a LoRA file in any layout (module doc); `alpha` overrides the file's α (a PEFT file
    whose config said otherwise than r = α). ModelError with one line on anything else."""
    path = Path(path).expanduser()
    if path.suffix not in SUFFIXES:
        raise ModelError(f"{path}: not a LoRA file (expected {', '.join(SUFFIXES)})")
    if not path.is_file():
        raise ModelError(f"{path}: no such LoRA file")
    try:
        raw: Mapping[str, object] = read_file(path, WHAT)
    except ModelError:
        raise ModelError(f"{path}: cannot read this LoRA file (truncated, damaged or not a "
                         f"checkpoint)") from None
    for key in NESTINGS:
        if isinstance(raw.get(key), Mapping):
            raw = raw[key]  # type: ignore[assignment]
            break
    tensors = {k: v for k, v in raw.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ModelError(f"{path}: no tensors in this file")
    _refuse_variants(path, tensors)
    fmt, parts = _parts(path, tensors)
    deltas = {}
    for module, got in parts.items():
        if ("down" in got) != ("up" in got):
            half = got.get("down", got.get("up"))
            name = next(k for k, v in tensors.items() if v is half).rsplit(".", 2)[-2]
            raise ModelError(f"{path}: {module} has {name} only (a truncated or damaged file)")
        a = float(got["alpha"]) if "alpha" in got else None
        deltas[module] = Delta(got.get("down"), got.get("up"), alpha if alpha is not None else a,
                               got.get("diff"), got.get("diff_b"))
        if "down" in got and got["down"].shape[0] != got["up"].shape[1]:
            raise ModelError(f"{path}: {module}: up {tuple(got['up'].shape)} and down "
                             f"{tuple(got['down'].shape)} do not multiply")
    lora = LoraFile(path, fmt, deltas)
    if not any(_WAN_TOP.match(m) for m in deltas):
        raise ModelError(f"{path}: not a LoRA for Wan (keys like {next(iter(tensors))!r}; "
                         f"made for {_architecture(tensors)})")
    return lora


def _refuse_variants(path: Path, tensors: Mapping[str, Tensor]) -> None:
    for key in tensors:
        for marker, name in _LYCORIS.items():
            if marker in key:
                raise ModelError(f"{path}: a {name} file (LyCORIS-style, key {key!r}): not "
                                 f"supported, only plain LoRAs and full differences are merged")


def _parts(path: Path, tensors: Mapping[str, Tensor]) -> tuple[str, dict[str, dict]]:
    """(layout name, {Wan module: {down, up, alpha, diff, diff_b}})."""
    formats: set[str] = set()
    parts: dict[str, dict] = {}
    for key, value in tensors.items():
        m = _PART.match(key)
        if not m:
            raise ModelError(f"{path}: unknown LoRA key layout ({key!r}; known: lora_A/lora_B, "
                             f"lora_down/lora_up + alpha, diff/diff_b)")
        module, part = m.group("module"), _PARTS[m.group("part")]
        if module.startswith("lora_unet_"):
            module = _kohya(module[len("lora_unet_"):])
            formats.add("kohya")
        else:
            module = _strip(module)
            if any(marker in "." + module for marker in DIFFUSERS_MARKERS):
                module = diffusers_to_wan(module + ".weight")[:-len(".weight")]
                formats.add("diffusers")
            elif part in ("down", "up"):
                formats.add("peft" if "lora_A" in key or "lora_B" in key else "wan")
        parts.setdefault(module, {})[part] = value
    return " + ".join(sorted(formats)) or "diff", parts


def _strip(module: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if module.startswith(prefix):
                module, stripped = module[len(prefix):], True
    return module


def _kohya(name: str) -> str:
    for pattern, repl in _KOHYA:
        if pattern.match(name):
            return pattern.sub(repl, name)
    return name


def _architecture(tensors: Mapping[str, Tensor]) -> str:
    for key in tensors:
        for marker, name in _OTHER.items():
            if marker in key:
                return name
    return "another architecture"


# ------------------------------------------------------------------------------ targets
def targets(lora: LoraFile, shapes: Mapping[str, tuple[int, ...]], model: str
            ) -> dict[str, tuple[str, str]]:
    """{module: (weight parameter, bias parameter)} of a model with these parameter shapes
    that the LoRA changes; ModelError naming what the LoRA was made for when it does not fit."""
    out = {}
    for module, d in lora.deltas.items():
        weight = f"{module}.weight" if f"{module}.weight" in shapes else module
        bias = f"{module}.bias"
        want = None
        if d.down is not None and d.up is not None:
            want = (d.up.shape[0], d.down.shape[1])
        elif d.diff is not None:
            want = tuple(d.diff.shape)
        fits = weight in shapes and (want is None or tuple(shapes[weight]) == want)
        if d.diff_b is not None:
            fits &= bias in shapes and tuple(shapes[bias]) == tuple(d.diff_b.shape)
        if not fits:
            width = shapes.get("blocks.0.self_attn.q.weight", (0, 0))[1]
            if lora.width not in (None, width) or ("I2V" in lora.base and weight not in shapes):
                raise ModelError(f"{lora.path}: made for {lora.base}; it does not fit {model} "
                                 f"({BASES.get(width, f'{width} wide')})")
            if weight not in shapes:
                raise ModelError(f"{lora.path}: LoRA for {module}, which the model lacks")
            raise ModelError(f"{lora.path}: the {module} change {want} does not fit the "
                             f"weight {tuple(shapes[weight])}")
        out[module] = (weight, bias)
    return out


def merge_state_dict(tensors: dict[str, Tensor], lora: LoraFile, model: str,
                     scale: float = 1.0, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """The state dict with the LoRA merged at `scale` (W + s·ΔW computed in float32 on
    `device`, stored in each weight's dtype): a merge at load, for good."""
    out = dict(tensors)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    for module, (weight, bias) in targets(lora, shapes, model).items():
        d = lora.deltas[module]
        dw = _moved(d, device).weight()
        if dw is not None:
            w = out[weight]
            out[weight] = (w.to(device, torch.float32) + scale * dw).to("cpu", w.dtype)
        if d.diff_b is not None:
            b = out[bias]
            out[bias] = (b.float() + scale * d.diff_b.float()).to(b.dtype)
    return out


def _moved(d: Delta, device: torch.device | str) -> Delta:
    def to(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    return Delta(to(d.down), to(d.up), d.alpha, to(d.diff), None)
