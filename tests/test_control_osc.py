"""The OSC server against real clients: liblo's oscsend/oscdump and python-osc."""

from __future__ import annotations

import logging
import math
import queue
import socket
import subprocess
import threading
import time

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.tcp_client import SimpleTCPClient

from livevace.control import service
from livevace.errors import UserError
from livevace.params import REGISTRY, ParamStore, Prompt
from polling import until
from test_control_support import (OscClient, control_args, free_udp_port, oscsend,  # noqa: F401
                                  presets, running)


def settle(r) -> None:
    """Wait until the node handled what was sent, then let slews finish."""
    r.client.sync()
    r.control.tick()
    time.sleep(0.15)  # the longest default slew in the registry is 0.1 s
    r.control.tick()


def test_oscsend_sets_every_kind_and_clamps(running, caplog):
    r = running()
    caplog.set_level(logging.INFO, "livevace.osc")
    oscsend(r.port, "/livevace/noise_scale", "f", "0.25")
    oscsend(r.port, "/livevace/seed", "i", "1234")
    oscsend(r.port, "/livevace/vace_enabled", "F")
    oscsend(r.port, "/livevace/control", "s", "pose")
    oscsend(r.port, "/livevace/prompt", "sfsf", "a neon city", "0.7", "a forest", "0.3")
    oscsend(r.port, "/livevace/denoising_steps", "iii", "1000", "500", "250")
    oscsend(r.port, "/livevace/vace_context_scale", "f", "7.5")  # out of range → 2.0
    settle(r)
    s = r.store
    assert s.get("noise_scale") == pytest.approx(0.25)
    assert s.get("seed") == 1234
    assert s.get("vace_enabled") is False
    assert s.get("control") == "pose"
    assert s.get("prompt") == (Prompt("a neon city", pytest.approx(0.7)), Prompt("a forest", pytest.approx(0.3)))
    assert s.get("denoising_steps") == (1000, 500, 250)
    assert s.get("vace_context_scale") == 2.0
    assert "vace_context_scale: 7.5 clamped to 2.0" in caplog.text


def test_bad_values_are_refused_and_nothing_changes(running, caplog):
    r = running()
    before = r.store.snapshot()
    oscsend(r.port, "/livevace/noise_scale", "f", "nan")
    oscsend(r.port, "/livevace/noise_scale", "f", "inf")
    oscsend(r.port, "/livevace/noise_scale", "s", "loud")
    oscsend(r.port, "/livevace/control", "s", "canny")
    oscsend(r.port, "/livevace/seed", "ii", "1", "2")
    oscsend(r.port, "/livevace/beat_phase", "f", "0.5")  # read only
    oscsend(r.port, "/livevace/nowhere", "f", "0.5")
    r.client.send("/livevace/prompt", "x" * 40000)  # a huge string
    r.client.send("/livevace/prompt", "bad\x01text")
    settle(r)
    assert r.store.snapshot() == before
    for text in ("not a finite number", "'loud' is not a number", "not one of", "expects one value",
                 "read only", "unknown OSC address '/livevace/nowhere'", "characters"):
        assert text in caplog.text, text
    assert len([line for line in caplog.text.splitlines() if "noise_scale" in line]) == 3
    for _ in range(50):  # a burst of the same mistake is one line
        r.client.send("/livevace/noise_scale", "loud")
    settle(r)
    assert len([line for line in caplog.text.splitlines() if "noise_scale" in line]) == 3


def test_wildcards_reach_every_matching_address(running):
    r = running()
    oscsend(r.port, "/livevace/vace_*_scale", "f", "0.5")
    oscsend(r.port, "/livevace/{noise_scale,vace_context_scale}", "f", "0.125")
    settle(r)
    assert r.store.get("vace_refinement_scale") == 0.5
    assert r.store.get("vace_generation_scale") == 0.5
    assert r.store.get("vace_context_scale") == 0.125
    assert r.store.get("noise_scale") == 0.125


def test_bundle_applies_together_and_future_time_tags_wait(running):
    r = running()
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, value in (("/livevace/seed", 7), ("/livevace/control", "gray")):
        msg = OscMessageBuilder(address)
        msg.add_arg(value)
        bundle.add_content(msg.build())
    r.client.send_raw(bundle.build().dgram)
    due = time.time() + 1.0
    later = OscBundleBuilder(due)
    msg = OscMessageBuilder("/livevace/seed")
    msg.add_arg(99)
    later.add_content(msg.build())
    r.client.send_raw(later.build().dgram)
    r.client.sync()
    assert r.store.get("control") == "gray"
    # The later seed waits for its time tag, then the first tick applies it: every tick
    # that started before the tag left 7, and the one that applied it ended after the tag
    # (however slowly the machine ticks).
    while True:
        before = time.time()
        r.control.tick()
        after = time.time()
        if r.store.get("seed") == 99:
            break
        assert r.store.get("seed") == 7 and before < due, "its time came and it was not applied"
        time.sleep(0.01)
    assert after >= due, "applied before its time"


def test_query_replies_and_dump(running):
    r = running()
    r.client.send("/livevace/control")
    assert r.client.receive() == [("/livevace/control", ["depth"])]
    r.client.send("/livevace/dump")
    valued = [p for p in REGISTRY if p.kind != "trigger"]
    replies = dict(r.client.receive(count=len(valued)))
    assert len(replies) == len(valued)
    assert replies["/livevace/noise_scale"] == [pytest.approx(0.7)]
    assert replies["/livevace/vace_enabled"] == [1]
    assert "/livevace/reset_cache" not in replies  # triggers have no value


def test_feedback_echo_reaches_oscdump(running):
    port = free_udp_port()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    printed: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [printed.put(line.strip()) for line in dump.stdout],
                     daemon=True).start()
    probe = OscClient(port)
    try:
        def bound() -> bool:  # oscdump has bound its port once it prints what we send
            probe.send("/probe")
            return not printed.empty()

        until(bound, "oscdump never printed a message")
        r = running("--feedback", f"127.0.0.1:{port}")
        oscsend(r.port, "/livevace/control", "s", "edges")
        oscsend(r.port, "/livevace/seed", "i", "5")
        r.client.sync()
        lines: list[str] = []
        while len(lines) < 2:
            line = printed.get(timeout=30)
            if not line.endswith("/probe"):
                lines.append(line)
    finally:
        probe.close()
        dump.terminate()
        dump.wait(timeout=5)
    assert lines[0].endswith('/livevace/control s "edges"'), lines
    assert lines[1].endswith("/livevace/seed i 5"), lines


def test_tcp_slip_and_size_prefixed(running):
    r = running("--osc-tcp")
    oscsend(r.port, "/livevace/seed", "i", "31", url=f"osc.tcp://127.0.0.1:{r.port}")  # liblo: 1.0 framing
    client = SimpleTCPClient("127.0.0.1", r.port, mode="1.1")  # SLIP
    client.send_message("/livevace/control", "flow")
    client.send_message("/livevace/control", [])  # a query, answered over the connection
    reply = next(iter(client.get_messages(timeout=30)))
    client.close()
    r.client.sync()
    assert r.store.get("seed") == 31
    assert r.store.get("control") == "flow"
    assert (reply.address, reply.params) == ("/livevace/control", ["flow"])


def tcp_taken(port: int) -> socket.socket:
    """A TCP listener of our own on 127.0.0.1:`port` (so the node cannot listen there)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_tcp_on_a_port_tcp_holds_is_one_line(presets):
    with tcp_taken(0) as held:
        port = held.getsockname()[1]
        with pytest.raises(UserError) as err:
            service.start(control_args("--osc-tcp", "--osc-port", str(port)), ParamStore())
    assert str(err.value).startswith(f"cannot listen for OSC over TCP on 127.0.0.1:{port} ")


def test_with_any_port_a_udp_port_whose_tcp_twin_is_taken_is_given_back(presets, monkeypatch):
    """`--osc-port 0 --osc-tcp`: the system's free UDP port may be held in TCP (a
    connection's local end); the first such port is made so, and another one is taken."""
    real, tried = service.TcpServer, []

    def first_taken(host: str, port: int, *args):  # the first port: really held in TCP
        tried.append(port)
        if len(tried) == 1:
            with tcp_taken(port):
                return real(host, port, *args)
        return real(host, port, *args)

    monkeypatch.setattr(service, "TcpServer", first_taken)
    control = service.start(control_args("--osc-tcp"), ParamStore())
    try:
        port = control.osc_address[1]
        # the first was given back and another taken; on a busy machine the next free UDP
        # port may be held in TCP too, so more than one retry is the same behaviour
        assert len(tried) >= 2 and port == tried[-1]
        if tried[0] != port:  # given back (the system may, rarely, hand the same one again)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", tried[0]))
        client = SimpleTCPClient("127.0.0.1", port, mode="1.1")
        client.send_message("/livevace/seed", 31)
        client.close()
        until(lambda: control.store.get("seed") == 31, "the TCP message never arrived")
    finally:
        control.close()


def test_allow_list_ignores_other_senders(running, caplog):
    r = running("--osc-allow", "10.1.2.3")
    oscsend(r.port, "/livevace/seed", "i", "77")
    until(lambda: "not in --osc-allow" in caplog.text, "the refusal was never logged")
    assert r.store.get("seed") == 42


def test_float_precision_is_float32_but_in_range(running):
    r = running()
    r.client.send("/livevace/noise_scale", 1.0000001)
    settle(r)
    value = r.store.get("noise_scale")
    assert 0.0 <= value <= 1.0 and math.isclose(value, 1.0)


def test_stats_go_to_feedback_targets(running):
    from livevace.stats import Stats

    listener = running()
    port = listener.client.sock.getsockname()[1]
    stats = Stats()
    stats.count("frames_in", 3)
    running("--feedback", f"127.0.0.1:{port}", "--stats-interval", "0.05", stats=stats)
    got = dict(listener.client.receive_until("/livevace/stats/frames_in"))
    assert got["/livevace/stats/frames_in"] == [3.0]
    assert "/livevace/stats/uptime_s" in got


def test_a_senders_long_strings_are_cut_in_the_log(running, caplog):
    """A 60 KB string from a sender costs a log line of a few hundred characters that says
    how long it was, not a 60 KB line."""
    r = running()
    r.client.send("/livevace/learn", "x" * 60000)
    r.client.send("/livevace/vace_enabled", "y" * 60000)
    r.client.send("/livevace/" + "z" * 60000, 1.0)
    r.client.sync()
    lines = caplog.text.splitlines()
    assert max(map(len, lines)) < 600, [line[:100] for line in lines if len(line) >= 600]
    for text in ("unknown parameter 'xxxx", "'yyyy", "unknown OSC address '/livevace/zzzz"):
        assert any(text in line and "characters)" in line for line in lines), text



def test_close_twice_is_harmless(running):
    r = running("--osc-tcp", "--oscquery-port", "0", "--feedback", f"127.0.0.1:{free_udp_port()}")
    r.control.close()
    r.control.close()  # the fixture closes it a third time
