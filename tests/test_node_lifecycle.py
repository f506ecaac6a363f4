"""The loop's contracts and a clean shutdown: params snapshot per call, triggers taken once,
control ticked before the snapshot, pause holds the picture, controlmap follows `control`
live, and closing leaves no thread or open file behind."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livevace.config import RunConfig
from livevace.frames import Frame
from livevace.io.ndi_out import NdiSink
from livevace.io.pattern import PatternSource
from livevace.io.record import RecordSink
from livevace.io.video import VideoSource
from livevace.loop import Node
from livevace.params import ParamStore
from livevace.pipelines import create
from livevace.pipelines.controlmap import ControlMap
from livevace.pipelines.passthrough import Passthrough
from livevace.stats import Stats
from polling import until

W, H, FPS = 160, 96, 30.0


def small_config(**kw: Any) -> RunConfig:
    return RunConfig(width=W, height=H, fps=FPS, sinks=(), preview="off", **kw)


class Collect:
    """A sink that keeps what it is given."""

    name = "collect"
    queue_size = 8
    in_flight = queue_size + 2
    """Frames the pacer may already have sent on when the loop stops feeding it: its sink
    queue's, the one being written and the one being emitted."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def open(self, width: int, height: int, fps: float) -> None:
        pass

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        pass


class Probe:
    """A pipeline that records the params each call saw."""

    name = "probe"
    frames_per_call = 2

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]:
        self.seen.append(params)
        return frames

    def close(self) -> None:
        pass


class CountingControl:
    """Stands in for the control service: every tick writes the tick count into `seed`."""

    def __init__(self, store: ParamStore) -> None:
        self.store = store
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        self.store.set("seed", self.ticks)


def test_loop_ticks_control_then_snapshots_and_takes_triggers_once():
    store = ParamStore()
    control = CountingControl(store)
    probe = Probe()
    node = Node(small_config(), store, probe, PatternSource(W, H, FPS), [Collect()],
                control=control)
    node.start()
    try:
        until(lambda: len(probe.seen) >= 3, "the pipeline was never called")
        store.set("reset_cache", True)
        pressed = len(probe.seen)
        until(lambda: len(probe.seen) >= pressed + 3, "the calls stopped")
    finally:
        node.close()
    # Each call saw the value its own tick wrote: tick happens right before the snapshot.
    assert [p["seed"] for p in probe.seen] == list(range(1, len(probe.seen) + 1))
    assert sum(p["reset_cache"] for p in probe.seen) == 1


class BrokenControl:
    """A control service whose tick fails (a bad mapping file, a scene that will not apply)."""

    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        raise RuntimeError("mapping exploded")


def test_a_failing_control_tick_is_logged_once_and_the_show_goes_on(caplog):
    caplog.set_level("ERROR", logger="livevace.loop")
    control = BrokenControl()
    probe = Probe()
    sink = Collect()
    node = Node(small_config(), ParamStore(), probe, PatternSource(W, H, FPS), [sink],
                control=control)
    node.start()
    try:  # fresh pictures keep coming
        until(lambda: control.ticks >= 5 and len({f.index for f in list(sink.frames)}) >= 10,
              "the show stopped")
    finally:
        node.close()
    assert len(probe.seen) == control.ticks  # every call still ran
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("control failed (the parameters stay as they are)")


class SilentSource:
    """A source that opens and never delivers (an NDI sender that stopped sending)."""

    name = "silent"

    def open(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        time.sleep(timeout)
        return None

    def close(self) -> None:
        pass


def test_a_silent_source_shows_the_slate_which_skips_the_pipeline():
    stats = Stats()
    probe = Probe()
    sink = Collect()
    node = Node(small_config(), ParamStore(), probe, SilentSource(), [sink], stats)
    node.start()
    try:  # the slate ticks: new pictures (the sink keeps them, so no id is reused)
        until(lambda: len({id(f.image) for f in list(sink.frames)}) >= 5, "no slate pictures")
        snap = stats.snapshot()
    finally:
        node.close()
    assert snap["no_signal"] == 1 and snap["frames_out"] >= 5
    assert probe.seen == [] and snap["fps_pipeline"] == 0  # …none of them from the pipeline


class PausedTicks:
    """Stands in for the control service: counts the ticks that saw `pause` on. The loop
    ticks before each call and while paused, so after two such ticks no call is under way."""

    def __init__(self, store: ParamStore) -> None:
        self.store = store
        self.paused = 0

    def tick(self) -> None:
        self.paused += bool(self.store.get("pause"))


def test_pause_holds_the_last_picture():
    store = ParamStore()
    sink = Collect()
    ticks = PausedTicks(store)
    node = Node(small_config(), store, Passthrough(), PatternSource(W, H, FPS), [sink],
                control=ticks)
    node.start()
    try:
        until(lambda: sink.frames, "no output")
        store.set("pause", True)
        # no call under way and the pacer's queue played: from here on only holds go out
        until(lambda: ticks.paused >= 2 and node.pacer.depth == 0, "the pause never began")
        mark = len(sink.frames) + Collect.in_flight
        until(lambda: len(sink.frames) >= mark + 8, "output stopped while paused")
        paused = sink.frames[mark:]
        store.set("pause", False)
        until(lambda: sink.frames[-1].index > paused[0].index, "the picture never moved again")
    finally:
        node.close()
    assert all(f is paused[0] for f in paused)  # output went on, showing one held picture


def test_controlmap_follows_the_control_parameter_live():
    pipeline = ControlMap("gray")
    frame = Frame(PatternSource(W, H, FPS).render(5), 1.0, 5)
    (gray,) = pipeline([frame], {"control": "gray"})
    assert gray.t_capture == frame.t_capture and gray.index == 5  # the stamp travels
    assert np.array_equal(gray.image[..., 0], gray.image[..., 1])
    (edges,) = pipeline([frame], {"control": "edges"})
    assert pipeline.showing == "edges"
    assert not np.array_equal(edges.image, gray.image)
    assert (edges.image < 32).mean() > 0.6  # an edge map: thin lines on black
    # A control that cannot be made keeps the previous one on screen (logged, not raised).
    (still,) = pipeline([frame], {"control": "no-such-control"})
    assert pipeline.showing == "edges" and np.array_equal(still.image, edges.image)
    pipeline.close()


def test_auto_picks_the_most_capable_pipeline_that_runs(caplog):
    caplog.set_level("INFO", logger="livevace.pipeline")
    pipeline = create("auto", small_config(), ParamStore())
    assert pipeline.name == "controlmap"  # the annotators are installed here
    assert any("pipeline auto -> controlmap" in r.message for r in caplog.records)
    pipeline.close()


def needs_gpu(config: RunConfig, store: ParamStore) -> Passthrough:
    from livevace.errors import UserError

    raise UserError("needs a CUDA GPU")


def test_auto_passes_over_what_cannot_run_and_says_why(caplog, monkeypatch):
    from livevace.pipelines import REGISTRY, PipelineEntry

    monkeypatch.setitem(REGISTRY, "dream", PipelineEntry(
        "dream", f"{__name__}:needs_gpu", "a pipeline this machine cannot run", rank=1000))
    caplog.set_level("INFO", logger="livevace.pipeline")
    pipeline = create("auto", small_config(), ParamStore())
    assert pipeline.name == "controlmap"
    (line,) = [r.message for r in caplog.records if "pipeline auto" in r.message]
    assert "dream: needs a CUDA GPU" in line
    pipeline.close()


def open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_shutdown_leaves_no_thread_or_file_behind(tmp_path):
    clip = tmp_path / "in.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=30",
                    "-frames:v", "30", "-pix_fmt", "yuv420p", str(clip)], check=True)
    out = tmp_path / "out.mp4"
    threads_before = set(threading.enumerate())
    stats = Stats()
    node = Node(small_config(max_frames=40), ParamStore(), Passthrough(), VideoSource(str(clip)),
                [RecordSink(str(out)), NdiSink("livevace-shutdown-test")], stats)
    node.start()
    assert str(clip) in open_files()
    assert node.wait(15)
    node.close()
    leftover = [t.name for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert leftover == []
    still_open = {str(clip), str(out)} & open_files()
    assert still_open == set()
    assert stats.snapshot()["frames_out"] == 40
    assert out.stat().st_size > 0
