"""Which optional backends this platform can have, and the one line that says so."""

from __future__ import annotations

import sys

from livevace.errors import SinkError, SourceError

PLATFORM_OF = {"spout": ("win32", "Windows"), "syphon": ("darwin", "macOS")}
ALTERNATIVES = {"spout": "use ndi instead (TouchDesigner: NDI In TOP)",
                "syphon": "use ndi instead (most macOS hosts read NDI too)"}


def require(backend: str, *, source: bool = False) -> None:
    """Raise the one-line error for a backend this operating system cannot have."""
    plat, label = PLATFORM_OF[backend]
    if not sys.platform.startswith(plat):
        error = SourceError if source else SinkError
        raise error(f"{backend} is not available on this platform ({label} only): "
                    f"{ALTERNATIVES[backend]}")


def import_backend(backend: str, module: str, package: str, *, source: bool = False):
    """Import an optional backend module or raise one line naming how to get it."""
    require(backend, source=source)
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        error = SourceError if source else SinkError
        raise error(f"{backend} needs the {package!r} package ({exc}); reinstall livevace "
                    f"(`make run` does) or {ALTERNATIVES[backend]}") from None
