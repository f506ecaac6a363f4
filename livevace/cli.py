"""`livevace` command line: one small module per subcommand under livevace/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from livevace import __version__
from livevace.errors import UserError

COMMANDS = ("run", "sources", "bench", "models", "osc", "presets", "patches", "experiment")
"""Subcommands, each a module livevace.commands.<name> with `register(subparsers)`."""


def build_parser() -> argparse.ArgumentParser:
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
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"livevace.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"livevace.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"livevace: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
