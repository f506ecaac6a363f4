"""Scenes: named sets of parameter values, recalled with a crossfade over N chunks.

A scene file (`presets/scenes/<name>.toml` as shipped, `<user scenes>/<name>.toml` as
saved; the stratification strategies in `presets/stratification/` have the same form)::

    description = "…"
    crossfade = 4            # optional: chunks to glide over (default: transition_chunks)

    [params]                 # any writable registry parameters
    prompt = "a neon city at night :: 0.7 | rain :: 0.3"
    vace_context_scale = 1.2
    control = "pose"

Scenes are saved in the user's scene folder ($LIVEVACE_SCENES_DIR, else
~/.config/livevace/scenes), never over a shipped file; a saved scene shadows a shipped one
of the same name. Recall takes a name, an index into the list of names, or a name under the
presets folder (`stratification/strong`), never a file path: any OSC sender may recall.

Recall (`/livevace/scene <name or index>`) glides continuous values over `crossfade`
chunks, sets the others at once (the prompt fades in by the pipeline over
transition_chunks) and can wait for the next beat or bar (quantize). A file with an error
is rejected with its file and line; the parameters stay as they were. A number out of range
is clamped and logged with its file and line, as everywhere (`Param.coerce_noted`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from livevace.control.ramps import Ramps
from livevace.control.ratelog import BurstLog, shorten
from livevace.control.tomlfiles import PresetError, error_at, presets_root, read_toml, user_dir
from livevace.params import REGISTRY, ParamError, ParamStore, format_prompts, param

log = logging.getLogger("livevace.osc")

NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}(/[A-Za-z0-9_\-]{1,64})?$")
TOP_KEYS = {"description", "crossfade", "params"}
UNSAVED_GROUPS = ("scene",)
UNSAVED = ("pause", "model")
"""Left out of a saved scene: a scene is a look, and recalling one should neither pause the
show nor hold the picture while another model loads (a scene file may still name a model)."""


@dataclass(frozen=True)
class Scene:
    name: str
    path: Path
    values: dict[str, Any]
    """Coerced parameter values, in file order."""
    crossfade: int | None = None
    description: str = ""


def scenes_dir() -> Path:
    """The shipped scenes (read only to the node)."""
    return presets_root() / "scenes"


def user_scenes_dir() -> Path:
    """Where scenes are saved: $LIVEVACE_SCENES_DIR, else ~/.config/livevace/scenes."""
    return user_dir("scenes")


def scene_folders() -> tuple[Path, ...]:
    """The folders scenes are recalled from, the first one first (saved before shipped)."""
    return user_scenes_dir(), scenes_dir()


def scene_names(*folders: Path) -> list[str]:
    """Scenes by index: the sorted file names of the folders (default: `scene_folders`)."""
    names = {p.stem for f in folders or scene_folders() if f.is_dir() for p in f.glob("*.toml")}
    return sorted(names)


def resolve_scene(ref: str | int, folders: tuple[Path, ...] | None = None) -> tuple[str, Path]:
    """A scene name ('neon': the first folder that has it), an index into `scene_names`
    (2 or '2') or a name under the presets folder ('stratification/strong') → (name, file).
    Anything else, a file path above all, is refused."""
    folders = folders or scene_folders()
    names = scene_names(*folders)
    text = str(ref).strip()
    if text.isdigit() and text not in names:
        if int(text) >= len(names):
            raise ParamError(f"scene {text}: there are {len(names)} scenes (0..{len(names) - 1})")
        text = names[int(text)]
    if not NAME.match(text):
        raise ParamError(f"scene {shorten(text, 40)!r}: give a scene's name (letters, digits, - "
                         "and _) or index, not a file path (/livevace/scene/list lists them)")
    if "/" in text:
        return text, folders[-1].parent / f"{text}.toml"
    for folder in folders:
        if (folder / f"{text}.toml").is_file():
            return text, folder / f"{text}.toml"
    raise ParamError(f"scene {text!r}: no such scene in {' or '.join(map(str, folders))} "
                     "(/livevace/scene/list lists them)")


def load_scene(path: Path, name: str | None = None) -> Scene:
    """Read and check a scene file; PresetError 'file:line: …' on the first problem."""
    if not path.is_file():
        raise PresetError(f"{path}: no such scene (`livevace presets list` shows them)")
    data, where = read_toml(path)
    for key in data:
        if key not in TOP_KEYS:
            raise error_at(path, where.line(key) if isinstance(data[key], dict)
                           else where.line(key=key),
                           f"unknown key {key!r} (expected {', '.join(sorted(TOP_KEYS))})")
    crossfade = data.get("crossfade")
    if crossfade is not None and (isinstance(crossfade, bool) or not isinstance(crossfade, int)
                                  or not 0 <= crossfade <= 256):
        raise error_at(path, where.line(key="crossfade"), "crossfade must be 0..256 chunks")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise error_at(path, where.line(key="params"), "params must be a [params] table")
    values = {}
    for key, raw in params.items():
        line = where.line("params", 0, key)
        try:
            p = param(key)
            if p.readonly or p.kind == "trigger" or p.group in UNSAVED_GROUPS:
                raise ParamError(f"{key} cannot be part of a scene")
            values[key] = p.coerce_noted(
                raw, lambda text: log.warning("%s:%d: %s", path, line, text))
        except ParamError as exc:
            raise error_at(path, line, str(exc)) from None
    description = data.get("description", "")
    return Scene(name or path.stem, path, values, crossfade, str(description))


def save_scene(store: ParamStore, name: str, folder: Path | None = None) -> Path:
    """Write the current values as a scene in `folder` (default: the user's); returns its
    path."""
    if not NAME.match(name) or "/" in name:
        raise ParamError(f"scene name {shorten(name, 40)!r}: use letters, digits, - and _")
    folder = folder or user_scenes_dir()
    snap = store.snapshot()
    params: dict[str, Any] = {}
    for p in REGISTRY:
        if p.readonly or p.kind == "trigger" or p.group in UNSAVED_GROUPS or p.name in UNSAVED:
            continue
        value = snap[p.name]
        params[p.name] = format_prompts(value) if p.kind == "prompts" else \
            list(value) if isinstance(value, tuple) else value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    header = f"# Scene saved by livevace on {time.strftime('%Y-%m-%d %H:%M')}.\n"
    path.write_text(header + tomli_w.dumps({"description": "", "params": params}),
                    encoding="utf-8")
    return path


class Scenes:
    """Recall with crossfades (driven by the node loop's ticks) and save."""

    def __init__(self, store: ParamStore, ramps: Ramps,
                 folders: tuple[Path, ...] | None = None) -> None:
        self.store = store
        self.ramps = ramps
        self.folders = folders or scene_folders()
        """Recalled from in order; saved into the first (the user's)."""
        self._burst = BurstLog(log)

    def names(self) -> list[str]:
        return scene_names(*self.folders)

    def load(self, ref: str | int) -> Scene:
        name, path = resolve_scene(ref, self.folders)
        return load_scene(path, name)

    def apply(self, scene: Scene) -> None:
        """Start the crossfade to a loaded scene (all of it under the store's lock)."""
        with self.store.batch():
            if "transition_chunks" in scene.values:
                self.store.set("transition_chunks", scene.values["transition_chunks"])
            chunks = scene.crossfade if scene.crossfade is not None else \
                self.store.get("transition_chunks")
            for name, value in scene.values.items():
                self.ramps.fade(name, value, chunks)
            self.store.set("scene", scene.name)
        self._burst.info("recall", f"scene {scene.name} (crossfade {chunks} chunks)")

    def save(self, name: str) -> Path:
        path = save_scene(self.store, name, self.folders[0])
        shadows = [f for f in self.folders[1:] if (f / path.name).is_file()]
        log.info("scene saved: %s%s", path, f" (recalled instead of {shadows[0] / path.name})"
                 if shadows else "")
        return path
