"""The OSC address table: what the node answers and what it sends, in one place.

`livevace osc --list`, the README section "OSC control" and OSCQuery are all made from
the registry plus the commands below, so none of them can drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from livevace.control.values import describe_args, describe_default, describe_range
from livevace.params import REGISTRY


@dataclass(frozen=True)
class Command:
    address: str
    args: str
    """Arguments in words, for the table."""
    types: str
    """OSC type tags of the arguments ('' when none), for OSCQuery."""
    description: str


COMMANDS: tuple[Command, ...] = (
    Command("/livevace/scene/save", "s", "s", "Save the current parameters as scene NAME "
            "in the user scene folder ($LIVEVACE_SCENES_DIR, default ~/.config/livevace/scenes); "
            "it shadows a shipped scene of that name."),
    Command("/livevace/scene/list", "", "", "Reply with /livevace/scene/list s… : the scene "
            "names, in index order."),
    Command("/livevace/learn", "s [s]", "s", "Learn mode: the next control moved is mapped to "
            "this parameter (optional mode: absolute, toggle, momentary, trigger) and saved "
            "in the learn file."),
    Command("/livevace/learn/cancel", "", "", "Leave learn mode."),
    Command("/livevace/dump", "", "", "Reply with the current value of every parameter: one "
            "bundle, a message per parameter."),
)

SENT: tuple[Command, ...] = (
    Command("/livevace/<name>", "value", "", "Every accepted change of a parameter, to each "
            "--feedback target (also the reply to a message without arguments; a packet's "
            "replies come as one message or bundle)."),
    Command("<controller address>", "f", "f", "Where a mapped control should sit after a "
            "change (motor faders, button LEDs), to each --feedback target."),
    Command("/livevace/stats/<key>", "f", "f", "Node statistics (fps, latency, GPU memory …) "
            "every --stats-interval seconds, to each --feedback target."),
    Command("/livevace/learn/done", "s s", "ss", "Learn mode mapped a control: address, "
            "parameter (to the sender of /livevace/learn)."),
    Command("/livevace/error", "s", "s", "Why an OSC/TCP connection is refused (too many "
            "connections), sent before it is closed."),
)


APPLIES = {"chunk": "next chunk", "transition": "fades in", "reset": "cache reset",
           "reload": "model reload", "immediate": "at once"}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; '|' and line breaks inside cells are escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def address_table() -> str:
    """The address table as Markdown (what `livevace osc --list` prints)."""
    rows = [(f"`{p.address}`", describe_args(p), describe_range(p), describe_default(p),
             "read only" if p.readonly else APPLIES[p.apply], p.description) for p in REGISTRY]
    rows += [(f"`{c.address}`", c.args or "(none)", "", "", "at once", c.description)
             for c in COMMANDS]
    sent = [(f"`{c.address}`", c.args, c.description) for c in SENT]
    return (markdown_table(("Address", "Arguments", "Range / choices", "Default", "Applies",
                            "Description"), rows)
            + "\n\nSent by the node:\n\n"
            + markdown_table(("Address", "Arguments", "Description"), sent) + "\n")
