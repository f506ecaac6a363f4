"""LoRA slots over OSC: a file or scale change waits for the next bar like a prompt, then
lands in the store the pipeline reads at its next chunk."""

from __future__ import annotations

import time

import pytest
from test_control_support import presets, running  # noqa: F401


@pytest.mark.parametrize("address, value", [("/livevace/lora_2_scale", -0.5),
                                            ("/livevace/lora_1", "ink_wash")])
def test_a_lora_change_waits_for_the_bar(running, address, value):  # noqa: F811
    r = running("--link", "--bpm", "480")  # a bar of 4 beats every half second
    name = address.rsplit("/", 1)[1]
    before = r.store.get(name)
    r.client.send("/livevace/quantize", "bar")
    r.client.send(address, value)
    r.client.sync()
    assert r.control.quantiser.waiting == [name] and r.store.get(name) == before
    deadline = time.monotonic() + 30
    while r.store.get(name) != value and time.monotonic() < deadline:
        time.sleep(0.02)
        r.control.tick()
    assert r.store.get(name) == value and not r.control.quantiser.waiting
