"""Shows the control signal (pose, depth, edges…) instead of generating from it, so a VJ
can check in TouchDesigner what VACE will follow before the generator is loaded.

The annotator follows the live `control` parameter; a switch takes effect at the next
call. Annotators are kept once made (switching back to depth does not reload weights).
A control that cannot run here (weights missing) is said once in the log and the
previous one stays on screen; at start it falls back to edges, which needs no weights.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from livevace.errors import UserError
from livevace.frames import Annotator, Frame
from livevace.imaging import fit
from livevace.params import ParamStore

if TYPE_CHECKING:
    from livevace.config import RunConfig

log = logging.getLogger("livevace.controlmap")

FALLBACK = "edges"
"""A control that needs no model weights."""


class ControlMap:
    name = "controlmap"
    frames_per_call = 1

    def __init__(self, first: str) -> None:
        try:
            from livevace.annotators import make_annotator
        except ImportError as exc:
            raise UserError(f"the annotators are not installed ({exc})") from None
        self._make = make_annotator
        self._made: dict[str, Annotator] = {}
        self._requested = first
        self.showing = ""
        try:
            self._switch(first)
        except UserError as exc:
            if first == FALLBACK:
                raise
            log.warning("control %r cannot run here (%s); showing %r", first, exc, FALLBACK)
            self._switch(FALLBACK)

    def _switch(self, control: str) -> None:
        if control not in self._made:
            self._made[control] = self._make(control)
        self.showing = control

    def _follow(self, control: str) -> None:
        """Switch to the requested control once per request; keep the old one on failure."""
        if control == self._requested:
            return
        self._requested = control
        try:
            self._switch(control)
        except UserError as exc:
            log.warning("control %r cannot run here (%s); still showing %r",
                        control, exc, self.showing)

    def __call__(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]:
        self._follow(str(params.get("control", self.showing)))
        annotate = self._made[self.showing]
        out = []
        for f in frames:
            image = annotate(f.image)
            if image.shape != f.image.shape:
                image = fit(image, f.width, f.height)
            out.append(Frame(image, f.t_capture, f.index, f.meta))
        return out

    def close(self) -> None:
        for annotator in self._made.values():
            close = getattr(annotator, "close", None)
            if callable(close):
                close()
        self._made.clear()


def create(config: "RunConfig", store: ParamStore) -> ControlMap:
    return ControlMap(str(store.get("control")))
