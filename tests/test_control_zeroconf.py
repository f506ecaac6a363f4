"""Zeroconf discovery follows --osc-host: found by a real browser when the node listens on
the network, and no mDNS socket at all when it listens on loopback (the default)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import psutil

from test_control_support import presets, running  # noqa: F401

MDNS_PORT = 5353


def advertised(running, *extra: str):
    """A node with Zeroconf on, once its advertising thread (if any) has finished."""
    r = running("--oscquery-port", "0", *extra, zeroconf=True)
    deadline = time.monotonic() + 30
    while any(t.name == "oscquery-mdns" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "Zeroconf advertising never finished"
        time.sleep(0.05)
    return r


def mdns_sockets() -> list[str]:
    """The local addresses of this process's UDP sockets on the mDNS port."""
    return sorted(c.laddr.ip for c in psutil.Process().net_connections(kind="udp4")
                  if c.laddr and c.laddr.port == MDNS_PORT)


def browse(service: str, timeout: float = 10.0) -> dict[str, tuple[list[str], int]]:
    """Services of a type found by a second Zeroconf on loopback: name → (addresses, port)."""
    from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

    found: dict[str, tuple[list[str], int]] = {}
    zc = Zeroconf(interfaces=["127.0.0.1"])

    class Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            info = zc.get_service_info(type_, name, timeout=2000)
            if info:
                found[name] = (info.parsed_addresses(), info.port)

        update_service = add_service

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

    browser = ServiceBrowser(zc, service, Listener())
    try:
        deadline = time.monotonic() + timeout
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        browser.cancel()
        zc.close()
    return found


def test_loopback_node_opens_no_mdns_socket(running, caplog):
    caplog.set_level("INFO", logger="livevace.osc")
    r = advertised(running)
    assert r.control.oscquery.address[0] == "127.0.0.1"
    assert mdns_sockets() == []  # in particular nothing on 0.0.0.0:5353
    assert "Zeroconf: not advertised" in caplog.text


def test_network_node_is_found_and_answers_at_the_advertised_address(running):
    r = advertised(running, "--osc-host", "0.0.0.0")
    assert "0.0.0.0" in mdns_sockets()  # what the loopback test rules out does happen here
    port = r.control.oscquery.address[1]
    name = f"livevace on {socket.gethostname()}"[:63]
    found = browse("_oscjson._tcp.local.")
    addresses, advertised_port = found[f"{name}._oscjson._tcp.local."]
    assert advertised_port == port
    with urllib.request.urlopen(f"http://{addresses[0]}:{port}/?HOST_INFO", timeout=5) as resp:
        info = json.loads(resp.read())
    assert info["OSC_PORT"] == r.port and "OSC_IP" not in info  # not 0.0.0.0: use this host
    osc = browse("_osc._udp.local.")
    assert osc[f"{name}._osc._udp.local."][1] == r.port
