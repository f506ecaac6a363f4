"""Every host file, built in memory from the inputs; written to a folder or compared with
one. Text is written with '\\n' line ends and nothing time- or machine-dependent, so a
rebuild of unchanged inputs gives the same bytes."""

from __future__ import annotations

from pathlib import Path

from livevace.patches import ableton, obs, resolume, touchdesigner, touchosc
from livevace.patches.inputs import Inputs

HOSTS = (touchdesigner, ableton, touchosc, obs, resolume)
"""One module per host, each with `files(inputs) -> {relative path: text or bytes}`."""


def default_folder() -> Path:
    """The `patches/` folder at the top of the livevace checkout (of the current folder
    when livevace is installed without one)."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout / "patches" if (checkout / "pyproject.toml").is_file() else Path("patches")


def build(inputs: Inputs) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for host in HOSTS:
        for path, content in host.files(inputs).items():
            if path in out:
                raise AssertionError(f"two hosts write {path}")
            out[path] = content.encode("utf-8") if isinstance(content, str) else content
    return dict(sorted(out.items()))


def write(files: dict[str, bytes], folder: Path) -> list[Path]:
    """Write the files that differ from what is on disk; returns those written."""
    written = []
    for rel, data in files.items():
        path = folder / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def drift(files: dict[str, bytes], folder: Path) -> list[str]:
    """'changed PATH' / 'missing PATH' / 'extra PATH' for every difference from the folder."""
    report = []
    for rel, data in files.items():
        path = folder / rel
        if not path.is_file():
            report.append(f"missing {rel}")
        elif path.read_bytes() != data:
            report.append(f"changed {rel}")
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            if rel not in files:
                report.append(f"extra   {rel}")
    return report
