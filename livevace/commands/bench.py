"""`livevace bench <target>`: benchmarks that print a table and write JSON to bench/results/."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import livevace.bench


def _targets() -> list[str]:
    skip = {"report"}
    return sorted(m.name for m in pkgutil.iter_modules(livevace.bench.__path__) if m.name not in skip)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="measure speed: node, dit, codecs, annotators, pipeline",
                            description="Run a benchmark; prints a table and writes JSON under "
                            "bench/results/.")
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name in _targets():
        module = importlib.import_module(f"livevace.bench.{name}")
        p = targets.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(func=module.run)
