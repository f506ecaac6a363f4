"""Where the GPU's time goes: a profiled run's kernels summed per CUDA stream and kind.

`bench dit --profile` and `bench pipeline --profile` both use it. The run is recorded with
`torch.profiler` (device activity only on a GPU, so the host is not slowed by its own
tracing), exported as a Chrome trace (open it in Perfetto or chrome://tracing) and summed:

- per call: wall time, device busy time (the union of every stream's kernels and copies) and
  idle time (wall − busy: host gaps, synchronisation);
- per stream × kind (`kernel_kind`) the kernel time. Kernels of concurrent streams share the
  SMs, so their durations add up to more than the busy time and a kernel timed beside another
  stream's work reads longer than it costs alone;
- the kernels that took the most time.

On a CPU the trace holds the host operators of every thread (the pipeline runs on threads of
its own); they nest, so they are not summed: the summary then has no device time, and the
trace file is what to read.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

KERNEL_KINDS = (("attention", ("sdpa", "fmha", "flash", "attn", "attention")),  # before gemm:
                # FlashAttention-4's kernels are CUTLASS kernels by name
                ("conv", ("fprop", "conv2d", "conv3d", "convolve", "winograd")),  # before gemm:
                # cuDNN's convolutions are implicit GEMMs by name
                ("gemm", ("triton_tem", "gemm", "xmma", "nvjet", "cutlass", "scaled_mm",
                          "matmul", "splitk")),
                ("triton", ("triton_",)),
                ("copy/index", ("copy", "memcpy", "memset", "index", "cat_", "catarray")))
DEVICE_EVENTS = ("kernel", "gpu_memcpy", "gpu_memset")
"""Trace categories that are device work."""
TOP = 25


def kernel_kind(name: str) -> str:
    """attention, conv, gemm, triton (compiled element-wise), copy/index or
    elementwise/other, from a kernel's name."""
    low = name.lower()
    for kind, words in KERNEL_KINDS:
        if any(w in low for w in words):
            return kind
    return "elementwise/other"


@dataclass
class KernelProfile:
    """Device time per call of a profiled run (milliseconds)."""

    calls: int
    wall_ms: float
    busy_ms: float
    streams: dict[str, dict[str, float]] = field(default_factory=dict)
    """stream → kind → kernel time."""
    top: list[tuple[str, str, float, float]] = field(default_factory=list)
    """(kernel name, kind, time, launches), longest first."""

    @property
    def kernels_ms(self) -> float:
        return sum(sum(kinds.values()) for kinds in self.streams.values())

    @property
    def idle_ms(self) -> float:
        return max(0.0, self.wall_ms - self.busy_ms)

    @property
    def launches(self) -> float:
        return sum(n for *_, n in self.top)

    def by_kind(self) -> dict[str, float]:
        """Kernel time per kind, all streams together."""
        out: dict[str, float] = defaultdict(float)
        for kinds in self.streams.values():
            for kind, ms in kinds.items():
                out[kind] += ms
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "wall_ms": self.wall_ms, "busy_ms": self.busy_ms,
                "idle_ms": self.idle_ms, "kernels_ms": self.kernels_ms,
                "launches": self.launches, "by_kind_ms": self.by_kind(),
                "streams_ms": self.streams,
                "top": [{"name": n, "kind": k, "ms": ms, "launches": c}
                        for n, k, ms, c in self.top]}

    def lines(self, title: str) -> list[str]:
        """A readable summary: totals, a stream × kind table, the top kernels."""
        out = [f"== {title}: per call: wall {self.wall_ms:.2f} ms, GPU busy {self.busy_ms:.2f}, "
               f"idle {self.idle_ms:.2f}, kernels summed over streams {self.kernels_ms:.2f}, "
               f"{self.launches:.0f} launches"]
        if not self.streams:
            return out + ["   (no device activity recorded: a CPU run)"]
        kinds = sorted({k for kinds in self.streams.values() for k in kinds})
        width = max(12, *(len(k) + 2 for k in kinds))
        out.append("   stream " + "".join(k.rjust(width) for k in kinds) + "total".rjust(10))
        for stream, by in sorted(self.streams.items(), key=lambda s: -sum(s[1].values())):
            out.append(f"   {stream:>6} " + "".join(f"{by.get(k, 0.0):{width}.2f}" for k in kinds)
                       + f"{sum(by.values()):10.2f}")
        out.append("   top kernels (ms per call, launches per call):")
        out += [f"   {ms:9.3f} {n:7.1f}  {kind:17s} {name[:140]}"
                for name, kind, ms, n in self.top]
        return out


def union_ms(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by (start, end) intervals, overlaps counted once."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarise(events: Iterable[dict[str, Any]], calls: int, wall_ms: float) -> KernelProfile:
    """Sum a Chrome trace's device events (`ts`/`dur` in µs) into a `KernelProfile` per call."""
    per = 1e3 * calls
    streams: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    names: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    spans = []
    for ev in events:
        if ev.get("ph") != "X" or ev.get("cat") not in DEVICE_EVENTS:
            continue
        name, dur = ev["name"], float(ev.get("dur", 0.0))
        kind = kernel_kind(name) if ev["cat"] == "kernel" else "copy/index"
        streams[str(ev.get("args", {}).get("stream", "?"))][kind] += dur / per
        names[(name, kind)][0] += dur
        names[(name, kind)][1] += 1
        spans.append((float(ev["ts"]), float(ev["ts"]) + dur))
    ranked = [(n, k, t / per, c / calls)
              for (n, k), (t, c) in sorted(names.items(), key=lambda kv: -kv[1][0])]
    rest = ranked[TOP:]
    top = ranked[:TOP] + ([("(other kernels)", "-", sum(r[2] for r in rest),
                            sum(r[3] for r in rest))] if rest else [])
    return KernelProfile(calls, wall_ms / calls, union_ms(spans) / per,
                         {s: dict(sorted(k.items())) for s, k in streams.items()}, top)


def profile_calls(call: Callable[[], Any], calls: int, device: torch.device,
                  trace: Path | None = None, first: bool = False) -> KernelProfile:
    """Profile `calls` calls of `call` (after one unprofiled call, so lazy set-up stays out;
    with `first`, the very first call, the host's operators traced too: what a first call
    does beside the steady ones is the question then) and summarise them; the Chrome trace
    goes to `trace` (gzip if it ends in .gz)."""
    from torch._C._profiler import _ExperimentalConfig
    from torch.profiler import ProfilerActivity, profile

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if not first:
        call()
    sync()
    gpu = device.type == "cuda"
    activities = [ProfilerActivity.CUDA] if gpu else []
    if first or not gpu:
        activities.append(ProfilerActivity.CPU)
    host = {} if gpu else {"experimental_config": _ExperimentalConfig(profile_all_threads=True)}
    with profile(activities=activities, **host) as prof:
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        sync()
        wall_ms = (time.perf_counter() - t0) * 1e3
    fd, tmp = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(tmp)
        text = Path(tmp).read_text()
    finally:
        os.unlink(tmp)
    if trace is not None:
        trace.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        trace.write_bytes(gzip.compress(data) if trace.suffix == ".gz" else data)
    return summarise(json.loads(text)["traceEvents"], calls, wall_ms)


def try_profile(call: Callable[[], Any], calls: int, device: torch.device, title: str,
                trace: Path | None = None, first: bool = False) -> KernelProfile | None:
    """`profile_calls`, or None after one printed line if the profiler fails (a missing
    CUPTI, say): profiling is an extra, the benchmark's own numbers are kept."""
    try:
        return profile_calls(call, calls, device, trace, first)
    except Exception as exc:  # noqa: BLE001
        print(f"{title}: profiling failed: {type(exc).__name__}: {exc}")
        return None

