"""`livevace soak`: the real node under real OSC over UDP, sampled; the one-hour row in
BENCHMARKS.md comes from this code path. No timing bounds: the assertions are about what
happened (traffic reached the node, the record's shape, the failure rules)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from livevace.bench.soak import FD_ALLOWANCE, Mix, unbounded
from livevace.control.ramps import Ramps
from livevace.control.router import Router
from livevace.params import ParamStore

SAMPLE_KEYS = {"t_s", "dt_s", "rss_mb", "threads", "fds", "fps_out", "fresh_fps",
               "latency_p50_ms", "held", "dropped", "pipeline_errors", "param_changes",
               "osc_sent", "osc_received"}


def soak_command(tmp_path: Path, *extra: str) -> list[str]:
    """A short soak on the passthrough pipeline (nothing to load when the control changes:
    no interval without a fresh frame however loaded the machine is)."""
    return [sys.executable, "-m", "livevace", "soak", "--minutes", "0.15",
            "--interval", "2", "--pipeline", "passthrough", "--width", "192", "--height", "112",
            "--out", str(tmp_path), *extra]


def soak(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(soak_command(tmp_path, *extra), capture_output=True, text=True,
                          timeout=300)


def test_soak_runs_the_node_under_osc_and_records_samples(tmp_path):
    proc = soak(tmp_path, "--osc-rate", "100")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    (result,) = tmp_path.glob("soak-*.json")
    record = json.loads(result.read_text())
    assert record["environment"]["commit"] and record["failures"] == []
    assert len(record["samples"]) >= 2
    assert all(SAMPLE_KEYS <= set(s) for s in record["samples"])
    assert all(s["rss_mb"] > 0 and s["threads"] > 1 and s["fds"] > 2 for s in record["samples"])
    summary = record["summary"]
    for key in ("rss_growth_%", "threads_max", "fds_growth", "fps_out_min", "fps_out_median",
                "fresh_fps_min", "latency_p50_ms_median"):
        assert key in summary
    # The OSC really reached the node: it changed parameters and answered (replies, feedback).
    traffic = record["traffic"]
    assert traffic["sent"] > 0 and traffic["received"] > 0
    assert summary["param_changes"] > 0
    assert {"write", "wrong_type", "malformed"} & set(traffic["by_kind"])
    assert summary["fps_out_min"] > 0
    assert proc.stdout.count("soak ") >= 2 and "wrote " in proc.stdout


def test_two_soaks_run_side_by_side(tmp_path):
    # Each has its own NDI sender (NDI refuses a second sender of one name on a machine).
    first = subprocess.Popen(soak_command(tmp_path / "first"), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert first.stdout is not None
        for line in first.stdout:  # its first sample: its sender is open
            if line.startswith("soak "):
                break
        second = soak(tmp_path / "second")
        assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    finally:
        rest, _ = first.communicate(timeout=300)
    assert first.returncode == 0, rest


def test_soak_fails_when_the_node_stops_by_itself(tmp_path):
    # 100 frames at 30 fps: past the first sample (2 s), well before the end (9 s).
    proc = soak(tmp_path, "--max-frames", "100")
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert "soak FAILED: the node stopped by itself" in proc.stdout


def test_soak_fails_when_no_frame_comes(tmp_path):
    # Paused from the start (and the traffic only ever writes pause's start value): the
    # pipeline never runs, so no frame goes out.
    proc = soak(tmp_path, "--set", "pause=true")
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert "soak FAILED: no frame went out" in proc.stdout
    (result,) = tmp_path.glob("soak-*.json")
    assert json.loads(result.read_text())["failures"]


def test_growth_rule_flags_a_leak_not_a_one_off_cost():
    assert unbounded([20, 60, 100, 140, 180], FD_ALLOWANCE)  # rising all the time
    assert not unbounded([20, 60, 60, 61, 60], FD_ALLOWANCE)  # a one-off cost, then flat
    assert not unbounded([20, 20, 21, 20, 60], FD_ALLOWANCE)  # a late one-off cost
    assert not unbounded([20], FD_ALLOWANCE)


def test_wrong_type_packets_change_nothing_and_writes_do():
    """The mix's "wrong type" move is what the node's router refuses; its writes land."""
    store = ParamStore()
    router = Router(store, Ramps(store))
    mix = Mix(store.snapshot(), random.Random(1))
    before = store.snapshot()
    for _ in range(300):
        router.handle_packet(mix.wrong_type(), ("127.0.0.1", 1), lambda data: None)
    assert store.snapshot() == before
    for _ in range(50):
        router.handle_packet(mix.write(), ("127.0.0.1", 1), lambda data: None)
    assert store.version > 0
