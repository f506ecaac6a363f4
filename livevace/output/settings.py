"""The output path's live parameters, read once per burst: `output_fps`, `output_size`,
`upscale_model`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class OutputSettings:
    rate: float
    """Output frames a second made by interpolation; 0: off."""
    size: tuple[int, int] | None
    """(width, height) to upscale to; None: off."""
    model: str
    """The upscaling network: a catalogue key, a file path, or `lanczos`."""

    @property
    def active(self) -> bool:
        return bool(self.rate) or self.size is not None

    @classmethod
    def of(cls, params: Mapping[str, Any], width: int, height: int) -> "OutputSettings":
        """From a registry snapshot; frames are `width` × `height` before upscaling (one
        number in `output_size` is a width, the height following the frames' aspect)."""
        return cls(float(params.get("output_fps", 0) or 0),
                   output_size(params.get("output_size", (0, 0)), width, height),
                   str(params.get("upscale_model", "lanczos")))


def output_size(value: Any, width: int, height: int) -> tuple[int, int] | None:
    sides = [int(v) for v in (value or ())]
    if not sides or sides[0] <= 0:
        return None
    w = sides[0]
    h = sides[1] if len(sides) > 1 and sides[1] > 0 else 2 * round(w * height / width / 2)
    return None if (w, h) == (width, height) else (w, h)
