"""`livevace bench output` runs end to end on a CPU with --tiny: every row, both orders."""

from __future__ import annotations

import json

from livevace.cli import main


def test_bench_output_tiny_times_every_part_and_both_orders(tmp_path, capsys):
    rc = main(["bench", "output", "--tiny", "--device", "cpu", "--repeat", "1", "--warmup", "0",
               "--chunk", "4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "cheaper order by time:" in out and "by operations:" in out
    record = json.loads(next(tmp_path.glob("output-*.json")).read_text())
    rows = {r["what"]: r for r in record["rows"]}
    assert list(rows) == ["interpolate", "sr span 2x", "sr compact 4x", "lanczos",
                          "stage interpolate_first", "stage upscale_first"]
    assert all(r["ms"] > 0 and r["ms_each"] > 0 and r["gflop_each"] > 0 for r in rows.values())
    assert rows["stage upscale_first"]["upscaler"].startswith("span (")
