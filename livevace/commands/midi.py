"""`livevace midi list`: the MIDI ports a `--midi NAME` or `--midi-clock NAME` can name.

    livevace midi list       the input and output ports of the MIDI system

A NAME is a port's whole name or a part of it ("APC mini" finds "APC mini mk2:APC mini mk2
MIDI 1 20:0"). The MIDI system is rtmidi's default (ALSA on Linux); the api part of
$MIDO_BACKEND picks another (`MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK` for JACK).
"""

from __future__ import annotations

import argparse

from livevace.control.midi import port_names


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("midi", help="the MIDI ports for --midi and --midi-clock",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the MIDI input and output ports")
    ls.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    inputs, outputs = port_names()
    for title, names in (("inputs (controls, clock)", inputs), ("outputs (feedback)", outputs)):
        print(f"{title}:")
        for name in names:
            print(f"  {name}")
        if not names:
            print("  (none)")
    return 0
