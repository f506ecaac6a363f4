"""Reading weight files and rejecting wrong ones: the VAE, tiny autoencoder and text encoder
here, and the file reading and key checks under `livevace.models.weights` (DiT checkpoints).

One place turns "a path a user pointed at" into a state dict or a one-line ModelError that
says which file, what was expected and what was found (a missing key, a wrong shape), instead
of a PyTorch traceback in the middle of a show.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Mapping

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
        raise _absent(path, what)
    if path.is_dir():
        return _read_folder(path, what, folder_file)
    if path.suffix != ".safetensors" and path.suffix not in TORCH_SUFFIXES:
        raise ModelError(f"{what}: {path.name} is neither .safetensors nor .pth")
    sd = read_file(path, what)
    if not any(isinstance(v, Tensor) for v in sd.values()):
        inner = next((sd[k] for k in ("state_dict", "model", "module") if isinstance(sd.get(k), dict)), None)
        sd = inner if inner is not None else sd
    if not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ModelError(f"{what}: {path} holds no state dict of tensors")
    return sd  # type: ignore[return-value]


def _absent(path: Path, what: str) -> ModelError:
    return ModelError(f"{what}: {path} does not exist (see docs/models.md; `livevace models pull` fetches it)")


def read_file(path: Path, what: str) -> dict[str, object]:
    """The top-level mapping of one .safetensors file or torch pickle (`weights_only`,
    memory-mapped when zip-format: only the tensors used are read). ModelError naming the
    file when it is missing, damaged or holds no mapping."""
    if not path.is_file():
        raise _absent(path, what)
    try:
        if path.suffix == ".safetensors":
            return dict(_read_safetensors(path))
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # corrupt, truncated, pickled code, not a checkpoint at all
        raise ModelError(f"{what}: cannot read {path}, truncated or not a checkpoint ({type(e).__name__}: "
                         f"{str(e)[:120]}); download it again with `livevace models pull`") from None
    if not isinstance(obj, Mapping):
        raise ModelError(f"{what}: {path} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def index_shards(index: Path, what: str) -> list[Path]:
    """The shard files a `*.safetensors.index.json` names (ModelError if it is no index)."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        return [index.parent / name for name in sorted(set(weight_map.values()))]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"{what}: {index} is not a safetensors shard index ({type(e).__name__}: {e})") from None


def _read_folder(path: Path, what: str, folder_file: str | None) -> dict[str, Tensor]:
    index = sorted(path.glob("*.safetensors.index.json"))
    if index:
        files = index_shards(index[0], what)
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
    expected = module.state_dict()
    missing, unexpected, wrong = key_mismatches(expected, sd)
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {tuple(expected[k].shape)})" for k in wrong]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    if problems:
        raise ModelError(f"{Path(path).name} is not a {what}: {'; '.join(problems)}")


def key_mismatches(expected: Mapping[str, Tensor], given: Mapping[str, Tensor]
                   ) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shape) keys of `given` against `expected`."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [k for k in expected if k in given and given[k].shape != expected[k].shape]
    return missing, unexpected, wrong
