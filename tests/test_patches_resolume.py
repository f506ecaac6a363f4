"""The Resolume mapping: valid for the node's own loader, and what it lists moves a node."""

from __future__ import annotations

from pathlib import Path

from livevace.control.mapping import load_controller
from livevace.patches.inputs import DIALS, gather
from test_control_support import presets, running  # noqa: F401
from test_patches_support import play_mapping

MAPPING = Path(__file__).resolve().parents[1] / "patches" / "resolume" / "resolume.toml"


def test_dashboard_links_and_columns_move_a_running_node(running):
    controller = load_controller(MAPPING)
    assert [m.param for m in controller.maps if m.mode == "absolute"] == list(DIALS)
    assert [m.value for m in controller.maps if m.param == "scene"] == list(gather().scenes)
    assert all(m.address.startswith("/composition/") for m in controller.maps)
    play_mapping(running("--controller", str(MAPPING)), controller, fader=0.8)
