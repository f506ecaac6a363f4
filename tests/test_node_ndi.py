"""Real NDI on loopback: our sender to our receiver inside the test process, and sender
processes of their own (NDIlib finds local senders through `extra_ips=127.0.0.1`, no avahi
needed)."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest

from livevace.errors import SinkError
from livevace.frames import Frame, now
from livevace.io.capture import Capture, is_slate
from livevace.io.ndi import Discovery
from livevace.io.ndi_in import NdiSource
from livevace.io.ndi_out import NdiSink
from livevace.io.pattern import PatternSource, decode_index
from livevace.stats import Stats
from polling import until

pytest.importorskip("NDIlib")

W, H, FPS = 192, 112, 30.0
RESTARTED = 30000
"""Where the restarted sender's frame counter starts: its frames are told from the first's."""


def unique_name() -> str:
    return f"livevace-test-{uuid.uuid4().hex[:8]}"


class Sender:
    """Sends the test pattern through a real NdiSink from a thread, like a remote host."""

    def __init__(self, name: str) -> None:
        self.sink = NdiSink(name)
        self.sink.open(W, H, FPS)
        self.pattern = PatternSource(W, H, FPS)
        self.sent: dict[int, np.ndarray] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        k = 0
        while not self._stop.wait(1 / FPS):
            image = self.pattern.render(k)
            self.sent[k] = image
            self.sink.write(Frame(image, now(), k))
            k += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sink.close()


def receive(source: NdiSource, n: int, timeout: float) -> list[Frame]:
    """Open `source` and read until `n` frames came or `timeout` seconds passed."""
    source.open()
    got: list[Frame] = []
    deadline = now() + timeout
    while len(got) < n and now() < deadline:
        frame = source.read(0.1)
        if frame is not None:
            got.append(frame)
    return got


def test_ndi_send_receive_loopback():
    name = unique_name()
    sender = Sender(name)
    source = NdiSource(name)
    try:
        got = receive(source, 15, 30)
        assert len(got) >= 15, "no NDI frames arrived on loopback"
        for frame in got[-5:]:
            assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
            index = decode_index(frame.image)
            assert index in sender.sent  # the frame counter survived NDI's compression
            diff = np.abs(frame.image.astype(int) - sender.sent[index].astype(int)).mean()
            # Close to what was sent, in RGB order (swapped channels would turn the colour
            # bars into others and fail this by far).
            assert diff < 6, f"received picture differs from the sent one by {diff:.1f}"
        assert name in {s.short for s in Discovery.shared().sources()}
    finally:
        source.close()
        sender.close()


def take_until(capture: Capture, want_slate: bool, timeout: float) -> Frame | None:
    deadline = now() + timeout
    while now() < deadline:
        frames = capture.take(1, 0.2)
        if frames and is_slate(frames[0]) == want_slate:
            return frames[0]
    return None


def test_a_sender_name_taken_by_another_process_is_one_clear_line():
    """A second node with the default `ndi:livevace` sink: NDI refuses a name a sender of
    another process holds, and the message says what to do."""
    name = unique_name()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, NDIlib as ndi; ndi.initialize(); "
         "s = ndi.SendCreate(); s.ndi_name = sys.argv[1]; x = ndi.send_create(s); "
         "print(x is not None, flush=True); sys.stdin.read()", name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        with pytest.raises(SinkError) as err:
            NdiSink(name).open(W, H, FPS)
    finally:
        holder.communicate("", timeout=30)
    assert str(err.value) == (
        f"cannot create the NDI sender {name!r}: another node or program on this machine may "
        f"be sending under that name; give this one its own (--sink ndi:{name}-2)")


def test_ndi_source_vanishes_shows_slate_and_reconnects():
    name = unique_name()
    sender = Sender(name)
    stats = Stats()
    capture = Capture(NdiSource(name), W, H, FPS, stats, no_signal_after=0.3, reopen_after=0.6)
    capture.start()
    try:
        first = take_until(capture, want_slate=False, timeout=30)
        assert first is not None and decode_index(first.image) in sender.sent
        sender.close()  # the sending program quits mid-show
        slate = take_until(capture, want_slate=True, timeout=30)
        assert slate is not None, "no slate while the source was gone"
        assert stats.snapshot()["no_signal"] == 1
        assert slate.image.shape == (H, W, 3)
        sender = Sender(name)  # it comes back (NDI gives it a new port)
        back = take_until(capture, want_slate=False, timeout=30)
        assert back is not None, "did not reconnect to the returning sender"
        assert decode_index(back.image) in sender.sent
        # (the capture thread clears the gauge just after it queues the frame)
        until(lambda: stats.snapshot()["no_signal"] == 0, "no_signal stayed on")
    finally:
        capture.stop()
        sender.close()


SENDER = """
import sys, time
from livevace.errors import SinkError
from livevace.frames import Frame, now
from livevace.io.ndi_out import NdiSink
from livevace.io.pattern import PatternSource
name, first = sys.argv[1], int(sys.argv[2])
sink = NdiSink(name)
sink.open({w}, {h}, {fps})
pattern = PatternSource({w}, {h}, {fps})
print("sending", flush=True)
k = first
while True:
    sink.write(Frame(pattern.render(k), now(), k))
    k += 1
    time.sleep(1 / {fps})
""".format(w=W, h=H, fps=FPS)


def sender_process(name: str, first: int) -> subprocess.Popen:
    """Another program sending NDI: its own process, counting frames from `first`."""
    proc = subprocess.Popen([sys.executable, "-c", SENDER, name, str(first)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "sending"
    return proc


def test_a_named_source_whose_sender_process_restarts_comes_back():
    """The sending program is killed (-9) and started again: real frames return by name.

    The node has its own NDI output, as `livevace run` does by default: two NDI programs on
    one host, each answering discovery for its own senders only."""
    name = unique_name()
    own = NdiSink(unique_name())
    own.open(W, H, FPS)
    first = sender_process(name, 0)
    second: subprocess.Popen | None = None
    capture = Capture(NdiSource(name), W, H, FPS, Stats())
    capture.start()
    try:
        got = take_until(capture, want_slate=False, timeout=20)
        assert got is not None and decode_index(got.image) < RESTARTED
        first.kill()  # kill -9: no goodbye
        first.wait()
        assert take_until(capture, want_slate=True, timeout=10) is not None
        second = sender_process(name, RESTARTED)
        back_from = now()
        deadline = back_from + 20
        back = None
        while back is None and now() < deadline:
            frame = take_until(capture, want_slate=False, timeout=deadline - now())
            if frame is not None and decode_index(frame.image) >= RESTARTED:
                back = frame
        assert back is not None, "real frames never came back from the restarted sender"
        print(f"real frames back {now() - back_from:.2f} s after the sender restarted")
    finally:
        capture.stop()
        own.close()
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait()


def test_the_node_sends_the_venues_1080p60_over_ndi_and_records_it(tmp_path):
    """Generated at 64×48 and 30 fps, out at the venue's format (`output_size` 1920×1080,
    `output_fps` 60; Lanczos, no weights here): the NDI receiver gets 1080p frames the sender
    states as 60 fps, and the recording is 1080p at 60 fps."""
    import json

    from livevace.config import RunConfig
    from livevace.io.record import RecordSink
    from livevace.loop import Node
    from livevace.params import ParamStore
    from livevace.pipelines.passthrough import Passthrough

    name, out = unique_name(), tmp_path / "venue.mp4"
    store = ParamStore()
    store.update({"output_fps": 60, "output_size": (1920, 1080), "upscale_model": "lanczos"})
    config = RunConfig(width=64, height=48, fps=30.0, sinks=(), preview="off")
    node = Node(config, store, Passthrough(), PatternSource(64, 48, 30.0),
                [NdiSink(name), RecordSink(str(out))])
    source = NdiSource(name)
    node.start()
    try:
        got = receive(source, 5, 60)
    finally:
        source.close()
        node.close()
    assert len(got) >= 5, "no 1080p frames arrived over NDI"
    assert all(f.image.shape == (1080, 1920, 3) and f.meta["fps"] == 60.0 for f in got)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height,r_frame_rate", "-of", "json", str(out)],
                           capture_output=True, text=True, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["width"], stream["height"], stream["r_frame_rate"]) == (1920, 1080, "60/1")
