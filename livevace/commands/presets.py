"""`livevace presets`: list, show and validate the preset files (controllers, scenes,
stratification strategies)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from livevace.control.mapping import load_controller
from livevace.control.scenes import load_scene
from livevace.control.tomlfiles import PresetError, presets_root
from livevace.errors import UserError

KINDS: dict[str, Callable[[Path], object]] = {
    "controllers": load_controller,
    "scenes": load_scene,
    "stratification": load_scene,
}
"""Preset folders and the loader that checks each file's schema."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("presets", help="list, show and validate preset files",
                            description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the presets of each kind, with descriptions")
    ls.add_argument("kind", nargs="?", choices=sorted(KINDS))
    ls.set_defaults(func=_list)
    show = actions.add_parser("show", help="print one preset file (e.g. scenes/ink_wash)")
    show.add_argument("name")
    show.set_defaults(func=_show)
    check = actions.add_parser("validate", help="check preset files (default: all of them)")
    check.add_argument("paths", nargs="*", type=Path)
    check.set_defaults(func=_validate)


def preset_files(kind: str) -> list[Path]:
    return sorted((presets_root() / kind).glob("*.toml"))


def _kind_of(path: Path) -> str:
    kind = path.resolve().parent.name
    if kind not in KINDS:
        raise UserError(f"{path}: not in a preset folder ({', '.join(KINDS)})")
    return kind


def _list(args: argparse.Namespace) -> int:
    for kind in [args.kind] if args.kind else sorted(KINDS):
        print(f"{kind}:")
        for path in preset_files(kind):
            try:
                item = KINDS[kind](path)
                about = getattr(item, "description", "") or _first_comment(path) or \
                    getattr(item, "name", "")
            except PresetError as exc:
                about = f"INVALID: {exc}"
            print(f"  {path.stem:<20} {about}")
    return 0


def _first_comment(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _show(args: argparse.Namespace) -> int:
    name = args.name.removesuffix(".toml")
    candidates = [presets_root() / f"{name}.toml"] if "/" in name else \
        [presets_root() / kind / f"{name}.toml" for kind in KINDS]
    for path in candidates:
        if path.is_file():
            print(f"# {path}")
            sys.stdout.write(path.read_text(encoding="utf-8"))
            return 0
    raise UserError(f"no preset {args.name!r} (`livevace presets list` shows them)")


def _validate(args: argparse.Namespace) -> int:
    paths = args.paths or [p for kind in sorted(KINDS) for p in preset_files(kind)]
    bad = 0
    for path in paths:
        try:
            KINDS[_kind_of(path)](path)
            print(f"ok     {path}")
        except PresetError as exc:
            print(f"error  {exc}")
            bad += 1
    print(f"{len(paths) - bad} valid, {bad} with errors")
    return 1 if bad else 0
