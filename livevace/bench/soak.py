"""`livevace soak`: the whole node for N minutes under OSC traffic; memory, threads, fds and fps over time.

A show runs for hours while controllers talk to the node the whole time; a leak of one
thread, one file descriptor or a few kilobytes per message ends it. This starts the real
node the way `livevace run` does (the same node and control options; default: test
pattern → the auto pipeline → NDI "livevace-soak-<pid>" on loopback, OSC on a free 127.0.0.1
port, OSCQuery on a free port) and a traffic thread that sends real OSC over UDP at
`--osc-rate` packets a second: valid writes across the registry, out-of-range values, wrong
types, queries (plain and wildcard), dumps, scene recalls, bundles (some future-dated),
unknown addresses and malformed packets. The traffic socket is also a `--feedback` target,
so every change and the stats come back to it. It stops by itself after `--minutes` (or
`--osc-count` packets).

Every `--interval` seconds one line: RSS, threads, open fds, output fps, fresh fps (frames
that were not held repeats), latency p50, held, dropped. The JSON record holds every
sample and the summary. The soak fails (exit 1, one line per reason) when the node stopped
by itself, when after warm-up an interval passed with no frame out or no fresh frame, when
the traffic thread failed, or when threads or fds grow without bound: they rose by more
than THREAD_ALLOWANCE / FD_ALLOWANCE in each half of the measured samples (a leak keeps
growing; a one-off cost such as an annotator's threads on its first use falls into one
half). RSS growth is reported, not judged (allocators keep memory they freed).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import socket
import statistics
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage

from livevace.bench.report import environment, table, write_result
from livevace.config import RunConfig
from livevace.control import service as control_service
from livevace.control.router import encode
from livevace.control.scenes import scene_names
from livevace.control.values import osc_args, value_from_args
from livevace.errors import UserError
from livevace.loop import Node
from livevace.params import REGISTRY, Param, ParamError, ParamStore
from livevace.pipelines import create as create_pipeline
from livevace.pipelines.vace import choices as model_choices
from livevace.stats import Stats

THREAD_ALLOWANCE = 8
"""Threads a run may gain in one half of its measured samples without counting as a leak."""
FD_ALLOWANCE = 32
"""Open file descriptors a run may gain in one half of its measured samples."""
HELD_PARAMS = ("pause", "model")
"""Written only with their start value: pausing stops fresh frames by design, and so does a
model switch while the new model loads."""
PROMPTS = ("a neon-lit dancer in a dark club", "liquid chrome figure, studio light",
           "ink wash painting :: 0.7 | red ink splashes :: 0.3",
           "forest spirit, glowing moss :: 0.5 | night mist :: 0.5")
QUERY_PATTERNS = ("/livevace/*", "/livevace/vace_*", "/livevace/{seed,noise_scale,control}",
                  "/livevace/?oise_*", "/livevace/[dm]*")
WRITE_PATTERNS = ("/livevace/vace_*_scale", "/livevace/vace_[cgr]*_scale",
                  "/livevace/{vace_context_scale,noise_scale}")
WRONG_ARGS: tuple[list[Any], ...] = (
    [], [math.nan], [math.inf], ["\x01soak"], [b"\xff\xfe"], ["not a value"], [0.5],
    [1.0, 2.0, 3.0], ["x" * 5000])
"""Argument lists tried per parameter; a parameter is sent those its declaration rejects."""


def rejected(p: Param, args: list[Any]) -> bool:
    """Whether the node refuses `args` for `p` (the route's own steps: arguments → value →
    the registry's coercion)."""
    if p.readonly:
        return True
    try:
        p.coerce(value_from_args(p, args))
    except ParamError:
        return True
    return False


def valid_value(p: Param, rng: random.Random) -> Any:
    """A value inside `p`'s declaration."""
    k, lo, hi = p.kind, p.min, p.max
    if k == "bool":
        return rng.random() < 0.5
    if k == "enum":
        return rng.choice(p.choices)
    if k == "prompts":
        return rng.choice(PROMPTS)
    assert lo is not None and hi is not None, p.name
    n = rng.randint(1, min(p.max_len, 4))
    if k == "float":
        return rng.uniform(lo, hi)
    if k == "int":
        return rng.randint(int(lo), int(hi))
    if k == "floats":
        return [rng.uniform(lo, hi) for _ in range(n)]
    return sorted((rng.randint(int(lo), int(hi)) for _ in range(n)), reverse=True)


class Mix:
    """The packets of a show with a hostile guest: each move makes one packet."""

    def __init__(self, start: dict[str, Any], rng: random.Random) -> None:
        self.rng = rng
        self.start = start
        live = [p for p in REGISTRY if not p.readonly and p.kind != "trigger"]
        self.varied = [p for p in live if p.name not in HELD_PARAMS and
                       p.kind not in ("str", "strs")]
        self.steady = [p for p in live if p not in self.varied and p.name != "scene"]
        self.numeric = [p for p in self.varied if p.is_numeric]
        self.queried = [p for p in REGISTRY if p.kind != "trigger"]
        self.wrong = {p.name: [a for a in WRONG_ARGS if rejected(p, a)] for p in self.queried}
        self.scenes = scene_names()
        self.moves: dict[str, tuple[int, Callable[[], bytes]]] = {
            "write": (30, self.write), "clamp": (6, self.clamp), "wrong_type": (8, self.wrong_type),
            "query": (8, self.query), "wildcard_query": (4, self.wildcard_query),
            "wildcard_write": (4, self.wildcard_write), "dump": (2, self.dump),
            "scene": (3, self.scene), "scene_list": (1, self.scene_list),
            "unknown": (4, self.unknown), "malformed": (4, self.malformed),
            "bundle": (4, self.bundle), "future_bundle": (2, self.future_bundle),
            "trigger": (1, self.trigger)}

    def next(self) -> tuple[str, bytes]:
        kind = self.rng.choices(list(self.moves), [w for w, _ in self.moves.values()])[0]
        return kind, self.moves[kind][1]()

    def write(self) -> bytes:
        p = self.rng.choice(self.varied + self.steady)
        value = self.start[p.name] if p in self.steady else p.coerce(valid_value(p, self.rng))[0]
        return encode(p.address, osc_args(p, value))

    def clamp(self) -> bytes:
        p = self.rng.choice(self.numeric)
        assert p.min is not None and p.max is not None
        over = (p.max - p.min) * self.rng.uniform(0.5, 10)
        value = p.max + over if self.rng.random() < 0.5 else p.min - over
        return encode(p.address, [int(value) if p.kind in ("int", "ints") else value])

    def wrong_type(self) -> bytes:
        p = self.rng.choice([p for p in self.queried if self.wrong[p.name]])
        return encode(p.address, self.rng.choice(self.wrong[p.name]))

    def query(self) -> bytes:
        return encode(self.rng.choice(self.queried).address, [])

    def wildcard_query(self) -> bytes:
        return encode(self.rng.choice(QUERY_PATTERNS), [])

    def wildcard_write(self) -> bytes:
        return encode(self.rng.choice(WRITE_PATTERNS), [self.rng.uniform(0.0, 2.0)])

    def dump(self) -> bytes:
        return encode("/livevace/dump", [])

    def scene(self) -> bytes:
        refs: list[Any] = [*self.scenes, *range(len(self.scenes)), "no-such-scene"]
        return encode("/livevace/scene", [self.rng.choice(refs)])

    def scene_list(self) -> bytes:
        return encode("/livevace/scene/list", [])

    def unknown(self) -> bytes:
        address = self.rng.choice(["/livevace/nope", "/livevace/seed/extra",
                                   f"/soak/{self.rng.getrandbits(32):08x}"])
        return encode(address, [self.rng.random()])

    def malformed(self) -> bytes:
        good = self.write()
        return self.rng.choice([
            self.rng.randbytes(self.rng.randint(1, 64)),
            good[:self.rng.randint(1, len(good) - 1)],
            b"#bundle\0" + bytes(8) + (-5).to_bytes(4, "big", signed=True) + good,
            b"/livevace/seed\0\0,f\0\0"])

    def _bundle(self, when: float) -> bytes:
        bundle = OscBundleBuilder(when)
        for _ in range(self.rng.randint(2, 5)):
            bundle.add_content(OscMessage(self.write()))  # type: ignore[arg-type]
        return bundle.build().dgram

    def bundle(self) -> bytes:
        return self._bundle(IMMEDIATELY)

    def future_bundle(self) -> bytes:
        return self._bundle(time.time() + self.rng.uniform(0.2, 3.0))

    def trigger(self) -> bytes:
        return encode("/livevace/reset_cache", [])


class Traffic:
    """Sends the mix over UDP at `rate` packets a second until `count` are sent, `seconds`
    pass or `close()`; counts what comes back (replies and feedback) on the same socket."""

    def __init__(self, mix: Mix, rate: float, count: int, seconds: float) -> None:
        self.mix = mix
        self.rate, self.count, self.seconds = rate, count, seconds
        self.sent: Counter[str] = Counter()
        self.received = 0
        self.send_errors = 0
        self.error: str | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Where replies and feedback come back to."""
        return self.sock.getsockname()[1]

    def start(self, target: tuple[str, int]) -> None:
        self._thread = threading.Thread(target=self._run, args=(target,), name="soak-traffic",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()

    def _run(self, target: tuple[str, int]) -> None:
        try:
            t0 = time.monotonic()
            for i in range(self.count):
                due = t0 + i / self.rate
                if due - t0 >= self.seconds or self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                kind, packet = self.mix.next()
                try:
                    self.sock.sendto(packet, target)
                    self.sent[kind] += 1
                except OSError:
                    self.send_errors += 1
                self._drain()
        except Exception as exc:  # reported as a failure of the soak, not a silent stop
            self.error = f"{type(exc).__name__}: {exc}"

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recv(65536)
            except OSError:  # nothing waiting (or an ICMP error from a closed port)
                return
            self.received += 1

    def counts(self) -> dict[str, Any]:
        return {"sent": sum(self.sent.values()), "received": self.received,
                "send_errors": self.send_errors, "by_kind": dict(self.sent)}


def process_usage() -> dict[str, float]:
    """RSS (MB), threads and open file descriptors of this process, from Linux's /proc."""
    try:
        status = Path("/proc/self/status").read_text()
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        raise UserError("soak reads /proc/self (Linux only)") from None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
            "threads": int(fields["Threads"]), "fds": fds}


def unbounded(values: Sequence[float], allowance: float) -> bool:
    """Rose by more than `allowance` in each half of the samples: a leak grows all the time;
    a one-off cost (an annotator's threads on its first use) falls into one half."""
    if not values:
        return False
    mid = values[len(values) // 2]
    return mid - values[0] > allowance and values[-1] - mid > allowance


def summarise(samples: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    """The run in a few numbers, measured from the first sample after warm-up."""
    measured = [s for s in samples if s["t_s"] >= warmup] or samples
    first, mid, last = measured[0], measured[len(measured) // 2], measured[-1]
    series = {k: [s[k] for s in measured] for k in ("rss_mb", "threads", "fds", "fps_out",
                                                    "fresh_fps", "latency_p50_ms")}
    return {
        "measured_from_s": first["t_s"], "samples": len(measured),
        "rss_mb_first": first["rss_mb"], "rss_mb_last": last["rss_mb"],
        "rss_mb_max": max(series["rss_mb"]),
        "rss_growth_%": 100 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"],
        "rss_growth_second_half_%": 100 * (last["rss_mb"] - mid["rss_mb"]) / mid["rss_mb"],
        "threads_first": first["threads"], "threads_max": max(series["threads"]),
        "threads_growth": last["threads"] - first["threads"],
        "fds_first": first["fds"], "fds_max": max(series["fds"]),
        "fds_growth": last["fds"] - first["fds"],
        "fps_out_min": min(series["fps_out"]),
        "fps_out_median": statistics.median(series["fps_out"]),
        "fresh_fps_min": min(series["fresh_fps"]),
        "fresh_fps_median": statistics.median(series["fresh_fps"]),
        "latency_p50_ms_median": statistics.median(series["latency_p50_ms"]),
        "held": last["held"] - first["held"], "dropped": last["dropped"] - first["dropped"],
        "pipeline_errors": last["pipeline_errors"], "param_changes": last["param_changes"],
    }


def failures(samples: list[dict[str, Any]], warmup: float, stopped_at: float | None,
             seconds: float, traffic_error: str | None) -> list[str]:
    """Why the soak failed (empty: it passed); see the module doc for the rules."""
    out = []
    if stopped_at is not None:
        out.append(f"the node stopped by itself after {stopped_at:.1f} s of {seconds:g} s")
    if traffic_error:
        out.append(f"the traffic thread failed: {traffic_error}")
    measured = [s for s in samples if s["t_s"] >= warmup]
    for s in measured:
        if s["fps_out"] == 0 or s["fresh_fps"] == 0:
            what = "no frame went out" if s["fps_out"] == 0 else "no fresh frame came"
            out.append(f"{what} between {s['t_s'] - s['dt_s']:.0f} s and {s['t_s']:.0f} s "
                       f"(pipeline errors so far: {s['pipeline_errors']:g})")
            break
    for key, allowance in (("threads", THREAD_ALLOWANCE), ("fds", FD_ALLOWANCE)):
        values = [s[key] for s in measured]
        if unbounded(values, allowance):
            out.append(f"{key} grow without bound: {values[0]} → {values[len(values) // 2]} → "
                       f"{values[-1]} (more than {allowance} in each half of the run)")
    return out


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """The soak's own options and the control options (the node's come from the command)."""
    g = parser.add_argument_group("soak")
    g.add_argument("--minutes", type=float, default=10.0,
                   help="how long the node runs (default: %(default)s)")
    g.add_argument("--interval", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between samples (default: %(default)s)")
    g.add_argument("--warmup", type=float, default=None, metavar="SECONDS",
                   help="seconds before the measured samples start (default: a quarter of "
                   "the run, at most 60)")
    g.add_argument("--osc-rate", type=float, default=50.0, metavar="PER_S",
                   help="OSC packets sent per second (default: %(default)s)")
    g.add_argument("--osc-count", type=int, default=None, metavar="N",
                   help="stop the traffic after N packets (default: rate × run)")
    g.add_argument("--seed", type=int, default=0, help="seed of the traffic mix")
    model_choices.add_arguments(g)  # as in `livevace run` (--weights tiny-random: a CPU)
    g.add_argument("--out", type=Path, default=None, help="results folder")
    control_service.add_arguments(parser)
    # NDI refuses a second sender of the same name on a machine: one name per soak process
    parser.set_defaults(sink=[f"ndi:livevace-soak-{os.getpid()}"], preview="off", osc_port=0,
                        oscquery_port=0, no_zeroconf=True)


def _checked(args: argparse.Namespace) -> tuple[float, float]:
    """(run seconds, warm-up seconds), or a one-line UserError."""
    seconds = args.minutes * 60
    if not args.interval > 0 or not args.osc_rate > 0:
        raise UserError("soak: --interval and --osc-rate must be positive")
    if seconds < 2 * args.interval:
        raise UserError(f"soak: --minutes {args.minutes:g} is shorter than two samples "
                        f"of --interval {args.interval:g} s")
    if args.osc_port < 0:
        raise UserError("soak sends OSC: --osc-port -1 (no OSC server) cannot be soaked")
    process_usage()  # /proc is there (one line now, not after the first interval)
    warmup = min(60.0, seconds / 4) if args.warmup is None else args.warmup
    if not 0 <= warmup <= seconds - args.interval:
        raise UserError(f"soak: --warmup {warmup:g} leaves no sample in a "
                        f"{seconds:g} s run")
    return seconds, warmup


def sample(t: float, dt: float, prev: dict[str, float], snap: dict[str, float],
           store: ParamStore, traffic: Traffic) -> dict[str, Any]:
    out = snap["frames_out"] - prev["frames_out"]
    fresh = out - (snap["held"] - prev["held"])
    return {"t_s": round(t, 2), "dt_s": round(dt, 2), **process_usage(),
            "fps_out": out / dt, "fresh_fps": fresh / dt,
            "latency_p50_ms": snap["latency_p50_ms"], "held": snap["held"],
            "dropped": snap["dropped"], "pipeline_errors": snap.get("pipeline_errors", 0.0),
            "param_changes": store.version, "osc_sent": sum(traffic.sent.values()),
            "osc_received": traffic.received}


def progress(s: dict[str, Any], seconds: float) -> str:
    return (f"soak {s['t_s']:6.0f}/{seconds:g} s  rss {s['rss_mb']:7.1f} MB  "
            f"threads {s['threads']:3d}  fds {s['fds']:4d}  out {s['fps_out']:5.1f} fps  "
            f"fresh {s['fresh_fps']:5.1f} fps  p50 {s['latency_p50_ms']:6.1f} ms  "
            f"held {s['held']:g}  dropped {s['dropped']:g}  osc {s['osc_sent']} sent "
            f"{s['osc_received']} back  changes {s['param_changes']}")


def watch(node: Node, stats: Stats, store: ParamStore, traffic: Traffic, seconds: float,
          interval: float) -> tuple[list[dict[str, Any]], float | None]:
    """Sample every `interval` until `seconds` pass or the node stops by itself; returns
    (samples, when the node stopped or None)."""
    samples: list[dict[str, Any]] = []
    t0 = prev_t = time.monotonic()
    prev = stats.snapshot()
    while prev_t - t0 < seconds - 1e-6:
        due = min(t0 + seconds, prev_t + interval)
        if node.wait(max(0.0, due - time.monotonic())):
            return samples, time.monotonic() - t0
        t, snap = time.monotonic(), stats.snapshot()
        samples.append(sample(t - t0, t - prev_t, prev, snap, store, traffic))
        print(progress(samples[-1], seconds), flush=True)
        prev_t, prev = t, snap
    return samples, None


SUMMARY_ROWS = ("rss_mb", "threads", "fds", "fps_out", "fresh_fps", "latency_p50_ms")


def summary_table(samples: list[dict[str, Any]], warmup: float) -> str:
    measured = [s for s in samples if s["t_s"] >= warmup] or samples
    rows = []
    for key in SUMMARY_ROWS:
        values = [s[key] for s in measured]
        rows.append({"metric": key, "first": values[0], "mid": values[len(values) // 2],
                     "last": values[-1], "min": min(values), "max": max(values)})
    return table(rows, ["metric", "first", "mid", "last", "min", "max"])


def soak(args: argparse.Namespace, cfg: RunConfig) -> int:
    """Run the node of `cfg` under traffic as `args` say; the exit code (1: a failure rule)."""
    seconds, warmup = _checked(args)
    started = environment()  # the commit that runs (HEAD may move during a long soak)
    store = ParamStore()
    store.update(cfg.params)
    weights = model_choices.from_args(args, store)
    stats = Stats()
    mix = Mix(store.snapshot(), random.Random(args.seed))
    with ExitStack() as stack:
        traffic = Traffic(mix, args.osc_rate, args.osc_count or int(args.osc_rate * seconds),
                          seconds)
        stack.callback(traffic.close)
        args.feedback = [*args.feedback, f"127.0.0.1:{traffic.port}"]
        control = control_service.start(args, store, stats)  # nothing is sent to it yet
        stack.callback(control.close)
        pipeline = create_pipeline(cfg.pipeline, cfg, store, weights=weights)
        bind_stats = getattr(pipeline, "bind_stats", None)
        if bind_stats is not None:
            bind_stats(stats)
        node = Node.from_config(cfg, store, pipeline, stats, control, taps=[control.preview.put])
        stack.callback(node.close)
        node.start()
        assert control.osc_address is not None  # _checked: the OSC server is on
        traffic.start(control.osc_address)
        samples, stopped_at = watch(node, stats, store, traffic, seconds, args.interval)
        traffic.close()  # quiet before the node closes (closing twice is harmless)
    if not samples:
        raise UserError(f"soak: the node stopped after {stopped_at or 0:.1f} s, "
                        "before the first sample")
    problems = failures(samples, warmup, stopped_at, seconds, traffic.error)
    record = {"environment": started,  # replaces write_result's end-of-run environment
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                       if k != "func"},
              "pipeline": pipeline.name, "seconds": seconds, "warmup_s": warmup,
              "summary": summarise(samples, warmup), "traffic": traffic.counts(),
              "failures": problems, "samples": samples}
    print(summary_table(samples, warmup))
    s = record["summary"]
    print(f"RSS {s['rss_growth_%']:+.1f} % from {s['measured_from_s']:g} s; threads "
          f"{s['threads_growth']:+d}, fds {s['fds_growth']:+d}; osc {record['traffic']['sent']} "
          f"sent, {record['traffic']['received']} back, {s['param_changes']} changes")
    path = write_result("soak", record, args.out)
    print(f"wrote {path}  ({started['commit']})")
    for line in problems:
        print(f"soak FAILED: {line}")
    return 1 if problems else 0
