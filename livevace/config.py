"""The run configuration as plain data: how the node runs (`RunConfig`), the embedded
default, and the names its values may take. Reading presets and the command line into one is
`livevace.commands.node_options`'s job; this module imports nothing of livevace's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

PREVIEW = ("auto", "on", "off")
NO_SIGNAL = ("slate", "hold")
DEFAULT_NDI_EXTRA_IPS = ("127.0.0.1",)
"""Addresses NDI discovery asks directly by default: the node's own machine (mDNS needs avahi
on Linux)."""


@dataclass(frozen=True)
class RunConfig:
    source: str = "pattern"
    sinks: tuple[str, ...] = ("ndi:livevace",)
    preview: str = "auto"
    """auto: add a preview window when a display exists; on: always; off: never."""
    pipeline: str = "auto"
    width: int = 832
    height: int = 480
    fps: float = 30.0
    max_frames: int | None = None
    duration: float | None = None
    no_signal: str = "slate"
    """What a silent source shows: the slate, or hold the last picture."""
    ndi_extra_ips: tuple[str, ...] = DEFAULT_NDI_EXTRA_IPS
    """Addresses NDI discovery asks directly (mDNS needs avahi on Linux)."""
    params: dict[str, Any] = field(default_factory=dict)
    presets: tuple[str, ...] = ()
    """Preset files applied (for the log)."""
    size_given: bool = False
    """The user chose the output size (--width/--height or a preset of theirs; `load` sets
    it): the generator keeps it even on a CPU, where it otherwise works smaller."""


NODE_KEYS = tuple(f.name for f in dataclasses.fields(RunConfig)
                  if f.name not in ("params", "presets", "size_given"))
SIZE_KEYS = ("width", "height")
