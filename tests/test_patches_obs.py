"""The OBS scene collections: the shape of a collection OBS saved (kept as test data),
sources by livevace's sender name, and the NDI source's sound on every track."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from livevace.io.specs import DEFAULT_SENDER_NAME

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "patches" / "obs"
SAVED = REPO / "tests" / "data" / "hosts" / "obs" / "saved-collection.json"
"""Part of a scene collection OBS saved (see SOURCE.md beside it)."""
COLLECTIONS = ["livevace-ndi.json", "livevace-spout.json"]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def json_kind(value: Any) -> str:
    """A JSON value's kind as OBS's obs_data reads it (ints and floats are both numbers)."""
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else type(value).__name__


def assert_keys_like(ours: dict[str, Any], real: dict[str, Any], where: str) -> None:
    """Every key of ours is one OBS writes at that place, with the same kind of value."""
    assert set(ours) <= set(real), f"{where}: OBS writes no {sorted(set(ours) - set(real))}"
    for key, value in ours.items():
        assert json_kind(value) == json_kind(real[key]), f"{where}.{key}"


@pytest.mark.parametrize("name", COLLECTIONS)
def test_collection_uses_only_what_obs_writes(name):
    ours, real = load(FOLDER / name), load(SAVED)
    assert_keys_like(ours, real, name)
    real_sources = {s["id"]: s for s in real["sources"]}
    for source in ours["sources"]:
        assert_keys_like(source, real_sources["scene" if source["id"] == "scene"
                                              else "window_capture"], source["name"])
    [scene] = [s for s in ours["sources"] if s["id"] == "scene"]
    assert_keys_like(scene["settings"], real_sources["scene"]["settings"], "scene settings")
    [item] = scene["settings"]["items"]
    assert_keys_like(item, real_sources["scene"]["settings"]["items"][0], "scene item")


def test_audio_goes_to_every_track_as_obs_saves_a_source_with_audio():
    real = {s["id"]: s for s in load(SAVED)["sources"]}
    ndi = {s["id"]: s for s in load(FOLDER / "livevace-ndi.json")["sources"]}
    spout = {s["id"]: s for s in load(FOLDER / "livevace-spout.json")["sources"]}
    assert ndi["ndi_source"]["mixers"] == real["window_capture"]["mixers"] == 0xFF
    assert spout["spout_capture"]["mixers"] == 0  # Spout carries no audio
    assert ndi["scene"]["mixers"] == spout["scene"]["mixers"] == real["scene"]["mixers"] == 0


@pytest.mark.parametrize("name, kind, key, value", [
    ("livevace-ndi.json", "ndi_source", "ndi_source_name", f"YOUR-PC ({DEFAULT_SENDER_NAME})"),
    ("livevace-spout.json", "spout_capture", "spoutsenders", DEFAULT_SENDER_NAME),
])
def test_collection_shows_the_livevace_source_in_its_scene(name, kind, key, value):
    doc = load(FOLDER / name)
    sources = {s["name"]: s for s in doc["sources"]}
    assert doc["current_scene"] == doc["current_program_scene"] == doc["scene_order"][0]["name"]
    scene = sources[doc["current_scene"]]
    assert scene["id"] == scene["versioned_id"] == "scene"
    [item] = scene["settings"]["items"]
    source = sources[item["name"]]
    assert item["source_uuid"] == source["uuid"] and item["visible"]
    assert source["id"] == kind and source["settings"] == {key: value}
    assert len({s["uuid"] for s in doc["sources"]}) == len(doc["sources"])
