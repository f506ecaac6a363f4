"""Source and sink specs as a VJ types them (`camera:1`, `ndi:Stage`, `record:show.mp4`).

Parsing is pure (no device is touched) so a bad spec fails at once, before anything opens,
with one line that shows the accepted forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from livevace.errors import UserError

SOURCE_FORMS = ("pattern", "camera[:INDEX]", "video:PATH", "ndi:NAME", "ndi:HOST:PORT",
                "spout:NAME")
SINK_FORMS = ("ndi[:NAME]", "spout[:NAME]", "syphon[:NAME]", "vcam", "record:PATH", "preview")
DEFAULT_SENDER_NAME = "livevace"
MAX_CAMERA_INDEX = 99
"""OpenCV reads an index from 100 on as a backend selector plus an index (200 is V4L2's
camera 0), so a camera index is 0..99."""

_ADDRESS = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")


class SpecError(UserError, ValueError):
    """A --source or --sink value that does not parse."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # pattern | camera | video | ndi | spout
    arg: str = ""

    @property
    def is_address(self) -> bool:
        """`ndi:HOST:PORT`: connect directly, no discovery needed."""
        return self.kind == "ndi" and bool(_ADDRESS.match(self.arg))

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


@dataclass(frozen=True)
class SinkSpec:
    kind: str  # ndi | spout | syphon | vcam | record | preview
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_source(text: str) -> SourceSpec:
    kind, _, arg = text.strip().partition(":")
    kind = kind.lower()
    forms = ", ".join(SOURCE_FORMS)
    if kind == "pattern" and not arg:
        return SourceSpec("pattern")
    if kind == "camera":
        if arg and not (arg.isdigit() and int(arg) <= MAX_CAMERA_INDEX):
            raise SpecError(f"--source {text!r}: the camera index must be a number "
                            f"0..{MAX_CAMERA_INDEX}, e.g. camera:0 (`livevace sources` lists "
                            "the cameras)")
        return SourceSpec("camera", arg or "0")
    if kind in ("video", "ndi", "spout"):
        if not arg.strip():
            raise SpecError(f"--source {text!r}: {kind} needs a {'path' if kind == 'video' else 'name'}"
                            f" (forms: {forms})")
        return SourceSpec(kind, arg if kind == "video" else arg.strip())
    raise SpecError(f"--source {text!r} is not a source; use one of: {forms}")


def parse_sink(text: str) -> SinkSpec:
    kind, _, arg = text.strip().partition(":")
    kind = kind.lower()
    forms = ", ".join(SINK_FORMS)
    if kind in ("ndi", "spout", "syphon"):
        return SinkSpec(kind, arg.strip() or DEFAULT_SENDER_NAME)
    if kind in ("vcam", "preview"):
        if arg:
            raise SpecError(f"--sink {text!r}: {kind} takes no argument")
        return SinkSpec(kind)
    if kind == "record":
        if not arg.strip():
            raise SpecError(f"--sink {text!r}: record needs a file, e.g. record:show.mp4")
        return SinkSpec("record", arg)
    raise SpecError(f"--sink {text!r} is not a sink; use one of: {forms}")
