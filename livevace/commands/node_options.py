"""The node's options: the embedded default (`livevace.config`), TOML presets layered on top,
then the command line; validated once into a `RunConfig` before anything opens.

A preset file has a `[node]` table (how the node runs) and a `[params]` table (live
parameter values at start, checked against the registry in `livevace.params`; top-level
parameter names are accepted too, so a scene or stratification file can be layered):

    [node]
    source = "camera:0"
    sinks = ["ndi:livevace", "record:show-%Y%m%d-%H%M%S.mp4"]
    width = 832
    height = 480
    fps = 30

    [params]
    control = "edges"

`--preset NAME` looks in presets/ then presets/resolutions/ (`stratification/strong` and
`scenes/ink_wash` work too: `scenes/NAME` is a scene saved in the user's scene folder
before a shipped one, as scene recall takes it); a path works too; several `--preset`
apply in order; `livevace presets list|show|validate` resolve names the same way
(`find_preset`).
`presets/default.toml` documents the embedded default (a test keeps the two equal);
`livevace run` with no options runs exactly that. A parameter value out of range, in a
preset or `--set`, is clamped and logged in one line (`Param.coerce_noted`), as over OSC.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
from pathlib import Path
from typing import Any

from livevace.config import (DEFAULT_NDI_EXTRA_IPS, NO_SIGNAL, NODE_KEYS, PREVIEW, SIZE_KEYS,
                             RunConfig)
from livevace.control.tomlfiles import error_at, presets_root, read_toml, user_dir
from livevace.errors import UserError
from livevace.io.specs import parse_sink, parse_source
from livevace.params import BY_NAME, param
from livevace.pipelines import pipeline_names

log = logging.getLogger("livevace.config")

PRESET_SUBDIRS = ("", "resolutions")
USER_KINDS = ("scenes",)
"""Preset folders with a twin the node saves into (`user_dir`): there a file shadows a
shipped one of the same name, as scene recall does."""
SCENE_KEYS = ("description", "crossfade")
"""Scene-file entries that only matter to live scene recall; a preset run ignores them."""


class ConfigError(UserError, ValueError):
    """A preset or option value that does not make a valid run."""


def validate(config: RunConfig) -> RunConfig:
    """Check everything a VJ can get wrong; raises ConfigError/SpecError (one line)."""
    parse_source(config.source)
    for sink in config.sinks:
        parse_sink(sink)
    for name, lo, hi in (("width", 64, 7680), ("height", 64, 4320)):
        v = getattr(config, name)
        if not lo <= v <= hi or v % 2:
            raise ConfigError(f"{name} {v}: must be an even number of pixels in {lo}..{hi}")
    if not 1 <= config.fps <= 240:
        raise ConfigError(f"fps {config.fps:g}: must be within 1..240")
    if config.pipeline not in ("auto", *pipeline_names()):
        raise ConfigError(f"pipeline {config.pipeline!r}: choose auto, "
                          f"{', '.join(pipeline_names())}")
    if config.preview not in PREVIEW:
        raise ConfigError(f"preview {config.preview!r}: choose {', '.join(PREVIEW)}")
    if config.no_signal not in NO_SIGNAL:
        raise ConfigError(f"no_signal {config.no_signal!r}: choose {', '.join(NO_SIGNAL)}")
    if config.max_frames is not None and config.max_frames < 1:
        raise ConfigError(f"max_frames {config.max_frames}: must be at least 1")
    if config.duration is not None and config.duration <= 0:
        raise ConfigError(f"duration {config.duration:g}: must be positive")
    for name, value in config.params.items():
        param(name).coerce(value)
    return config


def find_preset(name: str) -> Path:
    """A preset by path, or by name: presets/NAME.toml, presets/resolutions/NAME.toml
    (NAME may name a folder too: `stratification/strong`, `scenes/ink_wash`, where the
    user's saved scene comes first)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.suffix == ".toml":
        raise ConfigError(f"preset file {name!r} does not exist")
    kind, _, rest = name.partition("/")
    mine = [user_dir(kind) / f"{rest}.toml"] if kind in USER_KINDS and rest else []
    for candidate in [*mine, *(presets_root() / sub / f"{name}.toml" for sub in PRESET_SUBDIRS)]:
        if candidate.is_file():
            return candidate
    near = difflib.get_close_matches(name, preset_names(), n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else \
        " (`livevace presets list` shows them)"
    raise ConfigError(f"no preset named {name!r}{hint}")


def preset_name(path: Path) -> str:
    """The name `find_preset` knows a shipped or saved file by: its path under presets/
    without .toml, and without resolutions/ (`default`, `720p`, `scenes/ink_wash`); KIND/NAME
    in a user folder."""
    for kind in USER_KINDS:
        if path.parent == user_dir(kind):
            return f"{kind}/{path.stem}"
    name = path.relative_to(presets_root()).with_suffix("")
    return name.name if name.parent == Path("resolutions") else name.as_posix()


def user_presets(kind: str) -> list[Path]:
    """The files of `kind` in the user's folder (saved scenes), sorted."""
    return sorted(user_dir(kind).glob("*.toml")) if kind in USER_KINDS else []


def preset_names() -> list[str]:
    """Every shipped and saved preset file by the name `find_preset` takes."""
    files = [*presets_root().rglob("*.toml"), *(p for k in USER_KINDS for p in user_presets(k))]
    return sorted({preset_name(p) for p in files})


def read_preset(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(node settings, live parameter values) of one preset file; errors say 'file:line:'."""
    data, where = read_toml(path)
    node = data.pop("node", {})
    params = data.pop("params", {})
    for table, value in (("node", node), ("params", params)):
        if not isinstance(value, dict):
            raise error_at(path, where.line(key=table), f"{table} must be a table ([{table}])")
    params = dict(params)
    lines = {key: where.line("params", key=key) for key in params}
    for key in list(data):
        if key in BY_NAME:
            params[key] = data.pop(key)
            lines[key] = where.line(key=key)
        elif key in SCENE_KEYS:
            data.pop(key)
    for key in data:
        raise error_at(path, where.line(key=key), f"unknown entry {key!r} (expected [node], "
                       "[params] or parameter names)")
    typed = {}
    for key, value in node.items():
        line = where.line("node", key=key)
        if key not in NODE_KEYS:
            near = difflib.get_close_matches(key, NODE_KEYS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise error_at(path, line, f"unknown [node] key {key!r}{hint}")
        try:
            typed[key] = _typed(key, value)
        except ValueError as exc:
            raise error_at(path, line, str(exc)) from None
    for key, value in params.items():
        try:
            param(key).coerce_noted(value, lambda text: log.warning("%s:%d: %s", path,
                                                                    lines[key], text))
        except UserError as exc:
            raise error_at(path, lines[key], str(exc)) from None
    return typed, params


def _typed(key: str, value: Any) -> Any:
    """A [node] value as RunConfig holds it; ValueError says what was expected."""
    if key in ("sinks", "ndi_extra_ips"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of strings")
        return tuple(value)
    if key in ("width", "height", "max_frames"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key} must be a whole number, not {value!r}")
        return value
    if key in ("fps", "duration"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{key} must be a number, not {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text, not {value!r}")
    return value


def load(presets: list[str] | tuple[str, ...] = (), overrides: dict[str, Any] | None = None,
         params: dict[str, Any] | None = None) -> RunConfig:
    """Default ← presets in order ← overrides (node keys) ← params; validated."""
    values: dict[str, Any] = {f.name: getattr(RunConfig(), f.name)
                              for f in dataclasses.fields(RunConfig)}
    values["params"] = {}
    applied = []
    sized = False
    for name in presets:
        path = find_preset(name)
        node, preset_params = read_preset(path)
        values.update(node)
        values["params"].update(preset_params)
        applied.append(str(path))
        sized |= name != "default" and any(k in node for k in SIZE_KEYS)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _typed(key, value)
            sized |= key in SIZE_KEYS
    for name, value in (params or {}).items():
        param(name).coerce_noted(value, lambda text: log.warning("--set %s", text))
        values["params"][name] = value
    values["presets"] = tuple(applied)
    values["size_given"] = sized
    return validate(RunConfig(**values))


def _set_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, e.g. control=edges")
    return name.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The node options of `livevace run` (control options come from livevace.control)."""
    g = parser.add_argument_group("node")
    g.add_argument("--preset", action="append", default=[], metavar="NAME|PATH",
                   help="apply a preset (presets/NAME.toml or presets/resolutions/NAME.toml; "
                   "scenes/NAME: a scene you saved, else a shipped one; or a .toml path); "
                   "repeatable, later ones win")
    g.add_argument("--source", metavar="SPEC",
                   help="input: pattern (default) | camera[:INDEX] | video:PATH | ndi:NAME | "
                   "ndi:HOST:PORT | spout:NAME")
    g.add_argument("--sink", action="append", metavar="SPEC",
                   help="output, repeatable (replaces the preset's list): ndi[:NAME] | "
                   "spout[:NAME] | syphon[:NAME] | vcam | record:PATH | preview "
                   f"(default: {' '.join(RunConfig.sinks)})")
    g.add_argument("--pipeline", metavar="NAME",
                   help="auto (default: vace when weights and a CUDA GPU are present, else "
                   "controlmap) | " + " | ".join(pipeline_names()))
    g.add_argument("--control", metavar="TYPE",
                   help="control signal shown by controlmap (and fed to VACE): "
                   + ", ".join(param("control").choices))
    g.add_argument("--width", type=int, help=f"output width in pixels (default {RunConfig.width})")
    g.add_argument("--height", type=int,
                   help=f"output height in pixels (default {RunConfig.height})")
    g.add_argument("--fps", type=float, help=f"output frame rate (default {RunConfig.fps:g})")
    g.add_argument("--max-frames", type=int, metavar="N", help="stop after N output frames")
    g.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    g.add_argument("--preview", dest="preview", action="store_const", const="on",
                   help="always open a preview window")
    g.add_argument("--no-preview", dest="preview", action="store_const", const="off",
                   help="never open a preview window (default: one when a display exists)")
    g.add_argument("--no-signal", choices=NO_SIGNAL,
                   help="when the source goes silent: show the slate (default) or hold the "
                   "last picture")
    g.add_argument("--ndi-ip", action="append", metavar="IP", dest="ndi_extra_ips",
                   help="ask this address for NDI sources directly (no mDNS needed); repeatable")
    g.add_argument("--set", action="append", default=[], type=_set_value, metavar="NAME=VALUE",
                   help="set a live parameter at start (see `livevace osc --list`); repeatable")


def from_args(args: argparse.Namespace) -> RunConfig:
    overrides = {
        "source": args.source,
        "sinks": args.sink,
        "pipeline": args.pipeline,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "max_frames": args.max_frames,
        "duration": args.duration,
        "preview": args.preview,
        "no_signal": args.no_signal,
        "ndi_extra_ips": ([*DEFAULT_NDI_EXTRA_IPS, *args.ndi_extra_ips] if args.ndi_extra_ips
                          else None),
    }
    params = dict(args.set)
    if args.control is not None:
        params["control"] = args.control
    return load(["default", *args.preset] if default_preset_exists() else args.preset,
                overrides, params)


def default_preset_exists() -> bool:
    return (presets_root() / "default.toml").is_file()
