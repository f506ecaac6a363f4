"""OSCQuery read with a plain HTTP client (urllib); Zeroconf is in test_control_zeroconf.py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from livevace.params import REGISTRY
from test_control_support import presets, running  # noqa: F401


def get(r, path: str) -> tuple[int, dict | None]:
    host, port = r.control.oscquery.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=30) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, None


@pytest.fixture
def node(running):
    return running("--oscquery-port", "0")


def test_namespace_lists_every_parameter_with_its_attributes(node):
    status, root = get(node, "/")
    assert status == 200 and root["FULL_PATH"] == "/"
    contents = root["CONTENTS"]["livevace"]["CONTENTS"]
    assert {p.name for p in REGISTRY} <= set(contents)
    scale = contents["vace_context_scale"]
    assert scale["FULL_PATH"] == "/livevace/vace_context_scale"
    assert (scale["TYPE"], scale["ACCESS"], scale["VALUE"]) == ("f", 3, [1.0])
    assert scale["RANGE"] == [{"MIN": 0.0, "MAX": 2.0}] and scale["DESCRIPTION"]
    assert contents["control"]["RANGE"] == [{"VALS": ["depth", "pose", "edges", "scribble", "gray",
                                                      "flow", "none"]}]
    assert (contents["seed"]["TYPE"], contents["vace_enabled"]["TYPE"]) == ("i", "T")
    assert contents["beat_phase"]["ACCESS"] == 1  # read only
    assert contents["reset_cache"]["ACCESS"] == 2 and "VALUE" not in contents["reset_cache"]
    assert contents["denoising_steps"]["TYPE"] == "iiii"
    assert contents["scene"]["CONTENTS"]["save"]["TYPE"] == "s"
    assert contents["tempo"]["UNIT"] == ["bpm"]


def test_values_are_live_and_attribute_queries(node):
    node.client.send("/livevace/control", "flow")
    node.client.send("/livevace/denoising_steps", 1000, 500)
    node.client.sync()
    assert get(node, "/livevace/control?VALUE") == (200, {"VALUE": ["flow"]})
    assert get(node, "/livevace/denoising_steps")[1]["TYPE"] == "ii"
    assert get(node, "/livevace/prompt?TYPE") == (200, {"TYPE": "s"})
    assert get(node, "/livevace/reset_cache?VALUE")[0] == 204
    assert get(node, "/livevace/nothing")[0] == 404
    assert get(node, "/livevace/seed?COLOUR")[0] == 400


def test_host_info_names_the_osc_port(node):
    status, info = get(node, "/?HOST_INFO")
    assert status == 200
    assert (info["OSC_PORT"], info["OSC_TRANSPORT"], info["OSC_IP"]) == (node.port, "UDP", "127.0.0.1")
    assert info["EXTENSIONS"]["VALUE"] is True and info["EXTENSIONS"]["LISTEN"] is True

