"""Node overhead: pattern -> passthrough -> NDI at 60 fps: added latency and CPU use.

For each size the full node runs (capture thread, loop, pacer, NDI sink thread) while a
separate receiver process watches the NDI stream, so NDI really compresses every frame as
it would with TouchDesigner connected. Reported:

- added latency p50/p99: the pattern's capture stamp (taken when the frame is complete)
  to the moment the NDI sink has handed the frame to NDI, i.e. everything the node adds
  between a source and the wire;
- NDI loopback latency p50/p99: the same stamp to the receiver process getting the frame
  (it travels in the NDI frame metadata; both processes read the same monotonic clock);
- CPU: the node process's CPU time over wall time (1.0 = one core), and on Linux where it
  goes per thread (pattern source, loop, pacer, NDI sink, NDI's own threads).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from livevace.bench.report import Timing, environment, table, write_result

TARGET_P99_MS = 5.0
TARGET_CORES_720P = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1280x720,1920x1080",
                        help="comma-separated WxH (default 1280x720,1920x1080)")
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per size")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not measured")
    parser.add_argument("--no-receiver", action="store_true",
                        help="no NDI receiver (NDI then skips compression)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name (Linux /proc; empty elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    task_dir = Path(f"/proc/{os.getpid()}/task")
    if not task_dir.exists():
        return out
    py_names = {t.native_id: t.name for t in threading.enumerate()}
    for task in task_dir.iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        name = py_names.get(int(task.name), "ndi/native")
        name = re.sub(r"^livevace-sink-.*", "sink", name.replace("livevace-", ""))
        if name == "MainThread":
            name = "main"
        out[name] = out.get(name, 0.0) + cpu
    return out


def _receiver(name: str, seconds: float) -> None:
    """Child process: receive `name`, print capture->receive latencies (ms) as JSON."""
    from livevace.io.ndi import Discovery, ndilib

    ndi = ndilib()
    found = Discovery.shared().resolve(name, wait=10)
    if found is None:
        print(json.dumps({"error": f"no NDI source {name}"}))
        return
    src = ndi.Source()
    src.ndi_name, src.url_address = found.name, found.url
    settings = ndi.RecvCreateV3()
    settings.source_to_connect_to = src
    settings.color_format = ndi.RECV_COLOR_FORMAT_FASTEST
    recv = ndi.recv_create_v3(settings)
    lat, frames = [], 0
    end = time.monotonic() + seconds
    stamp = re.compile(r't_capture="([0-9.]+)"')
    while time.monotonic() < end:
        kind, video, _, _ = ndi.recv_capture_v2(recv, 200)
        if kind == ndi.FRAME_TYPE_VIDEO:
            t = time.monotonic()
            m = stamp.search(video.metadata or "")
            if m:
                lat.append((t - float(m.group(1))) * 1e3)
            frames += 1
            ndi.recv_free_video_v2(recv, video)
    ndi.recv_destroy(recv)
    print(json.dumps({"latency_ms": lat, "frames": frames}))


def measure(width: int, height: int, fps: float, seconds: float, warmup: float,
            receiver: bool) -> dict:
    from livevace.config import RunConfig
    from livevace.io.ndi_out import NdiSink
    from livevace.io.pattern import PatternSource
    from livevace.loop import Node
    from livevace.params import ParamStore
    from livevace.pipelines.passthrough import Passthrough
    from livevace.stats import Stats

    name = f"livevace-bench-{uuid.uuid4().hex[:6]}"
    cfg = RunConfig(width=width, height=height, fps=fps, sinks=(), preview="off")
    stats = Stats(window=seconds)
    node = Node(cfg, ParamStore(), Passthrough(), PatternSource(width, height, fps),
                [NdiSink(name)], stats)
    node.start()
    child = None
    if receiver:
        child = subprocess.Popen([sys.executable, "-m", "livevace.bench.node", "--receive", name,
                                  "--seconds", str(warmup + seconds)],
                                 stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(warmup)
        skip = len(stats.latencies())
        cpu0, wall0, threads0 = time.process_time(), time.perf_counter(), _thread_cpu()
        out0 = stats.snapshot()["frames_out"]
        time.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        threads1 = _thread_cpu()
        snap = stats.snapshot()
        added = stats.latencies()[skip:]
    finally:
        node.close()
    row = {
        "size": f"{width}x{height}", "fps": fps,
        "fps_out": (snap["frames_out"] - out0) / wall,
        "added_p50_ms": Timing.of(added).p50, "added_p99_ms": Timing.of(added).p99,
        "cores": cpu / wall,
        "held": snap["held"], "dropped": snap["dropped"],
        "ndi_write_ms": snap.get("stage_sink_ndi_ms", 0.0),
        "threads": {k: round((v - threads0.get(k, 0.0)) / wall, 3) for k, v in threads1.items()},
    }
    if child is not None:
        result = json.loads(child.communicate(timeout=60)[0].strip().splitlines()[-1])
        lat = result.get("latency_ms", [])[int(warmup * fps):]
        if lat:
            row["ndi_p50_ms"], row["ndi_p99_ms"] = Timing.of(lat).p50, Timing.of(lat).p99
    return row


def run(args: argparse.Namespace) -> int:
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        rows.append(measure(w, h, args.fps, args.seconds, args.warmup, not args.no_receiver))
        print(f"{size}: {json.dumps(rows[-1])}", flush=True)
    cols = ["size", "fps", "fps_out", "added_p50_ms", "added_p99_ms", "ndi_p50_ms", "ndi_p99_ms",
            "cores", "ndi_write_ms", "held", "dropped"]
    print(table(rows, cols))
    for row in rows:
        ok_lat = row["added_p99_ms"] < TARGET_P99_MS
        line = f"{row['size']}: added p99 {row['added_p99_ms']:.2f} ms ({'meets' if ok_lat else 'misses'} < {TARGET_P99_MS} ms)"
        if row["size"] == "1280x720":
            ok_cpu = row["cores"] < TARGET_CORES_720P
            line += f", {row['cores']:.2f} cores ({'meets' if ok_cpu else 'misses'} < 1 core)"
        print(line)
    path = write_result("node", {"args": vars(args) | {"out": str(args.out)}, "rows": rows},
                        args.out)
    print(f"wrote {path}  ({environment()['commit']})")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--receive", required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    a = p.parse_args()
    _receiver(a.receive, a.seconds)
