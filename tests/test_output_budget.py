"""The output stage keeps up whatever it is asked: it times each burst against the time the
burst plays and steps down (one log line each) rather than starve the node of fresh frames;
a newer burst replaces a waiting one; repeats share one picture; a live `output_size` the
sinks cannot take is said, not made.

Slowness comes from the stage's dependencies (an IFNet and an upscaling network that sleep
before they work: a sleep is a lower bound, so they are over budget on any machine) or from
a generated rate no work can keep up with; nothing here asserts how fast anything is.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from livevace.frames import Frame
from livevace.models.rife import IFNet
from livevace.output import stage as stage_module
from livevace.output.stage import OVERRUNS, STEPS, Level, OutputStage
from livevace.output.upscale import Network, load_network
from livevace.stats import Stats
from polling import until
from test_node_pacing import Recorder
from test_output_rife import random_ifnet
from test_output_stage import CPU, generated, picture
from test_output_upscale import tiny

SLEEP = 0.1
"""Seconds a slow dependency sleeps per call: over the play time of the bursts it gets."""


class SlowIFNet(IFNet):
    """IFNet that sleeps before each batch of in-betweens."""

    def pairs(self, packed: torch.Tensor) -> torch.Tensor:
        time.sleep(SLEEP)
        return super().pairs(packed)


def slow_ifnet() -> IFNet:
    net = SlowIFNet()
    net.load_state_dict(random_ifnet().state_dict())
    return net


def network(tmp_path, before=lambda: None) -> tuple[Network, list[int]]:
    """A tiny real 2x network run after `before()`; the list counts its calls."""
    path = tmp_path / "compact.pth"
    torch.save(tiny("Compact", 2).state_dict(), path)
    loaded, calls = load_network(path, CPU, torch.float32), []

    def run(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        before()
        return loaded.run(images)

    return dataclasses.replace(loaded, run=run), calls


def budget_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "over its budget" in r.getMessage()]


def collecting(**kwargs) -> tuple[OutputStage, list[list[Frame]], Stats]:
    got: list[list[Frame]] = []
    stats = Stats()
    return OutputStage(got.append, stats, device=CPU, **kwargs), got, stats


def test_a_slow_network_then_a_slow_interpolator_are_stepped_down_and_bursts_keep_coming(
        tmp_path, caplog):
    """The network goes first: the motion the venue's rate asks for is kept while a Lanczos
    resize gives the size."""
    net, calls = network(tmp_path, lambda: time.sleep(SLEEP))
    output, got, stats = collecting(fps=30.0, rife=lambda d, t: slow_ifnet(),
                                    upscaler=lambda m, d, t: net)
    params = {"output_fps": 60, "output_size": (128, 128), "upscale_model": "slow"}
    with caplog.at_level(logging.INFO, logger="livevace.output"):
        for k in range(3 * OVERRUNS):
            output.submit(generated(2 * k, 2), params)
            assert output.drain(timeout=60)
        output.stop()
    steps = [line.rsplit(": ", 1)[1] for line in budget_lines(caplog)]
    assert steps == [STEPS[Level.LANCZOS], STEPS[Level.REPEATS]]
    assert output.level == Level.REPEATS and stats.snapshot()["output_degraded"] == 2
    # the first burst loaded the networks and the first at a new level met new shapes:
    # neither is held to the budget, so each step comes one burst later; the network ran
    # until its step, never after, and in-betweens were made until the second step
    network_bursts, interpolated = OVERRUNS + 1, 2 * OVERRUNS + 2
    assert len(calls) == network_bursts
    # every burst went out, at the size and rate asked; in-betweens until the second step,
    # made at the generated size after the first one: that change of path is no cut, the
    # in-between across it is made from the last frame before, remade along the new path
    assert len(got) == 3 * OVERRUNS and all(len(b) == 4 for b in got[1:])
    assert all(f.image.shape == (128, 128, 3) for b in got for f in b)
    assert all(any("interpolated" in f.meta for f in b) for b in got[:interpolated])
    assert "interpolated" in got[network_bursts][0].meta
    assert all(any(f.meta.get("repeat") for f in b) for b in got[interpolated:])
    assert not any("interpolated" in f.meta for b in got[interpolated:] for f in b)
    assert stats.snapshot()["frames_interpolated"] == 2 * interpolated - 1


def test_every_step_down_in_order_then_a_new_size_tries_the_full_path_again(tmp_path, caplog):
    """A million generated frames a second: no burst's work fits in its play time. A new
    rate keeps the steps (a controller that keeps changing it must not undo them)."""
    net, _ = network(tmp_path)
    output, got, stats = collecting(fps=1e6, rife=lambda d, t: random_ifnet(),
                                    upscaler=lambda m, d, t: net)
    params = {"output_fps": 60, "output_size": (96, 96), "upscale_model": "mine"}
    bursts = 5 * (OVERRUNS + 1)  # a level's first burst meets new shapes: not held
    with caplog.at_level(logging.INFO, logger="livevace.output"):
        for k in range(bursts):
            output.submit(generated(2 * k, 2), params)
            assert output.drain(timeout=60)
        assert [line.rsplit(": ", 1)[1] for line in budget_lines(caplog)] == list(
            STEPS.values())
        assert output.level == Level.NEAREST and stats.snapshot()["output_degraded"] == 4
        # nothing left to cut: the bursts keep going out, at the size asked, nearest-pixel
        assert len(got) == bursts and all(len(b) == 4 for b in got[1:])
        assert all(f.image.shape == (96, 96, 3) for b in got for f in b)
        last = got[-1][-1]
        assert np.array_equal(last.image, cv2.resize(picture(last.index), (96, 96),
                                                     interpolation=cv2.INTER_NEAREST))
        output.submit(generated(2 * bursts, 2), {**params, "output_fps": 50})
        assert output.drain(timeout=60)
        assert output.level == Level.NEAREST and not any("interpolated" in f.meta
                                                         for f in got[-1])
        caplog.clear()
        output.submit(generated(2 * bursts + 2, 2), {**params, "output_size": (80, 80)})
        assert output.drain(timeout=60)
        output.stop()
    assert output.level == Level.FULL and stats.snapshot()["output_degraded"] == 0
    assert any("full path again" in r.getMessage() for r in caplog.records)
    assert any("interpolated" in f.meta for f in got[-1])
    assert all(f.image.shape == (80, 80, 3) for f in got[-1])


def test_a_newer_burst_replaces_a_waiting_one_so_nothing_queues_up(tmp_path):
    entered, release = threading.Event(), threading.Event()

    def gate() -> None:
        entered.set()
        assert release.wait(60)

    net, _ = network(tmp_path, gate)
    output, got, stats = collecting(upscaler=lambda m, d, t: net)
    params = {"output_fps": 0, "output_size": (128, 128), "upscale_model": "gated"}
    output.submit(generated(0, 2), params)
    until(entered.is_set, "the stage never took the first burst")
    for k in range(1, 10):
        output.submit(generated(2 * k, 2), params)
    release.set()
    assert output.drain(timeout=60)
    output.stop()
    assert [[f.index for f in b] for b in got] == [[0, 1], [18, 19]]
    assert stats.snapshot()["dropped_output"] == 8


def test_repeated_slots_share_one_resized_picture():
    """30 → 120 fps without RIFE: four slots a frame, one resize and one array per picture
    (memory does not grow with the output rate)."""
    def missing(device, dtype):
        from livevace.errors import ModelError

        raise ModelError("not downloaded")

    output = OutputStage(lambda frames: None, device=CPU, rife=missing)
    params = {"output_fps": 120, "output_size": (96, 96), "upscale_model": "lanczos"}
    output.process(generated(0, 1), params)
    out = output.process(generated(1, 3), params)
    assert len(out) == 12 and all(f.image.shape == (96, 96, 3) for f in out)
    assert len({id(f.image) for f in out}) == 4  # the frame before and the three new
    for k in range(0, 12, 4):  # each frame's slot, and the three repeats before it
        assert all(f.image is out[k].image for f in out[k:k + 3])
        assert out[k + 3].index == k // 4 + 1


def node_with(store_values: dict, taps=()):
    from livevace.config import RunConfig
    from livevace.io.pattern import PatternSource
    from livevace.loop import Node
    from livevace.params import ParamStore
    from livevace.pipelines.passthrough import Passthrough
    from test_node_lifecycle import Collect

    store = ParamStore()
    store.update(store_values)
    config = RunConfig(width=64, height=48, fps=30.0, sinks=(), preview="off")
    sink = Collect()
    node = Node(config, store, Passthrough(), PatternSource(64, 48, 30.0), [sink], taps=taps)
    return node, store, sink


def test_in_the_node_a_slow_upscaler_steps_down_and_fresh_frames_keep_coming(
        tmp_path, monkeypatch):
    net, _ = network(tmp_path, lambda: time.sleep(SLEEP))
    monkeypatch.setattr(stage_module, "load_network", lambda path, device, dtype: net)
    seen = Recorder()
    node, _, sink = node_with({"output_size": (128, 96), "upscale_model": "slow.pth"}, [seen])
    node.start()
    try:
        until(lambda: node.output.level >= Level.LANCZOS, "the stage never stepped down")
        before = len(seen.fresh_times())
        until(lambda: len(seen.fresh_times()) >= before + 15, "no fresh frames after the step")
    finally:
        node.close()
    assert all(f.image.shape == (96, 128, 3) for _, f, _ in seen.snapshot())
    assert all(f.image.shape == (96, 128, 3) for f in sink.frames)


@pytest.mark.parametrize("opened", [(96, 64), (64, 48)])
def test_a_live_output_size_the_sinks_cannot_take_is_said_once_and_not_made(opened, caplog):
    """Sinks opened larger than the generated frames (the stage resizes), or at their size
    (output_size off at the start: bursts pass straight through)."""
    seen = Recorder()
    start = opened if opened != (64, 48) else (0, 0)
    node, store, _ = node_with({"output_size": start, "upscale_model": "lanczos"}, [seen])
    with caplog.at_level(logging.WARNING, logger="livevace.output"):
        node.start()
        try:
            until(lambda: len(seen.fresh_times()) >= 5, "no output")
            store.set("output_size", (4000, 3000))
            until(lambda: any("4000x3000" in r.getMessage() for r in caplog.records),
                  "the live size was not said")
            before = len(seen.fresh_times())
            until(lambda: len(seen.fresh_times()) >= before + 10, "no output after the change")
        finally:
            node.close()
    width, height = opened
    assert all(f.image.shape == (height, width, 3) for _, f, _ in seen.snapshot())
    lines = [r.getMessage() for r in caplog.records if "output_size" in r.getMessage()]
    assert len(lines) == 1 and f"opened at {width}x{height}" in lines[0]


def test_a_burst_that_loads_the_network_is_not_held_to_the_budget(monkeypatch, caplog):
    """Loading RIFE (and, on a GPU, tuning its first shapes) takes far longer than a burst
    plays; one step down for it would cost the whole show its in-betweens."""
    monkeypatch.setattr(stage_module, "OVERRUNS", 1)
    net = random_ifnet()

    def slow_load(device, dtype):
        time.sleep(5 * SLEEP)
        return net

    output, got, stats = collecting(fps=30.0, rife=slow_load)
    with caplog.at_level(logging.WARNING, logger="livevace.output"):
        output.submit(generated(0, 2), {"output_fps": 60})
        assert output.drain(timeout=60)
        output.stop()
    assert stats.snapshot()["stage_output_ms"] >= 5 * SLEEP * 1e3  # far over 2 frames' play
    assert output.level == Level.FULL and not budget_lines(caplog)
    assert any("interpolated" in f.meta for f in got[0])


def test_in_line_the_caller_makes_the_in_betweens_and_the_finisher_emits_them_in_order():
    """On a GPU the stage's kernels run between the generator's calls and its copies to the
    host beside them (the module doc says why): the in-betweens are made before `submit`
    returns, on the caller's thread; every burst goes out in order, on the stage's."""
    rendered: list[str] = []

    class Recording(IFNet):
        def pairs(self, packed: torch.Tensor) -> torch.Tensor:
            rendered.append(threading.current_thread().name)
            return super().pairs(packed)

    net = Recording()
    net.load_state_dict(random_ifnet().state_dict())
    emitted: list[str] = []
    output, got, _ = collecting(fps=30.0, rife=lambda d, t: net, inline=True)
    output.emit = lambda frames: (emitted.append(threading.current_thread().name),
                                  got.append(frames))
    here = threading.current_thread().name
    for k in range(3):
        output.submit(generated(2 * k, 2), {"output_fps": 60, "output_size": (96, 96)})
        assert rendered and rendered[-1] == here and len(rendered) == k + 1
    output.submit(generated(6, 2), {})  # both off: straight on, after the bursts before
    output.submit(generated(8, 2), {"output_fps": 60})  # on again: nothing to morph from
    assert output.drain(timeout=60)
    output.stop()
    assert output._thread is None and emitted and here not in emitted
    assert [b[0].index for b in got] == [0, 1, 3, 6, 8]
    assert [len(b) for b in got] == [3, 4, 4, 2, 3]
    assert all(f.image.shape == (96, 96, 3) for b in got[:3] for f in b)
    assert sum("interpolated" in f.meta for b in got for f in b) == 6


def test_a_burst_that_meets_a_new_shape_is_not_held_to_the_budget(monkeypatch, caplog):
    """A new burst length (or size, or setting) tunes kernels and sizes batches on a GPU:
    its first burst is no trend, the second of that shape is."""
    monkeypatch.setattr(stage_module, "OVERRUNS", 1)
    output, got, _ = collecting(fps=30.0, rife=lambda d, t: slow_ifnet(), inline=True)
    params = {"output_fps": 60}
    with caplog.at_level(logging.WARNING, logger="livevace.output"):
        output.submit(generated(0, 2), params)  # loads IFNet
        output.submit(generated(2, 3), params)  # a new length
        assert not budget_lines(caplog) and output.level == Level.FULL
        output.submit(generated(5, 3), params)  # the same again: over its budget
    assert output.drain(timeout=60)
    output.stop()
    assert [line.rsplit(": ", 1)[1] for line in budget_lines(caplog)] == [STEPS[Level.REPEATS]]
    assert output.level == Level.REPEATS and len(got) == 3  # no network: its step is skipped
