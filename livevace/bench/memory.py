"""Where a row's peak GPU memory goes (`livevace bench pipeline --memory-history`).

The measured peak says how much; calibrating `store.vram` (or making the peak smaller) needs
what. With `--memory-history` a row records PyTorch's allocator history from before its
pipeline is made to after its timed calls, writes the snapshot beside the results (open it
at https://pytorch.org/memory_viz) and sums the allocations live at the peak by the code
that made them: the innermost frame of livevace in each one's stack (compiled code shows as
the livevace line that called it). Memory allocated before the recording began (the
resident weights) is one line of its own. A row marks where its phases end (`Recording.
phase`: the warm-up, the show, the time to first frame of a new pipeline), and the report
gives each phase's own peak: the row's peaks are per phase too, and the highest of all may
lie in a phase that is not the one in question.

The replay counts an allocation from its `alloc` until its `free_completed` (when the
allocator can hand the block out again), as PyTorch's own viewer does.
"""

from __future__ import annotations

import contextlib
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

GB = 1e9
OURS = "livevace/"
BEFORE = "allocated before the recording"
MAX_ENTRIES = 2_000_000
"""Allocator events kept (a ring: a longer row keeps its last ones, and the replay then
starts mid-way, which it says)."""


def owner(frames: list[dict[str, Any]]) -> str:
    """The innermost livevace frame of a stack, as `path:line function` (path from livevace/
    on); the innermost frame of all where none is ours."""
    for frame in frames:
        name = str(frame.get("filename", ""))
        if OURS in name:
            return f"{OURS}{name.rsplit(OURS, 1)[1]}:{frame.get('line')} {frame.get('name')}"
    if frames:
        f = frames[0]
        return f"{f.get('filename')}:{f.get('line')} {f.get('name')}"
    return "(no stack)"


@dataclass
class PeakReport:
    """The allocations live when the recorded total peaked, summed by owner."""

    before_bytes: int
    peak_bytes: int
    """Live at the peak: `before_bytes` + what the recording allocated and had not freed."""
    owners: list[tuple[str, int, int]] = field(default_factory=list)
    """(owner, bytes, allocations), largest first."""
    events: int = 0
    unmatched_frees: int = 0
    """Frees of blocks allocated before the recording (or before a ring's first event)."""

    def as_dict(self, top: int = 20) -> dict[str, Any]:
        return {"before_gb": self.before_bytes / GB, "peak_gb": self.peak_bytes / GB,
                "events": self.events, "unmatched_frees": self.unmatched_frees,
                "owners": [{"owner": o, "gb": b / GB, "allocations": n}
                           for o, b, n in self.owners[:top]]}

    def lines(self, top: int = 12) -> list[str]:
        out = [f"   peak {self.peak_bytes / GB:.2f} GB: {BEFORE} {self.before_bytes / GB:.2f} GB, "
               f"then live at the peak:"]
        out += [f"   {b / GB:8.3f} GB  {n:5d}×  {o}" for o, b, n in self.owners[:top]]
        rest = self.owners[top:]
        if rest:
            out.append(f"   {sum(b for _, b, _ in rest) / GB:8.3f} GB  in {len(rest)} more places")
        if self.unmatched_frees:
            out.append(f"   ({self.unmatched_frees} frees of blocks from before the recording)")
        return out


def peak_report(events: Sequence[dict[str, Any]], before_bytes: int, start: int = 0,
                end: int | None = None) -> PeakReport:
    """Replay allocator events (`device_traces` of one device) on top of `before_bytes`
    already allocated: the moment the live total peaked between events `start` and `end` (a
    phase; default all) and who held what then."""
    live: dict[int, tuple[int, str]] = {}
    total = before_bytes
    peak, at_peak = -1, dict(live)
    end = len(events) if end is None else min(end, len(events))
    unmatched = 0
    for i, event in enumerate(events[:end]):
        if i == start:  # the phase begins with what is live then
            peak, at_peak = total, dict(live)
        action = event.get("action")
        if action == "alloc":
            live[event["addr"]] = (int(event["size"]), owner(event.get("frames", [])))
            total += int(event["size"])
            if i >= start and total > peak:
                peak, at_peak = total, dict(live)
        elif action == "free_completed":
            held = live.pop(event["addr"], None)
            if held is None:
                unmatched += 1
                total -= int(event["size"])  # a block from before: the baseline shrinks
            else:
                total -= held[0]
    if peak < 0:  # a phase with no event of its own
        peak, at_peak = total, dict(live)
    by_owner: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for size, who in at_peak.values():
        by_owner[who][0] += size
        by_owner[who][1] += 1
    owners = sorted(((o, b, n) for o, (b, n) in by_owner.items()), key=lambda r: -r[1])
    return PeakReport(before_bytes, peak, owners, end - start, unmatched)


class Recording:
    """A row's allocator history while it runs: `phase(name)` says a phase ends now; after
    the recording, `reports` holds each phase's peak (and "rest" for what followed the last
    mark), in order."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.index = device.index if device.index is not None else torch.cuda.current_device()
        self.marks: list[tuple[str, int]] = []
        self.reports: dict[str, PeakReport] = {}

    def phase(self, name: str) -> None:
        """The phase `name` ends here (a snapshot of the history so far counts its events)."""
        torch.cuda.synchronize(self.device)
        self.marks.append((name, len(self._events(torch.cuda.memory._snapshot()))))

    def _events(self, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
        return snapshot["device_traces"][self.index]

    def replay(self, snapshot: dict[str, Any], before: int) -> None:
        events = self._events(snapshot)
        start = 0
        for name, end in [*self.marks, ("rest", len(events))]:
            if end > start or name != "rest":
                self.reports[name] = peak_report(events, before, start, end)
            start = end


@contextlib.contextmanager
def recorded(device: torch.device, path: Path) -> Iterator[Recording | None]:
    """Record the allocator's history on `device` inside; then write the snapshot to `path`
    and each phase's peak into the yielded `Recording` (None on a CPU: nothing is
    recorded)."""
    if device.type != "cuda":
        yield None
        return
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    recording = Recording(device)
    torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES, stacks="python")
    try:
        yield recording
        torch.cuda.synchronize(device)
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(snapshot, f)
    recording.replay(snapshot, before)
