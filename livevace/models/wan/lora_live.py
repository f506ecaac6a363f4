"""LoRAs merged live, in place, into the weights the compiled step already reads.

Why in place: the compiled step and its CUDA graphs read every weight from its storage
(`compiled`); a merge that writes into that same storage costs nothing per chunk afterwards
(no LoRA branch in the forward, no recompile, no recapture), and a scale change is one
rank-r GEMM added to each weight it touches: W += (s_new − s_old) · α/r · up · down.

Exactness: the first time a LoRA touches a parameter, an exact copy of it is kept on the host
(pinned on a GPU: the memory cost is the touched weights' bytes, bf16 or FP8 as stored). When
every scale on it is back to 0 the copy is written back, so the base returns bitwise; the
copy stays while a held LoRA touches the parameter (a fader brought back up costs no new copy)
and goes with the last such LoRA (`remove`). Every `every` changes a parameter is re-derived
as base + Σ s·ΔW, so a long live session never drifts beyond one rounding of the merged
weight.

Weights stored in FP8 (`fp8_weights`): an incremental add would be rounded away by e4m3's three
mantissa bits, so each change re-derives the parameters the changed LoRAs touch from their
exact FP8 base copy (dequantised, + Σ s·ΔW in float32, re-quantised per row in place): only
what changed is re-quantised. FP8 compute copies (`linear.set_fp8`, a fused QKV's too) are
refreshed for the rows that changed. A fused QKV's q/k/v are views of the fused weight, so
writing them writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Mapping

import torch
from torch import Tensor, nn

from livevace.models.wan.fp8_weights import stored_fp8
from livevace.models.wan.linear import quantize_rows
from livevace.models.wan.lora import Delta, LoraFile, targets


@dataclass(frozen=True)
class _Part:
    """What one LoRA does to one parameter at scale 1, on the parameter's device."""

    down: Tensor | None
    up: Tensor | None
    scale: float
    full: Tensor | None

    def add_to(self, w: Tensor, s: float) -> None:
        """w += s · (this change), in place, in w's dtype (float32 GEMM accumulation)."""
        if self.down is not None and self.up is not None:
            w.addmm_(self.up.to(w.dtype), self.down.to(w.dtype), alpha=s * self.scale)
        if self.full is not None:
            w.add_(self.full.to(w.dtype), alpha=s)


Ready = dict[str, _Part]
"""A LoRA's changes by parameter name, on the weights' device."""


class LiveLoras:
    """The model's LoRAs by key and their merged scales. `add` makes a file ready (checked,
    moved to the weights' device), `apply` brings the weights to a set of scales, `remove`
    forgets a file (at scale 0)."""

    def __init__(self, model: nn.Module, every: int = 64, base_on_device: bool = False) -> None:
        self.name = getattr(getattr(model, "cfg", None), "name", type(model).__name__)
        self.model = model
        self.params = dict(model.named_parameters())
        self.shapes = {k: tuple(v.shape) for k, v in self.params.items()}
        self.every = every
        self.base_on_device = base_on_device
        """Keep the exact copies beside the weights instead of on the host: GPU memory for
        no transfer over PCIe when a weight is re-derived (every change on FP8 storage)."""
        self.parts: dict[Hashable, dict[str, _Part]] = {}
        self.scales: dict[Hashable, float] = {}
        self.base: dict[str, tuple[Tensor, ...]] = {}
        """Exact copies of the touched parameters (FP8: data and scale)."""
        self.changes: dict[str, int] = {}

    @property
    def base_bytes(self) -> int:
        """Host memory the exact base copies take now."""
        return sum(t.numel() * t.element_size() for ts in self.base.values() for t in ts)

    def prepare(self, lora: LoraFile) -> Ready:
        """`lora`'s changes checked against this model and moved to the weights' device (in
        their compute dtype), ready for `add`; safe on another thread (the slots' reader),
        so the upload never holds up a chunk. ModelError when it does not fit this model
        (names what it was made for)."""
        parts = {}
        for module, (weight, bias) in targets(lora, self.shapes, self.name).items():
            d = lora.deltas[module]
            parts[weight] = self._part(weight, Delta(d.down, d.up, d.alpha, d.diff))
            if d.diff_b is not None:
                parts[bias] = self._part(bias, Delta(diff=d.diff_b))
        if any(p.is_cuda for p in self.params.values()):
            torch.cuda.current_stream().synchronize()  # complete before another thread reads
        return parts

    def add(self, key: Hashable, lora: LoraFile | Ready) -> None:
        """Hold `lora` (or what `prepare` made of it) under `key`, merged at scale 0 until
        `apply` says otherwise."""
        self.parts[key] = self.prepare(lora) if isinstance(lora, LoraFile) else lora
        self.scales.setdefault(key, 0.0)

    def _part(self, name: str, d: Delta) -> _Part:
        p = self.params[name]  # (an FP8-stored weight's dtype is its compute dtype)

        def to(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(p.device, p.dtype)

        return _Part(to(d.down), to(d.up), d.scale, to(d.diff))

    def remove(self, key: Hashable) -> None:
        """Take `key` out of the weights and forget it, with the exact copies that no held
        LoRA touches any more."""
        self.apply({**self.scales, key: 0.0})
        self.parts.pop(key, None)
        self.scales.pop(key, None)
        held = {name for parts in self.parts.values() for name in parts}
        for name in [n for n in self.base if n not in held]:
            del self.base[name], self.changes[name]

    @torch.no_grad()
    def apply(self, scales: Mapping[Hashable, float]) -> int:
        """Merge every ready LoRA at its scale here (absent: 0); returns the parameters
        written. Only the differences from the merged scales are applied."""
        touched: dict[str, list[tuple[_Part, float]]] = {}
        for key, parts in self.parts.items():
            step = float(scales.get(key, 0.0)) - self.scales[key]
            if step:
                for name, part in parts.items():
                    touched.setdefault(name, []).append((part, step))
                self.scales[key] = float(scales.get(key, 0.0))
        if touched:  # a fused QKV rebuilt since holds new parameters of the same values
            self.params = dict(self.model.named_parameters())
        copies = _fp8_copies(self.model) if touched else {}
        for name, steps in touched.items():
            self._write(name, steps)
            if name in copies:
                _refresh(self.params[name], *copies[name])
        return len(touched)

    def _write(self, name: str, steps: list[tuple[_Part, float]]) -> None:
        p = self.params[name]
        stored = stored_fp8(p)
        if name not in self.base:
            self.base[name] = tuple(t.clone() if self.base_on_device else _host_copy(t)
                                    for t in (stored or (p.detach(),)))
            self.changes[name] = 0
        self.changes[name] += 1
        active = [(part, self.scales[k]) for k, parts in self.parts.items()
                  if (part := parts.get(name)) is not None and self.scales[k] != 0.0]
        if not active:
            for live, exact in zip(stored or (p.detach(),), self.base[name]):
                live.copy_(exact, non_blocking=True)
            self.changes[name] = 0
        elif stored is not None:
            data, row_scale = self.base[name]
            w = data.to(p.device).float() * row_scale.to(p.device)
            for part, s in active:
                part.add_to(w, s)
            q, qs = quantize_rows(w)
            stored[0].copy_(q)
            stored[1].copy_(qs)
        elif self.changes[name] >= self.every:
            w = p.detach()
            w.copy_(self.base[name][0], non_blocking=True)
            for part, s in active:
                part.add_to(w, s)
            self.changes[name] = 0
        else:
            for part, s in steps:
                part.add_to(p.detach(), s)


def _host_copy(t: Tensor) -> Tensor:
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=t.is_cuda)
    return out.copy_(t)


def _fp8_copies(model: nn.Module) -> dict[str, tuple[nn.Module, str, int]]:
    """{parameter: (owner, buffer prefix, first row)} of the FP8 compute copies
    (`linear.set_fp8`): a layer's own, or its rows of a fused QKV's."""
    out = {}
    for name, module in model.named_modules():
        if getattr(module, "weight_fp8", None) is not None:
            out[f"{name}.weight"] = (module, "", 0)
        if getattr(module, "qkv_weight_fp8", None) is not None:
            rows = module.qkv_weight_fp8.shape[0] // 3
            for i, part in enumerate("qkv"):
                out[f"{name}.{part}.weight"] = (module, "qkv_", i * rows)
    return out


def _refresh(p: Tensor, owner: nn.Module, prefix: str, first: int) -> None:
    """The FP8 compute copy's rows of parameter `p`, from its current value (written into
    the copy's e4m3 rows and scales, which its GEMMs read)."""
    data, scale = stored_fp8(p) or quantize_rows(p.detach())
    rows = slice(first, first + p.shape[0])
    copy_data, copy_scale = stored_fp8(getattr(owner, prefix + "weight_fp8"))
    copy_data[rows].copy_(data)
    copy_scale[rows].copy_(scale)
