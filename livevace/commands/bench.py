"""`livevace bench <target>`: benchmarks that print a table and write JSON to bench/results/."""

from __future__ import annotations

import argparse
import ast
import pkgutil

import livevace.bench
from livevace.cli import chosen, current_argv, import_command, module_source, summary

TARGET_FUNCTIONS = {"add_arguments", "run"}


def _is_target(module: str) -> bool:
    """A module of livevace.bench that defines add_arguments and run (report, kernels and
    suite are helpers of the targets), read without importing it."""
    tree = module_source(module)
    return tree is not None and \
        TARGET_FUNCTIONS <= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def _targets() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(livevace.bench.__path__)
                  if _is_target(f"livevace.bench.{m.name}"))


def register(sub: argparse._SubParsersAction) -> None:
    names = _targets()
    parser = sub.add_parser("bench", help=f"measure speed: {', '.join(names)}",
                            description="Run a benchmark; prints a table and writes JSON under "
                            "bench/results/.")
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    argv = current_argv()
    run_now = chosen(argv[argv.index("bench") + 1:] if "bench" in argv else [], names)
    for name in names:
        module = f"livevace.bench.{name}"
        p = targets.add_parser(name, help=summary(module))
        if name == run_now:
            bench = import_command(module)
            bench.add_arguments(p)  # type: ignore[attr-defined]
            p.set_defaults(func=bench.run)  # type: ignore[attr-defined]
