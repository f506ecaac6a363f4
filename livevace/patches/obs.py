"""OBS Studio: scene collections (Scene Collection → Import) that show livevace's output,
one through DistroAV's NDI source (every platform), one through the obs-spout2 plugin's
Spout source (Windows). IDs are derived from names, so a rebuild gives the same files."""

from __future__ import annotations

import json
import uuid
from typing import Any

from livevace.patches.inputs import Inputs
from livevace.patches.readme import render

NDI = "obs/livevace-ndi.json"
SPOUT = "obs/livevace-spout.json"
README = "obs/README.md"
SCENE = "livevace"
CANVAS = (1920, 1080)
"""Bounds the picture is fitted into (OBS's default canvas; Ctrl+F refits on another)."""
NAMESPACE = uuid.UUID("6c697665-7661-6365-2d6f-62732d73636e")
ALL_TRACKS = 0xFF
"""The audio mixers (tracks) a new source gets in libobs (obs_source_init) and OBS saves
for a source with audio: every track, so the NDI source's sound reaches the recording and
the stream. A source without audio (a scene, Spout) is saved with 0."""
AUDIO = {"ndi_source": True, "spout_capture": False, "scene": False}
"""Whether a source kind carries audio (DistroAV's NDI source does; Spout is video only)."""


def _source(kind: str, name: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "uuid": str(uuid.uuid5(NAMESPACE, name)), "id": kind,
            "versioned_id": kind, "settings": settings, "enabled": True, "flags": 0,
            "mixers": ALL_TRACKS if AUDIO[kind] else 0, "muted": False, "volume": 1.0,
            "hotkeys": {}, "private_settings": {}}


def collection(name: str, kind: str, source_name: str, settings: dict[str, Any]) -> dict[str, Any]:
    source = _source(kind, source_name, settings)
    item = {"name": source_name, "source_uuid": source["uuid"], "id": 1, "visible": True,
            "locked": False, "rot": 0.0, "pos": {"x": 0.0, "y": 0.0},
            "scale": {"x": 1.0, "y": 1.0}, "align": 5, "bounds_type": 2, "bounds_align": 0,
            "bounds": {"x": float(CANVAS[0]), "y": float(CANVAS[1])}, "crop_left": 0,
            "crop_top": 0, "crop_right": 0, "crop_bottom": 0, "private_settings": {}}
    scene = _source("scene", SCENE, {"id_counter": 1, "custom_size": False, "items": [item]})
    return {"name": name, "current_scene": SCENE, "current_program_scene": SCENE,
            "scene_order": [{"name": SCENE}], "sources": [source, scene], "groups": [],
            "transitions": [], "current_transition": "Fade", "transition_duration": 300,
            "quick_transitions": [], "saved_projectors": [], "modules": {},
            "preview_locked": False, "scaling_enabled": False}


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=4, ensure_ascii=False) + "\n"


def files(inputs: Inputs) -> dict[str, str]:
    ndi_name = f"{inputs.ndi_machine} ({inputs.sender})"
    return {
        NDI: _json(collection("livevace (NDI)", "ndi_source", "livevace NDI",
                              {"ndi_source_name": ndi_name})),
        SPOUT: _json(collection("livevace (Spout)", "spout_capture", "livevace Spout",
                                {"spoutsenders": inputs.sender})),
        README: render("obs.md", inputs, ndi_name=ndi_name),
    }
