"""Controller mapping files (the node's own `[[map]]` TOML format) for hosts that send their
own addresses: Ableton's stock OSC Send device, Resolume. The node loads them with
`--controller <file>`, so they are checked by the same loader as the shipped presets."""

from __future__ import annotations

from typing import Any

import tomli_w

from livevace.control.mapping import Mapping, mapping_entry


def entry(address: str, param: str, mode: str = "absolute", value: Any = None) -> dict[str, Any]:
    """One `[[map]]` table (defaults left out, as learn mode writes them)."""
    table = mapping_entry(Mapping(address, param, mode))
    if value is not None:
        table["value"] = value
    return table


def mapping_file(header: str, name: str, description: str,
                 entries: list[dict[str, Any]]) -> str:
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comments + tomli_w.dumps({"name": name, "description": description, "map": entries})
