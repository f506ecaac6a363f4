"""A recording whose disk fills mid-show: the failure stays in sight (status line, OSC stats,
stop summary, exit status) with the true count of frames in the file, and the show goes on."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pythonosc.osc_packet import OscPacket
from test_node_record import decoded_indices, livevace_run

SMALL_DISK = 64 * 1024
"""Bytes the recording may take: a few seconds of the small test picture."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """A folder that fills up after SMALL_DISK bytes: a small tmpfs where this user may
    mount one, else a file-size limit for the child process (writes past it fail, EFBIG)."""
    where = tmp_path / "small"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(where)]
    if os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0:
        try:
            yield where, None
        finally:
            subprocess.run(["umount", str(where)], check=True)
        return

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (SMALL_DISK, SMALL_DISK))

    yield where, limit


class Lines:
    """A child's stderr, read line by line in a thread."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> str:
        self._thread.join(timeout=30)
        return self.text()


class StatsListener:
    """The node's `/livevace/stats/*` feedback, as a live dict."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.values: dict[str, float] = {}

    def wait_for(self, ok: Callable[[dict[str, float]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            for m in OscPacket(data).messages:
                key = m.message.address.removeprefix("/livevace/stats/")
                if key != m.message.address and m.message.params:
                    self.values[key] = float(m.message.params[0])
            if ok(self.values):
                return True
        return False


def test_a_recording_that_fills_the_disk_fails_visibly_with_the_true_count(small_disk):
    where, limit = small_disk
    out = where / "take.mp4"
    stats = StatsListener()
    other = f"ndi:livevace-test-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        livevace_run("--sink", f"record:{out}", "--sink", other,
                     "--feedback", f"127.0.0.1:{stats.port}", "--stats-interval", "0.1"),
        stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    err = Lines(proc.stderr)
    try:
        assert stats.wait_for(lambda s: s.get("failed_sink_record") == 1, 60), \
            f"the stats never showed the recorder failing:\n{err.text()}"
        at_failure = stats.values["frames_sink_ndi"]
        # The show goes on: the other sink keeps getting frames.
        assert stats.wait_for(lambda s: s["frames_sink_ndi"] >= at_failure + 30, 30), err.text()
        deadline = time.monotonic() + 30  # a non-terminal status line comes every 5 s
        while "FAILED: record" not in err.text() and time.monotonic() < deadline:
            time.sleep(0.2)
        kept_stat = stats.values["frames_sink_record"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        stats.sock.close()
    text = err.join()
    status = [line for line in text.splitlines() if " fps  out " in line]
    assert any("FAILED: record" in line for line in status), text
    summary = re.search(r"record:\S+ FAILED \((.+)\): it holds (\d+) of the (\d+) frames", text)
    assert summary is not None, text
    kept, given = int(summary.group(2)), int(summary.group(3))
    assert "recording finished" not in text
    assert proc.returncode == 1, text
    # The count told is the count a player reads: the torn end was cut off, so the whole
    # file decodes with no error.
    readable = decoded_indices(out)
    assert len(readable) == kept == kept_stat
    assert 0 < kept < given
    assert readable == sorted(readable)


def test_a_recording_whose_disk_fills_while_it_is_finished_is_not_called_finished(small_disk):
    """Every frame of a short run sits in the fragment written at the stop: the disk fills
    there, in the final flush (PyAV's own file I/O let that error pass unseen)."""
    where, limit = small_disk
    out = where / "short.mp4"
    proc = subprocess.run(livevace_run("--sink", f"record:{out}", "--max-frames", "29",
                                       "--width", "1280", "--height", "768"),
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert "recording finished" not in proc.stderr
    summary = re.search(r"record:\S+ FAILED \((.+)\): it holds (\d+) of the 29 frames",
                        proc.stderr)
    assert summary is not None, proc.stderr
    assert proc.returncode == 1, proc.stderr
    assert len(decoded_indices(out)) == int(summary.group(2)) == 0
