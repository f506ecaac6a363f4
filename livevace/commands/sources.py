"""`livevace sources`: the inputs this machine can see, written as --source specs."""

from __future__ import annotations

import argparse
import shlex
import sys

from livevace.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sources", help="list cameras, NDI sources and Spout senders",
                            description="List the inputs livevace can see, each written the "
                            "way --source takes it.")
    parser.add_argument("--wait", type=float, default=2.0, metavar="SECONDS",
                        help="how long to listen for NDI sources (default 2)")
    parser.add_argument("--ndi-ip", action="append", default=[], metavar="IP",
                        help="also ask this address for NDI sources (no mDNS needed); repeatable")
    parser.set_defaults(func=run)


def _section(title: str, rows: list[tuple[str, str]], empty: str) -> None:
    print(title)
    if not rows:
        print(f"  ({empty})")
    width = max((len(spec) for spec, _ in rows), default=0)
    for spec, note in rows:
        print(f"  {spec.ljust(width)}  {note}".rstrip())


def run(args: argparse.Namespace) -> int:
    from livevace.io.camera import list_cameras
    from livevace.io.ndi import DEFAULT_EXTRA_IPS, Discovery
    from livevace.io.spout import list_senders

    _section("cameras:", [(f"camera:{i}", name) for i, name in list_cameras()],
             "none found")
    try:
        found = Discovery.shared((*DEFAULT_EXTRA_IPS, *args.ndi_ip)).sources(wait=args.wait)
        rows = [(shlex.quote(f"ndi:{s.name}"), f"at {s.url}" if s.url else "") for s in found]
        empty = "none found" + ("; on Linux discovery needs avahi (or --ndi-ip HOST)"
                                if sys.platform.startswith("linux") else "")
    except UserError as exc:
        rows, empty = [], str(exc)
    _section(f"NDI sources (listened {args.wait:g} s):", rows, empty)
    if sys.platform == "win32":
        _section("Spout senders:", [(f"spout:{n}", "") for n in list_senders()], "none running")
    return 0
