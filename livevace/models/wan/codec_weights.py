"""Reading the VAE, tiny-autoencoder and text-encoder weight files, and rejecting wrong ones.

One place turns "a path a user pointed at" into a state dict or a one-line ModelError that
says which file, what was expected and what was found (a missing key, a wrong shape), instead
of a PyTorch traceback in the middle of a show.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from livevace.errors import ModelError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_PROGRESS_BYTES = 256 << 20  # show a progress bar for files larger than this


def read_state_dict(path: str | Path, what: str, folder_file: str | None = None) -> dict[str, Tensor]:
    """Tensors of a .safetensors / .pth file, or of a diffusers-style folder (one file or
    shards with an index). Raises ModelError with the path when it is missing or unreadable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{what}: {path} does not exist (see docs/models.md; `livevace models pull` fetches it)")
    if path.is_dir():
        return _read_folder(path, what, folder_file)
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path)
        if path.suffix in TORCH_SUFFIXES:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            raise ModelError(f"{what}: {path.name} is neither .safetensors nor .pth")
    except ModelError:
        raise
    except Exception as e:  # corrupt, truncated, pickled code, not a checkpoint at all
        raise ModelError(f"{what}: cannot read {path} ({type(e).__name__}: {str(e)[:120]})") from None
    if isinstance(sd, dict) and not any(isinstance(v, Tensor) for v in sd.values()):
        inner = next((sd[k] for k in ("state_dict", "model", "module") if isinstance(sd.get(k), dict)), None)
        sd = inner if inner is not None else sd
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ModelError(f"{what}: {path} holds no state dict of tensors")
    return sd


def _read_folder(path: Path, what: str, folder_file: str | None) -> dict[str, Tensor]:
    index = sorted(path.glob("*.safetensors.index.json"))
    if index:
        shards = sorted(set(json.loads(index[0].read_text())["weight_map"].values()))
        files = [path / s for s in shards]
    elif folder_file and (path / folder_file).exists():
        files = [path / folder_file]
    else:
        files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{what}: no .safetensors weights in {path}")
    sd: dict[str, Tensor] = {}
    for f in files:
        if not f.exists():
            raise ModelError(f"{what}: shard {f.name} listed in the index is missing from {path}")
        sd.update(read_state_dict(f, what))
    return sd


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        big = path.stat().st_size > _PROGRESS_BYTES
        return {k: f.get_tensor(k) for k in tqdm(keys, desc=f"loading {path.name}", unit="tensor",
                                                 disable=not big, leave=False)}


def check_state_dict(module: nn.Module, sd: dict[str, Tensor], path: str | Path, what: str) -> None:
    """Raise ModelError unless `sd` has exactly `module`'s keys with the same shapes."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {expected[k]})" for k in expected
             if k in sd and tuple(sd[k].shape) != expected[k]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    if problems:
        raise ModelError(f"{Path(path).name} is not a {what}: {'; '.join(problems)}")
