"""Shared benchmark plumbing: timing statistics, the printed table and the JSON record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from livevace.stats import percentile

RESULTS_DIR = Path("bench") / "results"


@dataclass(frozen=True)
class Timing:
    """Summary of repeated measurements in milliseconds."""

    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> "Timing":
        xs = sorted(samples_ms)
        if not xs:
            raise ValueError("no samples")
        return cls(percentile(xs, 0.5), percentile(xs, 0.95), percentile(xs, 0.99),
                   statistics.fmean(xs), xs[0], xs[-1], len(xs))

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def time_cpu(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> Timing:
    """Wall-clock timing of a CPU function, after warm-up."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return Timing.of(samples)


def time_cuda(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> Timing:
    """CUDA-event timing of a GPU function, after warm-up (work is asynchronous)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return Timing.of(samples)


def environment() -> dict[str, Any]:
    """Machine, device and commit, recorded with every result."""
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
    }
    try:  # LIVEVACE_COMMIT: set where the tree travels without .git (the lent GPU machine)
        info["commit"] = os.environ.get("LIVEVACE_COMMIT") or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = "unknown"
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    return info


def spread(values: list[float]) -> dict[str, float]:
    """Median and range of repeated measurements."""
    median = statistics.median(values)
    lo, hi = min(values), max(values)
    return {"median": median, "min": lo, "max": hi, "n": len(values),
            "spread_%": 100 * (hi - lo) / abs(median) if median else 0.0}


def table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width table (what the bench prints last)."""
    rows = list(rows)

    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_result(name: str, record: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write a benchmark record with its environment as JSON; returns the path."""
    out_dir = out_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"environment": environment(), **record}, indent=2, default=str))
    return path
