"""Where a row's peak memory goes (`bench.memory`): the replay of allocator events against
a hand-worked history, who owns an allocation, and on a GPU a recorded row."""

from __future__ import annotations

import json

import pytest
import torch

from livevace.bench.memory import BEFORE, owner, peak_report
from livevace.cli import main

MB = 1_000_000


def frames(*where: tuple[str, int, str]) -> list[dict]:
    return [{"filename": f, "line": line, "name": n} for f, line, n in where]


CACHE = frames(("/x/torch/nn/functional.py", 10, "linear"),
               ("/site/livevace/models/wan/kv_cache.py", 42, "allocate"),
               ("/site/livevace/pipelines/vace/session.py", 7, "__init__"))
GEMM = frames(("/tmp/torchinductor_root/ab/cab.py", 99, "call"),
              ("/site/livevace/models/wan/blocks.py", 120, "forward"))
DECODE = frames(("/site/livevace/models/wan/vae.py", 300, "decode"))


def test_the_innermost_livevace_frame_owns_an_allocation() -> None:
    assert owner(CACHE) == "livevace/models/wan/kv_cache.py:42 allocate"
    assert owner(GEMM) == "livevace/models/wan/blocks.py:120 forward"  # compiled code's caller
    assert owner(frames(("/x/torch/cuda/graphs.py", 5, "capture"))) == \
        "/x/torch/cuda/graphs.py:5 capture"
    assert owner([]) == "(no stack)"


def test_the_peak_is_replayed_from_the_events() -> None:
    """Worked by hand: 1000 MB resident; the cache (300) stays; two GEMM temporaries of 200
    live together, then go; the decoder's 250 comes after one of them is freed but before
    the other completes; a block from before the recording (100 of the 1000) is freed."""
    events = [
        {"action": "alloc", "addr": 1, "size": 300 * MB, "frames": CACHE},      # 1300
        {"action": "alloc", "addr": 2, "size": 200 * MB, "frames": GEMM},       # 1500
        {"action": "alloc", "addr": 3, "size": 200 * MB, "frames": GEMM},       # 1700
        {"action": "free_requested", "addr": 2, "size": 200 * MB},              # still held
        {"action": "free_completed", "addr": 2, "size": 200 * MB},              # 1500
        {"action": "alloc", "addr": 4, "size": 250 * MB, "frames": DECODE},     # 1750: peak
        {"action": "free_completed", "addr": 3, "size": 200 * MB},              # 1550
        {"action": "free_completed", "addr": 99, "size": 100 * MB},             # 1450
        {"action": "segment_alloc", "addr": 5, "size": 2000 * MB},              # not counted
    ]
    report = peak_report(events, 1000 * MB)
    assert report.peak_bytes == 1750 * MB and report.before_bytes == 1000 * MB
    assert report.owners == [("livevace/models/wan/kv_cache.py:42 allocate", 300 * MB, 1),
                             ("livevace/models/wan/vae.py:300 decode", 250 * MB, 1),
                             ("livevace/models/wan/blocks.py:120 forward", 200 * MB, 1)]
    assert report.unmatched_frees == 1 and report.events == len(events)
    text = "\n".join(report.lines())
    assert f"peak 1.75 GB: {BEFORE} 1.00 GB" in text
    assert report.as_dict()["owners"][0] == {
        "owner": "livevace/models/wan/kv_cache.py:42 allocate", "gb": 0.3, "allocations": 1}


def test_each_phase_has_its_own_peak() -> None:
    """The same history cut in phases: a phase's peak counts what is live when it begins
    (the cache made before it) and nothing of a higher peak in another phase."""
    events = [
        {"action": "alloc", "addr": 1, "size": 300 * MB, "frames": CACHE},      # 1300
        {"action": "alloc", "addr": 2, "size": 500 * MB, "frames": DECODE},     # 1800: warm-up
        {"action": "free_completed", "addr": 2, "size": 500 * MB},              # 1300
        {"action": "alloc", "addr": 3, "size": 200 * MB, "frames": GEMM},       # 1500: show
        {"action": "free_completed", "addr": 3, "size": 200 * MB},              # 1300
        {"action": "free_completed", "addr": 1, "size": 300 * MB},              # 1000: a phase
    ]
    warm, show, empty = (peak_report(events, 1000 * MB, a, b) for a, b in ((0, 3), (3, 5),
                                                                           (6, 6)))
    assert warm.peak_bytes == 1800 * MB and warm.events == 3
    assert show.peak_bytes == 1500 * MB
    assert show.owners == [("livevace/models/wan/kv_cache.py:42 allocate", 300 * MB, 1),
                           ("livevace/models/wan/blocks.py:120 forward", 200 * MB, 1)]
    assert empty.peak_bytes == 1000 * MB and empty.owners == [] and empty.events == 0


def test_a_peak_before_any_allocation_is_the_baseline() -> None:
    report = peak_report([{"action": "free_completed", "addr": 7, "size": 5 * MB}], 50 * MB)
    assert report.peak_bytes == 50 * MB and report.owners == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_a_row_says_who_held_its_peak(tmp_path) -> None:
    code = main(["bench", "pipeline", "--weights", "tiny-random", "--resolution", "64x64",
                 "--chunks", "2", "--memory-history", "--out", str(tmp_path)])
    assert code == 0
    (result,) = tmp_path.glob("pipeline-*.json")
    (row,) = json.loads(result.read_text())["rows"]
    phases = row["memory_peak"]
    assert list(phases)[:3] == ["warm-up", "show", "time to first frame"]
    for name in ("warm-up", "show"):
        peak = phases[name]
        assert peak["owners"] and all(o["gb"] > 0 for o in peak["owners"])
        want = row["peak_warmup_gb" if name == "warm-up" else "peak_steady_gb"]
        assert abs(peak["peak_gb"] - want) < 0.05 * want
    assert list(tmp_path.glob("memory-*.pickle"))
