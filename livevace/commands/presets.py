"""`livevace presets`: list, show and validate the preset files (node presets, controllers,
scenes, stratification strategies).

Names resolve exactly as `livevace run --preset` resolves them (`node_options.find_preset`):
`720p`, `default`, `scenes/ink_wash`, or the path of a file of your own. Scenes saved over
OSC are listed, shown and checked beside the shipped ones; a saved scene shadows a shipped
one of the same name, so the list shows the one that name finds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from livevace.commands import node_options
from livevace.control.mapping import load_controller
from livevace.control.scenes import load_scene
from livevace.control.tomlfiles import presets_root, user_dir
from livevace.errors import UserError

KINDS: dict[str, Callable[[Path], object]] = {
    "node": lambda path: node_options.load([str(path)]),
    "controllers": load_controller,
    "scenes": load_scene,
    "stratification": load_scene,
}
"""Kinds of preset file and the loader that checks each one. A file in a folder named after
another kind is checked as that kind; any other file is a node preset (what --preset takes)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("presets", help="list, show and validate preset files",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the presets of each kind, with descriptions")
    ls.add_argument("kind", nargs="?", choices=sorted(KINDS))
    ls.set_defaults(func=_list)
    show = actions.add_parser("show", help="print one preset file (e.g. 720p, scenes/ink_wash)")
    show.add_argument("name", metavar="NAME|PATH")
    show.set_defaults(func=_show)
    check = actions.add_parser("validate", help="check preset files by name or path "
                               "(default: all shipped and all your saved scenes)")
    check.add_argument("names", nargs="*", metavar="NAME|PATH")
    check.set_defaults(func=_validate)


def preset_files(kind: str) -> list[Path]:
    root = presets_root()
    folders = node_options.PRESET_SUBDIRS if kind == "node" else (kind,)
    return [p for sub in folders for p in sorted((root / sub).glob("*.toml"))]


def _kind_of(path: Path) -> str:
    folder = path.resolve().parent
    mine = [kind for kind in node_options.USER_KINDS if folder == user_dir(kind).resolve()]
    return mine[0] if mine else folder.name if folder.name in KINDS else "node"


def _list(args: argparse.Namespace) -> int:
    for kind in [args.kind] if args.kind else sorted(KINDS):
        print(f"{kind}:")
        shipped = {node_options.preset_name(p): p for p in preset_files(kind)}
        yours = {node_options.preset_name(p): p for p in node_options.user_presets(kind)}
        for name, path in sorted({**shipped, **yours}.items()):  # the name finds yours
            try:
                item = KINDS[kind](path)
                about = getattr(item, "description", "") or _first_comment(path) or \
                    getattr(item, "name", "")
            except UserError as exc:
                about = f"INVALID: {exc}"
            whose = "" if name not in yours else \
                "(yours, instead of the shipped one) " if name in shipped else "(yours) "
            print(f"  {name:<26} {whose}{about}")
        if kind in node_options.USER_KINDS:
            print(f"  (yours: saved in {user_dir(kind)})")
    return 0


def _first_comment(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _show(args: argparse.Namespace) -> int:
    path = node_options.find_preset(args.name)
    print(f"# {path}")
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def _validate(args: argparse.Namespace) -> int:
    names = args.names or [str(p) for kind in sorted(KINDS)
                           for p in preset_files(kind) + node_options.user_presets(kind)]
    bad = 0
    for name in names:
        try:
            path = node_options.find_preset(name)
            KINDS[_kind_of(path)](path)
            print(f"ok     {path}")
        except UserError as exc:
            print(f"error  {exc}")
            bad += 1
    print(f"{len(names) - bad} valid, {bad} with errors")
    return 1 if bad else 0
