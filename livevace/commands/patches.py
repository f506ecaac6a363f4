"""`livevace patches`: build the host files (TouchDesigner, Ableton, TouchOSC, OBS, Resolume)
from the parameter registry and the presets, or check that the committed ones are current.

    livevace patches build [--out patches/]     write them (only files that changed)
    livevace patches check [--out patches/]     list drift; exit 1 when a rebuild is due
"""

from __future__ import annotations

import argparse
from pathlib import Path

from livevace.errors import UserError


class PatchDrift(UserError):
    """The host files on disk differ from what the registry and presets give."""

    exit_code = 1


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("patches", help="build or check the host files (TouchDesigner, "
                            "Ableton, TouchOSC, OBS, Resolume)", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, text in (("build", _build, "write the host files"),
                             ("check", _check, "report host files that are out of date")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                            help="the patches folder (default: patches/ of this checkout)")
        action.add_argument("--ndi-machine", metavar="NAME",
                            help="machine name in 'NAME (livevace)' for the OBS NDI source "
                            "(default: a placeholder; the committed files use it)")
        action.set_defaults(func=func)


def _files(args: argparse.Namespace) -> tuple[dict[str, bytes], Path]:
    from livevace.patches.build import build, default_folder
    from livevace.patches.inputs import gather

    return build(gather(ndi_machine=args.ndi_machine)), args.out or default_folder()


def _build(args: argparse.Namespace) -> int:
    from livevace.patches.build import write

    files, folder = _files(args)
    try:
        written = write(files, folder)
    except OSError as exc:
        raise UserError(f"cannot write the host files into {folder} ({exc.strerror}: "
                        f"{exc.filename})") from None
    for path in written:
        print(f"wrote {path}")
    print(f"{len(files)} host files in {folder}, {len(written)} updated")
    return 0


def _check(args: argparse.Namespace) -> int:
    from livevace.patches.build import drift

    files, folder = _files(args)
    report = drift(files, folder)
    for line in report:
        print(line)
    if report:
        raise PatchDrift(f"{len(report)} host files in {folder} are out of date: run "
                         "`livevace patches build`")
    print(f"{len(files)} host files in {folder} are current")
    return 0
