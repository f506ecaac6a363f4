"""bootstrap.py's choice of FlashAttention-4 build: only where its kernels run."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "bootstrap.py")
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)


def test_flash4_only_for_hopper_and_blackwell_on_linux() -> None:
    assert bootstrap.flash4_extra("linux", 9, "12.8") == "flash4"
    assert bootstrap.flash4_extra("linux", 10, "13.0") == "flash4-cu13"
    assert bootstrap.flash4_extra("linux", 8, "12.8") is None  # Ampere/Ada: cuDNN only
    assert bootstrap.flash4_extra("win32", 9, "12.8") is None
    assert bootstrap.flash4_extra("linux", 0, "") is None  # no usable GPU


def test_the_extras_bootstrap_names_exist() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"flash4", "flash4-cu13"} <= set(extras)
    assert all("flash-attn-4" in extras[name][0] for name in ("flash4", "flash4-cu13"))
