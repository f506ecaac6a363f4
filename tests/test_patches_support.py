"""Helpers for the host patch tests (no tests here): play a controller mapping's messages
into a running node and check each did what the mapping says."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from livevace.control.mapping import Controller, Mapping


def eventually(r, check: Callable[[], None], timeout: float = 30.0) -> None:
    """Once the node handled what was sent, tick it (slews, crossfades) until `check`
    stops raising AssertionError; raise the last one after `timeout` seconds (generous:
    a loaded machine only takes longer)."""
    r.client.sync()
    deadline = time.monotonic() + timeout
    while True:
        r.control.tick()
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def played(r, controller: Controller, m: Mapping, x: float) -> None:
    """Assert that a control at x (sent to the node) did what mapping m says."""
    value = r.store.get(m.param)
    if m.mode == "absolute":
        expected: Any = m.p.coerce(m.to_param(x))[0]
        assert value == (pytest.approx(expected, rel=1e-5) if isinstance(expected, float)
                         else expected), m.address
    elif m.mode == "bank":
        assert value == controller.bank[m.index], m.address
    elif m.mode == "trigger" and m.value is not None:
        assert value == m.value, m.address
    elif m.mode == "trigger":
        assert r.store.take_trigger(m.param), m.address
    else:
        raise AssertionError(f"{m.address}: no check for mode {m.mode}")


def play_mapping(r, controller: Controller, fader: float = 0.4) -> None:
    """Send every mapped address once (faders at `fader`, buttons pressed) and check it."""
    for m in controller.maps:
        x = fader if m.mode == "absolute" and m.p.kind != "bool" else m.hi_in
        r.client.send(m.address, x)
        eventually(r, lambda: played(r, controller, m, x))
