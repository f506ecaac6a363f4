"""OSCQuery read with a plain HTTP client (urllib); Zeroconf is in test_control_zeroconf.py."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
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



def test_on_every_interface_the_log_names_addresses_a_browser_can_open(running, caplog):
    caplog.set_level(logging.INFO, logger="livevace.osc")
    r = running("--osc-host", "0.0.0.0", "--oscquery-port", "0")
    port = r.control.oscquery.address[1]
    lines = [rec.getMessage() for rec in caplog.records if "control page on" in rec.getMessage()]
    assert len(lines) == 1 and "0.0.0.0" not in lines[0], lines
    urls = re.findall(r"http://([^/ ,]+):(\d+)/", lines[0])
    hosts = [h for h, p in urls if int(p) == port]
    assert len(hosts) == len(urls) and {"127.0.0.1", socket.gethostname()} <= set(hosts), lines
    addresses = [h for h in hosts if h != socket.gethostname()]
    assert all(ipaddress.ip_address(h) for h in addresses)
    for host in addresses:  # this machine's own addresses: each one answers
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=30) as resp:
            assert resp.status == 200 and "CONTENTS" in json.loads(resp.read())
