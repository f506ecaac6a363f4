"""The recorder: files reopened and counted, after a bounded run and after a `livevace run`
process is stopped with SIGTERM or Ctrl-C (SIGINT) mid-show."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av

from livevace.io.pattern import decode_index
from livevace.io.record import free_path

QUIET = ["--osc-port", "-1", "--oscquery-port", "-1", "--no-zeroconf", "--no-preview"]
SMALL = ["--width", "192", "--height", "112", "--fps", "30", "--pipeline", "passthrough"]


def livevace_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "livevace", "run", *QUIET, *SMALL, *args]


def decoded_indices(path: Path, *, to_first_error: bool = False) -> list[int]:
    """Frame counters read back from the file; `to_first_error` stops at a torn tail (what a
    player does with a file whose writer was killed) instead of raising."""
    out = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                if to_first_error:
                    break
                raise
            out += [decode_index(f.to_ndarray(format="rgb24")) for f in frames]
    return out


def frames_on_disk(path: Path) -> int:
    """Frames a player reads back from the file so far (0 while it has no whole fragment)."""
    try:
        return len(decoded_indices(path, to_first_error=True))
    except (OSError, av.error.FFmpegError):
        return 0


def start_recording(out: Path, **popen) -> subprocess.Popen:
    """Start `livevace run` recording to `out`; return once a whole fragment (1 s of frames)
    reads back from the file. The file's size alone says too little: the header may land in
    several writes."""
    proc = subprocess.Popen(livevace_run("--sink", f"record:{out}"), **popen)
    deadline = time.monotonic() + 120  # generous: a loaded machine only starts slower
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and frames_on_disk(out) >= 10:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the recorder never wrote a fragment")


def test_bounded_run_records_exactly_max_frames(tmp_path):
    out = tmp_path / "take.mp4"
    proc = subprocess.run(livevace_run("--sink", f"record:{out}", "--max-frames", "24"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    indices = decoded_indices(out)
    assert len(indices) == 24
    # The pattern's frame counter, read back from the H.264 file: in order, none repeated
    # more than a hold would explain.
    assert indices == sorted(indices)


def test_existing_file_is_never_overwritten(tmp_path):
    first = tmp_path / "show.mp4"
    first.write_bytes(b"yesterday's show")
    assert free_path(str(first)) == tmp_path / "show-1.mp4"
    assert free_path(str(tmp_path / "noext")) == tmp_path / "noext.mp4"


def stop_mid_show(tmp_path: Path, signum: int, *, again: bool = False) -> str:
    """Stop a recording show with `signum` (`again`: and again every few milliseconds until
    the process is gone, like an impatient user); check the file was finished."""
    out = tmp_path / "live.mp4"
    proc = start_recording(out, stderr=subprocess.PIPE, text=True)
    try:
        proc.send_signal(signum)
        deadline = time.monotonic() + 60
        while again and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    written = int(re.search(r"recording finished: .* \((\d+) frames\)", err).group(1))
    indices = decoded_indices(out)
    # Every frame the recorder wrote is in the file: it was finished, not cut off.
    assert len(indices) == written >= 10
    assert indices == sorted(indices)
    return err


def test_sigterm_leaves_a_finished_recording(tmp_path):
    stop_mid_show(tmp_path, signal.SIGTERM)


def test_ctrl_c_leaves_a_finished_recording(tmp_path):
    stop_mid_show(tmp_path, signal.SIGINT)


def test_ctrl_c_again_and_again_while_stopping_keeps_the_summary(tmp_path):
    """Presses after the first say files are being finished; none cuts the clean stop short
    (the summary line, exit status 0), even one that comes as the process exits."""
    err = stop_mid_show(tmp_path, signal.SIGINT, again=True)
    assert "finishing files" in err
    assert re.search(r"stopped after [\d.]+ s: \d+ frames out", err)


def test_recording_survives_a_hard_kill(tmp_path):
    """Fragmented MP4: even SIGKILL (no chance to finish) leaves a playable file."""
    out = tmp_path / "killed.mp4"
    proc = start_recording(out, stderr=subprocess.DEVNULL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(decoded_indices(out, to_first_error=True)) >= 10
