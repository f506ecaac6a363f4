"""`livevace` command line: one small module per subcommand under livevace/commands/."""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import re
import sys
import threading
from importlib.util import find_spec
from pathlib import Path

from livevace import __version__
from livevace.errors import UserError
from livevace.store.paths import keep_compiled

COMMANDS = ("run", "sources", "bench", "soak", "models", "loras", "osc", "midi", "presets",
            "patches", "experiment")
"""Subcommands, each a module livevace.commands.<name> with `register(subparsers)`."""


_PARSING = threading.Lock()
"""CPython 3.11's parser is not safe to run on two threads at once (SystemError: AST
constructor recursion depth mismatch): the CLI can be built on several threads of one
process (tests, a host embedding it)."""


def module_source(module: str) -> ast.Module | None:
    """A module's parsed source, read without importing it (imports can be heavy)."""
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        return None
    text = Path(spec.origin).read_text(encoding="utf-8")
    with _PARSING:
        return ast.parse(text)


def summary(module: str) -> str:
    """The first sentence of a module's docstring, whole (a docstring wraps its lines, so the
    first line alone stops mid-sentence), without a leading "`livevace …`: "."""
    tree = module_source(module)
    doc = (ast.get_docstring(tree) if tree else None) or ""
    paragraph = re.sub(r"^`[^`]*`:\s*", "", " ".join(doc.strip().split("\n\n")[0].split()))
    end = re.search(r"[.!?](?=\s+[A-Z`(]|$)", paragraph)
    return paragraph[:end.end()] if end else paragraph


def import_command(module: str) -> object:
    """Import the module of the command being run; a missing optional package is one line."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "livevace":
            raise
        raise UserError(f"this command needs the Python package {exc.name!r}, which is not "
                        "installed here: run `make setup` (or pip install livevace)") from None


_argv: list[str] = []


def current_argv() -> list[str]:
    """The arguments being parsed (for commands that import only their chosen sub-target)."""
    return list(_argv)


def chosen(argv: list[str], names: list[str] | tuple[str, ...]) -> str | None:
    """The first positional word of argv if it names one of `names`."""
    words = [a for a in argv if not a.startswith("-")]
    return words[0] if words and words[0] in names else None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI; only the command being run is imported (`livevace osc --list` stays quick
    and `livevace bench` runs where the node's I/O packages are missing)."""
    global _argv
    argv = sys.argv[1:] if argv is None else argv
    _argv = list(argv)
    parser = argparse.ArgumentParser(
        prog="livevace",
        description="Live-performance node: camera / NDI / Spout in, real-time causal VACE "
        "video generation, NDI / Spout / Syphon out, OSC control.",
        epilog="Start with `livevace run` (test pattern → NDI 'livevace'), then add "
        "--source camera and --sink ndi. `livevace <command> --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"livevace {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run_now = chosen(argv, COMMANDS)
    for name in COMMANDS:
        module = f"livevace.commands.{name}"
        if name == run_now:
            import_command(module).register(sub)  # type: ignore[attr-defined]
        elif find_spec(module) is not None:
            sub.add_parser(name, help=summary(module))
    return parser


QUIET_LOGGERS = ("torchao", "torch.utils._pytree")
"""Warnings that are noise to a VJ, kept to errors: torchao (which transformers imports when
it is installed) names each optional kernel library it cannot load, and PyTorch's pytree says
how torchao registers its enums."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(argv)
    except UserError as exc:
        print(f"livevace: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    keep_compiled()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"livevace: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
