"""Annotators by control name; each back-end is imported only when its annotator is made
(mediapipe and torch are heavy)."""

from __future__ import annotations

import importlib
from typing import Any

from livevace.errors import UserError
from livevace.frames import Annotator

_FACTORIES: dict[str, str] = {
    "gray": "livevace.annotators.gray:GrayAnnotator",
    "edges": "livevace.annotators.edges:EdgesAnnotator",
    "scribble": "livevace.annotators.edges:ScribbleAnnotator",
    "flow": "livevace.annotators.flow:FlowAnnotator",
    "pose": "livevace.annotators.pose:PoseAnnotator",
    "depth": "livevace.annotators.depth:DepthAnnotator",
    "none": "livevace.annotators.identity:IdentityAnnotator",
}


class UnknownAnnotatorError(UserError, ValueError):
    """A control name that no annotator implements."""


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_annotator(name: str, **options: Any) -> Annotator:
    """Build the annotator for control `name` (see `livevace.params.CONTROLS`).

    Raises UnknownAnnotatorError for a name it does not know and ModelError (naming
    `livevace models pull`) when an annotator's weights are missing.
    """
    if name not in _FACTORIES:
        raise UnknownAnnotatorError(
            f"unknown control {name!r}: choose one of {', '.join(sorted(_FACTORIES))}")
    return _load(_FACTORIES[name])(**options)
