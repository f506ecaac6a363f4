"""Where model files live: our models directory, and Scope's, reused when present."""

from __future__ import annotations

import os
from pathlib import Path


def models_dir() -> Path:
    """`LIVEVACE_MODELS_DIR`, else ~/.cache/livevace/models (created on first pull)."""
    env = os.environ.get("LIVEVACE_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "livevace" / "models"


def compiled_dir() -> Path:
    """Where torch.compile keeps what it compiled, between runs: `TORCHINDUCTOR_CACHE_DIR` if
    set, else ~/.cache/livevace/compiled. PyTorch's own default is in the temporary folder,
    which a reboot empties: the first start after every reboot would compile for a minute
    again."""
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "livevace" / "compiled"


def keep_compiled() -> None:
    """Point torch.compile at `compiled_dir` (before it first compiles; a setting of the
    user's stays)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(compiled_dir())


def scope_models_dir() -> Path:
    """Daydream Scope's folder: files found here are reused instead of downloaded again."""
    env = os.environ.get("DAYDREAM_SCOPE_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".daydream-scope" / "models"


def search_dirs() -> list[Path]:
    """Folders searched for a model file, in order."""
    return [models_dir(), scope_models_dir()]


def find(relative: str) -> Path | None:
    """The first existing copy of a model file or folder, or None."""
    for base in search_dirs():
        path = base / relative
        if path.exists():
            return path
    return None


def lora_dirs() -> list[Path]:
    """Folders a LoRA is looked up in by name, in order: `LIVEVACE_LORA_DIR` (else
    ~/.config/livevace/lora), then Daydream Scope's LoRA folder, used in place
    (`DAYDREAM_SCOPE_LORA_DIR`, else `lora` in its models folder)."""
    own = os.environ.get("LIVEVACE_LORA_DIR")
    scope = os.environ.get("DAYDREAM_SCOPE_LORA_DIR")
    return [Path(own).expanduser() if own else Path.home() / ".config" / "livevace" / "lora",
            Path(scope).expanduser() if scope else scope_models_dir() / "lora"]
