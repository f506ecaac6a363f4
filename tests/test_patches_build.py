"""`livevace patches build/check`: the committed host files are exactly what the registry
and presets give, every file parses, every OSC address in them is one the node answers."""

from __future__ import annotations

import ast
import json
import re
import shutil
import tomllib
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

from livevace import cli
from livevace.control.addresses import COMMANDS, SENT
from livevace.control.mapping import load_controller
from livevace.params import REGISTRY
from livevace.patches.build import build, default_folder
from livevace.patches.inputs import gather
from livevace.patches.touchosc import zlib_stored
from test_patches_ableton import amxd_patcher

COMMITTED = Path(__file__).resolve().parents[1] / "patches"
ADDRESS = re.compile(r"(?<![\w./:-])/livevace(?:/[A-Za-z0-9_<>]+)*(?![\w.])")


def test_committed_files_are_a_fresh_build_byte_for_byte(tmp_path):
    assert default_folder() == COMMITTED
    fresh = build(gather())
    assert fresh == build(gather())  # no time, no randomness
    committed = {p.relative_to(COMMITTED).as_posix(): p.read_bytes()
                 for p in COMMITTED.rglob("*") if p.is_file()}
    assert sorted(committed) == sorted(fresh), "run `livevace patches build` and commit"
    for rel, data in fresh.items():
        assert committed[rel] == data, f"{rel} is stale: run `livevace patches build`"


def text_of(rel: str, data: bytes) -> str:
    """A file's content as text after parsing it by its type (each parse must succeed)."""
    suffix = Path(rel).suffix
    if suffix == ".tosc":
        xml = zlib.decompress(data)
        assert ET.fromstring(xml).tag == "lexml"
        return xml.decode("utf-8")
    if suffix == ".amxd":
        return json.dumps(amxd_patcher(data))
    text = data.decode("utf-8")
    if suffix in (".json", ".maxpat"):
        json.loads(text)
    elif suffix == ".py":
        ast.parse(text)
    elif suffix == ".toml":
        tomllib.loads(text)
    else:
        assert suffix == ".md" and text.startswith("<!-- Generated"), rel
    return text


def test_every_file_parses_and_every_osc_address_is_the_nodes():
    answered = {p.address for p in REGISTRY} | {c.address for c in COMMANDS}
    sent = {c.address for c in SENT} | {c.address.split("<")[0].rstrip("/") for c in SENT}
    files = build(gather())
    found = set()
    for rel, data in files.items():
        for address in ADDRESS.findall(text_of(rel, data)):
            assert address in answered | sent, f"{rel}: {address} is not a livevace address"
            found.add(address)
    assert {p.address for p in REGISTRY if p.live and not p.readonly} <= found
    for rel in files:
        if rel.endswith(".toml"):  # controller mappings: checked by the node's own loader
            load_controller(COMMITTED / rel)


def test_the_zlib_wrapper_splits_long_data_into_stored_blocks():
    data = bytes(range(256)) * 700  # 179 200 bytes: three stored blocks
    packed = zlib_stored(data)
    assert zlib.decompress(packed) == data
    assert len(packed) == len(data) + 2 + 3 * 5 + 4


def test_build_then_check_reports_every_kind_of_drift(tmp_path, capsys):
    out = tmp_path / "patches"
    assert cli.main(["patches", "build", "--out", str(out)]) == 0
    assert cli.main(["patches", "check", "--out", str(out)]) == 0
    (out / "obs" / "livevace-ndi.json").write_text("{}", encoding="utf-8")
    (out / "touchosc" / "touchosc.tosc").unlink()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["patches", "check", "--out", str(out)]) == 1
    report = capsys.readouterr()
    assert "changed obs/livevace-ndi.json" in report.out
    assert "missing touchosc/touchosc.tosc" in report.out
    assert "extra   notes.txt" in report.out
    assert "livevace patches build" in report.err and "Traceback" not in report.err
    assert cli.main(["patches", "build", "--out", str(out)]) == 0
    assert (out / "touchosc" / "touchosc.tosc").read_bytes() == \
        (COMMITTED / "touchosc" / "touchosc.tosc").read_bytes()


def test_an_unwritable_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    assert cli.main(["patches", "build", "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("livevace: cannot write the host files into") and "Traceback" not in err


def test_ndi_machine_personalises_the_obs_collection(tmp_path):
    out = tmp_path / "mine"
    assert cli.main(["patches", "build", "--out", str(out), "--ndi-machine", "STAGE-PC"]) == 0
    settings = json.loads((out / "obs" / "livevace-ndi.json").read_text())["sources"][0]["settings"]
    assert settings["ndi_source_name"] == "STAGE-PC (livevace)"


def test_a_broken_touchosc_mapping_stops_the_build_with_file_and_line(tmp_path, monkeypatch,
                                                                      capsys):
    root = tmp_path / "presets"
    shutil.copytree(COMMITTED.parent / "presets", root)
    (root / "controllers" / "touchosc.toml").write_text(
        'name = "x"\n\n[[map]]\naddress = "/1/fader1"\nparam = "no_such"\n', encoding="utf-8")
    monkeypatch.setenv("LIVEVACE_PRESETS", str(root))
    assert cli.main(["patches", "build", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "touchosc.toml:5:" in err and "no_such" in err and "Traceback" not in err
