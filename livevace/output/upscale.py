"""Upscaling in the output path: a super-resolution network loaded through spandrel, then an
exact-size Lanczos step; Lanczos alone where no network is chosen, found or fast enough.

spandrel recognises the common SR architectures from a checkpoint's keys (Real-ESRGAN's
compact SRVGGNet, SPAN, ESRGAN and many more), so the VJ may pick any file: a catalogue key
(`livevace models pull span_2x`) or a path. The catalogue ships one fast 2× and one 4×
network (`store.catalog.OUTPUT_FILES`).

spandrel imports torchvision for two architectures livevace never loads (LaMa inpainting,
RestoreFormer faces). torchvision is no dependency of livevace: the wheels on the package
index are CUDA builds that do not load beside a CPU PyTorch (and then break transformers'
imports too), so bootstrap installs spandrel without its dependencies, and where torchvision
is absent or broken the import sees a stand-in whose functions say what is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from livevace.errors import ModelError
from livevace.output.lanczos import resize

log = logging.getLogger("livevace.output")

LANCZOS = "lanczos"
"""The `upscale_model` value that asks for the plain resize."""


def _torchvision_works() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        importlib.import_module("torchvision.transforms.functional")
        return True
    except Exception:  # noqa: BLE001 - a CUDA build beside a CPU torch fails in many ways
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False


def _absent(*_: Any, **__: Any) -> Any:
    raise ModelError("this model needs torchvision, which is not installed")


def import_spandrel() -> types.ModuleType:
    """spandrel, with a stand-in for torchvision while it imports when the real one cannot
    load (module doc); the stand-in leaves `sys.modules` afterwards, so nothing else sees it."""
    if "spandrel" in sys.modules or _torchvision_works():
        return importlib.import_module("spandrel")
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    stubs = {n: types.ModuleType(n) for n in names}
    functional = stubs["torchvision.transforms.functional"]
    functional.rotate = functional.normalize = _absent  # type: ignore[attr-defined]
    functional.InterpolationMode = type("InterpolationMode", (), {  # type: ignore[attr-defined]
        "BILINEAR": "bilinear", "NEAREST": "nearest"})
    sys.modules.update(stubs)
    try:
        return importlib.import_module("spandrel")
    finally:
        for n in names:
            sys.modules.pop(n, None)


@dataclass(frozen=True)
class Network:
    """A loaded SR network: `run` maps [B, 3, H, W] in [0, 1] to [B, 3, H·scale, W·scale]."""

    name: str
    arch: str
    scale: int
    run: Callable[[Tensor], Tensor]


def load_network(path: Path, device: torch.device, dtype: torch.dtype) -> Network:
    """The SR network in `path` (any architecture spandrel knows), on `device` in `dtype`
    (float32 where the architecture does not support half precision); ModelError otherwise."""
    spandrel = import_spandrel()
    if not path.is_file():
        raise ModelError(f"upscaler: {path} does not exist")
    try:
        descriptor = spandrel.ModelLoader().load_from_file(str(path))
    except Exception as e:  # noqa: BLE001 - spandrel raises many kinds for a foreign file
        raise ModelError(f"upscaler: {path.name} is no super-resolution model spandrel knows "
                         f"({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise ModelError(f"upscaler: {path.name} is a {descriptor.architecture.name} model "
                         f"for {descriptor.purpose}, not super-resolution")
    half = dtype == torch.float16 and descriptor.supports_half
    descriptor.to(device, torch.float16 if half else torch.float32).eval()
    run = network_runner(descriptor.model, descriptor.dtype, descriptor)
    return Network(path.name, str(descriptor.architecture.id), int(descriptor.scale), run)


class FoldedConv(torch.nn.Module):
    """A re-parameterised block after folding: its one 3×3 convolution, then the block's leaky
    ReLU where it has one."""

    def __init__(self, conv: torch.nn.Conv2d, relu: bool) -> None:
        super().__init__()
        self.conv = conv
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return torch.nn.functional.leaky_relu(out, 0.05) if self.relu else out


def fold_reparameterised(module: torch.nn.Module) -> int:
    """Replace each re-parameterised block in `module` (SPAN's `Conv3XC`: a 1×1, 3×3, 1×1 chain
    and a 1×1 skip that fold into one 3×3 convolution) by its folded convolution, and return
    how many. spandrel's block refolds its weights on every call in eval mode: a score of small
    kernels per block per frame, and a `.data` swap inside `forward` that compilers cannot
    trace. The fold runs once here, in float32 whatever the network's dtype."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            conv = getattr(child, "eval_conv", None)
            if not (isinstance(conv, torch.nn.Conv2d) and hasattr(child, "update_params")):
                continue
            dtype = conv.weight.dtype
            with torch.no_grad():
                child.float()
                child.update_params()
            folded = FoldedConv(child.eval_conv.to(dtype), bool(getattr(child, "has_relu", False)))
            setattr(parent, name, folded.requires_grad_(False))
            count += 1
    return count


def network_runner(module: torch.nn.Module, dtype: torch.dtype,
                   forward: Callable[[Tensor], Tensor] | None = None,
                   channels_last: bool | None = None) -> Callable[[Tensor], Tensor]:
    """`forward` (default: `module`) in inference mode at `dtype`, the result in the input's
    dtype, with its re-parameterised blocks folded (`fold_reparameterised`). Channels-last
    (default: on a GPU) puts the weights and each input in the layout cuDNN's half-precision
    convolutions run fastest in."""
    fold_reparameterised(module)
    if channels_last is None:
        channels_last = next(module.parameters()).is_cuda
    if channels_last:
        module.to(memory_format=torch.channels_last)
    call = forward or module

    def run(images: Tensor) -> Tensor:
        with torch.inference_mode():
            x = images.to(dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return call(x).to(images.dtype)

    return run


class Upscaler:
    """Frames at the generated size → frames at `size` (width, height): the network (if any)
    then Lanczos to the exact size."""

    def __init__(self, network: Network | None) -> None:
        self.network = network

    @property
    def describe(self) -> str:
        n = self.network
        return "Lanczos resize" if n is None else f"{n.name} ({n.arch} {n.scale}x) + Lanczos"

    def __call__(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        width, height = size
        if images.shape[-2:] == (height, width):
            return images
        if self.network is not None and images.shape[-1] < width:
            images = self.network.run(images)
        return resize(images, height, width).clamp(0.0, 1.0)

    def per_frame_ms(self, height: int, width: int, device: torch.device,
                     dtype: torch.dtype, batch: int = 4) -> float:
        """Measured time of the network on `batch` frames of this size (after one warm-up
        call), per frame; 0 without a network."""
        if self.network is None:
            return 0.0
        x = torch.rand(batch, 3, height, width, device=device, dtype=dtype)
        self.network.run(x)
        if device.type != "cuda":
            t0 = time.perf_counter()
            self.network.run(x)
            return (time.perf_counter() - t0) * 1e3 / batch
        # events on the calling stream: a device-wide synchronise would also wait for (and
        # time) whatever else the GPU is doing, in a node the generator's queued steps
        stream = torch.cuda.current_stream(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        self.network.run(x)
        end.record(stream)
        end.synchronize()
        return start.elapsed_time(end) / batch
