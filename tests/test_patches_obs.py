"""The OBS scene collections: the shape OBS imports, sources by livevace's sender name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livevace.io.specs import DEFAULT_SENDER_NAME

FOLDER = Path(__file__).resolve().parents[1] / "patches" / "obs"


@pytest.mark.parametrize("name, kind, key, value", [
    ("livevace-ndi.json", "ndi_source", "ndi_source_name", f"YOUR-PC ({DEFAULT_SENDER_NAME})"),
    ("livevace-spout.json", "spout_capture", "spoutsenders", DEFAULT_SENDER_NAME),
])
def test_collection_shows_the_livevace_source_in_its_scene(name, kind, key, value):
    doc = json.loads((FOLDER / name).read_text(encoding="utf-8"))
    sources = {s["name"]: s for s in doc["sources"]}
    assert doc["current_scene"] == doc["current_program_scene"] == doc["scene_order"][0]["name"]
    scene = sources[doc["current_scene"]]
    assert scene["id"] == scene["versioned_id"] == "scene"
    [item] = scene["settings"]["items"]
    source = sources[item["name"]]
    assert item["source_uuid"] == source["uuid"] and item["visible"]
    assert source["id"] == kind and source["settings"] == {key: value}
    assert len({s["uuid"] for s in doc["sources"]}) == len(doc["sources"])
