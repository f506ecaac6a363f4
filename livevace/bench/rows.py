"""How rows are printed: one line each as they finish, and the tables at the end (pipeline
rows and glass-to-glass rows side by side)."""

from __future__ import annotations

from typing import Any

from livevace.bench.probe import PROBE_COLUMNS, PROBE_NOTE
from livevace.bench.report import table

ROW_COLUMNS = ["model", "row", "fps", "chunk_p50_ms", "chunk_p95_ms", "ttff_s", "text",
               "annotate_wait", "encode", "encode_wait", "dit", "decode", "other", "annotate",
               "copies", "dit_floor_ms", "dit_mfu_%", "peak_gb", "estimate_gb"]


def one_line(row: dict[str, Any]) -> str:
    if "latency_p50_ms" in row:
        return (f"{row['row']}: glass to glass p50 {row['latency_p50_ms']:.1f} ms, "
                f"p95 {row['latency_p95_ms']:.1f} ms, {row['fps_out']:.1f} fps out")
    estimate = "" if row["estimate_gb"] is None else f", estimated {row['estimate_gb']:.1f}"
    first = ", ".join(f"{k} {v:.0f}" for k, v in {**row["ttff_breakdown_ms"],
                                                   **row.get("ttff_annotation_ms", {})}.items()
                      if v >= 0.5)
    return (f"{row['model']}, {row['key']} ({row['plan']}): {row['fps']:.1f} fps, "
            f"chunk p50 {row['chunk_p50_ms']:.1f} ms, "
            f"ttff {row['ttff_s']:.3f} s ({first} ms), DiT {row['dit']:.1f} ms "
            f"(floor {row['dit_floor_ms']:.1f}, MFU {row['dit_mfu_%']:.0f} %), "
            f"peak {row['peak_gb']:.2f} GB{estimate}")


def print_rows(rows: list[dict[str, Any]]) -> None:
    measured = [{**r, "row": r["key"] + (f" #{r['repeat'] + 1}" if "repeat" in r else "")}
                for r in rows if "fps" in r]
    probes = [r for r in rows if "latency_p50_ms" in r]
    if measured:
        print(table(measured, ROW_COLUMNS))
        print("ms per chunk (means): text = cache stage (text K/V, transitions, references); "
              "annotate runs ahead on its own threads, annotate_wait is what generation "
              "waited; encode/decode include the host copies, which are also timed alone "
              "(copies); encode may run ahead on its own CUDA stream beside the DiT, "
              "encode_wait is what the DiT then waited for it; other = the rest of the "
              "call. ttff_s: a new pipeline on the warm "
              "model set, creation → first frame, input in hand. dit_floor_ms: FLOP floor at "
              "the measured matmul rate; dit_mfu_% = floor / dit. estimate_gb: the peak "
              "`store.vram` estimates for the row's model and settings (full-size models).")
    if probes:
        print(table(probes, PROBE_COLUMNS))
        print(PROBE_NOTE)
