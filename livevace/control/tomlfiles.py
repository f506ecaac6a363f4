"""Preset files (controllers, scenes, stratification): where they live (shipped, and the
user's folders the node saves into), how they are read, and how an error is reported with
its file and line.

`tomllib` reports syntax errors with a line but knows nothing of our schema, so `Locator`
finds the line of a key inside a table or an array-of-tables entry for schema errors.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from livevace.errors import UserError

ENV_PRESETS = "LIVEVACE_PRESETS"


class PresetError(UserError):
    """A preset file that cannot be used; the message starts with 'file:line:'."""


def presets_root() -> Path:
    """The presets folder: $LIVEVACE_PRESETS, else the one beside the livevace package."""
    env = os.environ.get(ENV_PRESETS)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "presets"


def shipped(path: Path) -> bool:
    """Whether `path` lies in the presets folder, which the node only reads: any OSC sender
    can ask it to save, and a save there would overwrite what ships."""
    return path.expanduser().resolve().is_relative_to(presets_root().resolve())


def user_dir(kind: str) -> Path:
    """The user's folder for what the node saves of `kind` ('scenes', 'controllers'):
    $LIVEVACE_<KIND>_DIR, else ~/.config/livevace/<kind>."""
    env = os.environ.get(f"LIVEVACE_{kind.upper()}_DIR")
    return Path(env).expanduser() if env else Path.home() / ".config" / "livevace" / kind


class Locator:
    """Line numbers (1-based) of tables, array-of-tables entries and keys in TOML text."""

    HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.sections: list[tuple[str, int]] = [("", 0)]  # (table name, first line index)
        for i, line in enumerate(self.lines):
            m = self.HEADER.match(line)
            if m:
                self.sections.append((m.group(2).strip(), i))

    def line(self, table: str = "", index: int = 0, key: str | None = None) -> int:
        """Line of `key` in the `index`-th section named `table` ('' = top level);
        the section's header line when the key is absent or not given."""
        starts = [(n, i) for n, (name, i) in enumerate(self.sections) if name == table]
        if index >= len(starts):
            return 1
        n, start = starts[index]
        end = self.sections[n + 1][1] if n + 1 < len(self.sections) else len(self.lines)
        if key is not None:
            pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
            for i in range(start, end):
                if pattern.match(self.lines[i]):
                    return i + 1
        return start + 1 if table else 1


def read_toml(path: Path) -> tuple[dict[str, Any], Locator]:
    """Parse a TOML file; PresetError 'file:line: …' when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: cannot read ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line .*\)$", "", str(exc))
        raise PresetError(f"{path}:{m.group(1) if m else 1}: {message}") from None
    return data, Locator(text)


def error_at(path: Path, line: int, message: str) -> PresetError:
    return PresetError(f"{path}:{line}: {message}")
