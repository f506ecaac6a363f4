"""`livevace soak`: the node for N minutes under OSC traffic; memory, threads, fds and fps over
time (the machinery is `livevace.bench.soak`)."""

from __future__ import annotations

import argparse

from livevace.commands import node_options


def register(sub: argparse._SubParsersAction) -> None:
    from livevace.bench.soak import add_soak_arguments

    parser = sub.add_parser("soak", help="run the node for N minutes under OSC traffic and "
                            "record memory, threads, files and fps",
                            description="Run the node as `livevace run` does (the same node "
                            "and control options) while a traffic thread sends OSC at it; "
                            "writes JSON under bench/results/.")
    node_options.add_arguments(parser)
    add_soak_arguments(parser)  # after the node's: its defaults (sink, preview) win
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from livevace.bench.soak import soak

    return soak(args, node_options.from_args(args))
