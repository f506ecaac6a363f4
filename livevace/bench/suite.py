"""`livevace bench pipeline --suite`: the standard rows (text-to-video and VACE at the two
sizes, 2-step VACE, FP8, the Wan VAE decoder, glass-to-glass latency from a 60 and a 30 fps
source, memory) and the project's speed targets, each target beside what was measured, with
the spread over `--repeat` runs (a difference smaller than the spread is noise; `met` is
judged on the median). Rows named `extra` run only when `--rows` names them. A row that asks
for its own FP8 setting (`Settings.fp8`) gets it for its run alone, so one call compares bf16
and FP8.
"""

from __future__ import annotations

import argparse
import time
import traceback
from dataclasses import dataclass
from typing import Any

from livevace.bench.measure import measure, memory_path, trace_path
from livevace.bench.probe import probe_row
from livevace.bench.report import spread, table, time_cpu
from livevace.bench.rig import Rig, Settings, free, sync
from livevace.bench.rows import one_line, print_rows
from livevace.errors import UserError


def text_encode_ms(rig: Rig) -> float:
    """p50 of encoding a new prompt (512 tokens) with the rig's text encoder."""
    text = rig.models.text
    return time_cpu(lambda: (text.encode([rig.prompt()]), sync(rig.device)), 5, 1).p50


@dataclass(frozen=True)
class SuiteRow:
    key: str
    settings: Settings
    kind: str = "row"
    """row: `measure`; probe: glass to glass; memory: `measure` with UMT5 resident."""
    extra: bool = False
    """Not one of the standard rows: run only when `--rows` names it."""
    probe_fps: float | None = None
    """probe: the source's frame rate (None: `--probe-fps`)."""


@dataclass(frozen=True)
class Target:
    """One speed target (a line of the printed target table), read from a suite row."""

    what: str
    row: str
    metric: str
    unit: str
    goal: float | None = None
    """None: report only."""
    at_least: bool = True


def suite(large: tuple[int, int], small: tuple[int, int]
          ) -> tuple[list[SuiteRow], list[Target]]:
    """The standard rows and targets (at `large` = 832×480 and `small` = 576×320 unless
    overridden)."""
    lw, lh = large
    sw, sh = small
    big, little = f"{lw}×{lh}", f"{sw}×{sh}"
    rows = [SuiteRow("t2v-large", Settings(lw, lh, mode="t2v")),
            SuiteRow("t2v-large-fp8", Settings(lw, lh, mode="t2v", fp8=True)),
            SuiteRow("t2v-large-wan", Settings(lw, lh, mode="t2v", decoder="wan")),
            SuiteRow("vace-large", Settings(lw, lh)),
            SuiteRow("vace-large-fp8", Settings(lw, lh, fp8=True)),
            SuiteRow("vace-small", Settings(sw, sh)),
            SuiteRow("vace-small-2", Settings(sw, sh, steps=2)),
            SuiteRow("g2g-small", Settings(sw, sh, chunk=1), "probe", probe_fps=60.0),
            SuiteRow("g2g-small-30", Settings(sw, sh, chunk=1), "probe", probe_fps=30.0),
            SuiteRow("g2g-small-l1", Settings(sw, sh, chunk=1, lookahead=1), "probe"),
            SuiteRow("memory", Settings(sw, sh), "memory"),
            SuiteRow("vace-small-serial", Settings(sw, sh, overlap=False), extra=True),
            SuiteRow("vace-small-tae", Settings(sw, sh, context_encoder="tae"), extra=True),
            SuiteRow("vace-small-2-tae", Settings(sw, sh, steps=2, context_encoder="tae"),
                     extra=True),
            SuiteRow("vace-large-tae", Settings(lw, lh, context_encoder="tae"), extra=True),
            SuiteRow("vace-small-fade", Settings(sw, sh, fade=4), extra=True),
            SuiteRow("vace-small-r0", Settings(sw, sh, refinement=0.0), extra=True),
            SuiteRow("vace-small-2-r0", Settings(sw, sh, steps=2, refinement=0.0), extra=True),
            SuiteRow("vace-large-r0", Settings(lw, lh, refinement=0.0), extra=True),
            SuiteRow("g2g-small-2", Settings(sw, sh, chunk=1, steps=2), "probe",
                     probe_fps=60.0, extra=True)]
    targets = [
        Target(f"{big}, VACE depth control, 4 steps, TAE, FP8", "vace-large-fp8", "fps",
               "fps", 30),
        Target(f"{big}, text-to-video, 4 steps, TAE decode, FP8", "t2v-large-fp8", "fps",
               "fps", 48),
        Target(f"{big}, text-to-video, 4 steps, Wan VAE decode", "t2v-large-wan", "fps",
               "fps", 30),
        Target(f"{big}, text-to-video, 4 steps, TAE decode", "t2v-large", "fps", "fps"),
        Target(f"{big}, VACE depth control, 4 steps, TAE (bf16 ceiling accepted)",
               "vace-large", "fps", "fps"),
        Target(f"{little}, VACE depth control, 4 steps, TAE", "vace-small", "fps", "fps", 75),
        Target(f"{little}, VACE depth control, 2 steps, TAE", "vace-small-2", "fps", "fps", 110),
        Target(f"{little}, time to first frame (new pipeline, warm process)", "vace-small",
               "ttff_s", "s", 0.2, at_least=False),
        Target(f"{little}, 1-latent-frame chunks, glass to glass p50, 60 fps source",
               "g2g-small", "latency_p50_ms", "ms", 120, at_least=False),
        Target(f"{little}, 1-latent-frame chunks, glass to glass p50, 30 fps source",
               "g2g-small-30", "latency_p50_ms", "ms"),
        Target(f"{little}, 1-latent-frame chunks, glass to glass p50, a chunk annotated ahead",
               "g2g-small-l1", "latency_p50_ms", "ms"),
        Target(f"{little}, 1-latent-frame chunks, 2 steps, glass to glass p50, 60 fps source",
               "g2g-small-2", "latency_p50_ms", "ms"),
        Target(f"DiT model FLOP utilisation at {big} (text-to-video)", "t2v-large", "dit_mfu_%",
               "%", 50),
        Target(f"DiT model FLOP utilisation at {big}, VACE", "vace-large", "dit_mfu_%", "%"),
        Target(f"peak GPU memory, {little} VACE, text encoder resident", "memory", "peak_gb",
               "GB"),
        Target(f"peak GPU memory, {little} VACE, text encoder offloaded (fit in 24 GB)",
               "vace-small", "peak_gb", "GB", 24, at_least=False),
        Target(f"peak GPU memory, {big} VACE, text encoder offloaded, FP8 (16 GB with "
               "--weights-dtype fp8)", "vace-large-fp8", "peak_gb", "GB", 16, at_least=False),
        Target(f"{little}, VACE depth 4 steps, context encoded in line (no overlap)",
               "vace-small-serial", "fps", "fps"),
        Target(f"{little}, VACE depth 4 steps, TAE-encoded control (quality-affecting)",
               "vace-small-tae", "fps", "fps"),
        Target(f"{little}, VACE depth 2 steps, TAE-encoded control (quality-affecting)",
               "vace-small-2-tae", "fps", "fps"),
        Target(f"{big}, VACE depth 4 steps, TAE-encoded control (quality-affecting)",
               "vace-large-tae", "fps", "fps"),
        Target(f"{little}, VACE depth 4 steps, the prompt fading every chunk",
               "vace-small-fade", "fps", "fps"),
        Target(f"{little}, VACE depth 4 steps, cache writes without VACE (refinement 0)",
               "vace-small-r0", "fps", "fps"),
        Target(f"{little}, VACE depth 2 steps, cache writes without VACE (refinement 0)",
               "vace-small-2-r0", "fps", "fps"),
        Target(f"{big}, VACE depth 4 steps, cache writes without VACE (refinement 0)",
               "vace-large-r0", "fps", "fps"),
    ]
    return rows, targets


def verdict(target: Target, values: list[float], comparable: bool) -> dict[str, Any]:
    """The target's line: median, spread, goal and whether it is met (on the median)."""
    goal = ("report" if target.goal is None else
            f"{'≥' if target.at_least else '≤'} {target.goal:g} {target.unit}")
    line: dict[str, Any] = {"target": target.what, "row": target.row, "metric": target.metric,
                            "unit": target.unit, "goal": goal}
    if not values:
        return {**line, "measured": "failed (see the row's error)", "met": "no"}
    line.update(spread(values))
    line["measured"] = f"{line['median']:.3g} {target.unit}"
    line["spread"] = (f"{line['min']:.3g}–{line['max']:.3g} ({line['spread_%']:.1f} %, "
                      f"n={line['n']})")
    if target.goal is None:
        line["met"] = "-"
    else:
        ok = line["median"] >= target.goal if target.at_least else line["median"] <= target.goal
        line["met"] = ("yes" if ok else "no") if comparable else "n/a"
    return line


def run_suite_row(rig: Rig, row: SuiteRow, args: argparse.Namespace) -> dict[str, Any]:
    with rig.fp8_for(row.settings):
        return _run_suite_row(rig, row, args)


def _run_suite_row(rig: Rig, row: SuiteRow, args: argparse.Namespace) -> dict[str, Any]:
    if row.kind == "probe":
        if row.probe_fps is not None:
            args = argparse.Namespace(**{**vars(args), "probe_fps": row.probe_fps})
        return probe_row(rig, row.settings, args)
    if row.kind == "memory":
        with rig.with_text_encoder() as resident:
            result = measure(resident, row.settings, min(args.chunks, 4), args.warmup,
                             trace_path(args, row.settings), memory_path(args, row.settings))
            return {**result, "text_encode_ms": text_encode_ms(resident),
                    "text_encoder": resident.describe()["text_encoder"]}
    return measure(rig, row.settings, args.chunks, args.warmup, trace_path(args, row.settings),
                   memory_path(args, row.settings))


def suite_keys(args: argparse.Namespace) -> set[str]:
    """The suite rows `--rows` asks for (all by default); UserError for unknown ones."""
    if len(args.suite_resolutions) != 2:
        raise UserError("bench pipeline: --suite-resolutions takes LARGE,SMALL")
    rows = suite(*args.suite_resolutions)[0]
    keys = [r.key for r in rows]
    wanted = set(args.rows.split(",")) if args.rows else {r.key for r in rows if not r.extra}
    unknown = wanted - set(keys)
    if unknown:
        raise UserError(f"bench pipeline: unknown suite row(s) {', '.join(sorted(unknown))}; "
                        f"rows: {', '.join(keys)}")
    return wanted


def run_suite(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    rows, targets = suite(*args.suite_resolutions)
    wanted = suite_keys(args)
    results: dict[str, list[dict[str, Any]]] = {}
    failed: list[dict[str, Any]] = []
    start = time.perf_counter()
    for repeat in range(args.repeat):
        for row in rows:
            if row.key not in wanted:
                continue
            if args.deadline is not None and time.perf_counter() - start > args.deadline:
                print(f"[{row.key} #{repeat + 1}/{args.repeat}] not started: past the "
                      f"--deadline of {args.deadline:g} s")
                continue
            t0 = time.perf_counter()
            try:
                result = run_suite_row(rig, row, args)
            except Exception as exc:  # noqa: BLE001 - one failed row must not lose the others
                traceback.print_exc()
                failed.append({"suite_row": row.key, "repeat": repeat,
                               "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                print(f"[{row.key} #{repeat + 1}/{args.repeat}] failed: {failed[-1]['error']}")
                free(rig.device)
                continue
            result.update(suite_row=row.key, repeat=repeat)
            results.setdefault(row.key, []).append(result)
            print(f"[{row.key} #{repeat + 1}/{args.repeat}] {one_line(result)} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    comparable = not rig.tiny and rig.device.type == "cuda"
    lines = [verdict(t, [r[t.metric] for r in results.get(t.row, [])], comparable)
             for t in targets if t.row in wanted]
    all_rows = [r for key in results for r in results[key]] + failed
    print_rows(all_rows)
    print()
    print(table(lines, ["target", "measured", "spread", "goal", "met"]))
    for row in failed:
        print(f"FAILED {row['suite_row']} #{row['repeat'] + 1}: {row['error']}")
    if not comparable:
        print("(targets are for the real-size model on an H100: not comparable here)")
    return {"rows": all_rows, "targets": lines}
