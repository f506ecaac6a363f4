"""`livevace bench node` runs end to end (tiny size, short): the numbers in BENCHMARKS.md
come from this code path."""

from __future__ import annotations

import json

from livevace.cli import main


def test_bench_node_runs_and_records(tmp_path, capsys):
    code = main(["bench", "node", "--sizes", "192x112", "--fps", "30", "--seconds", "1.5",
                 "--warmup", "0.5", "--out", str(tmp_path)])
    assert code == 0
    (result,) = tmp_path.glob("node-*.json")
    record = json.loads(result.read_text())
    (row,) = record["rows"]
    assert record["environment"]["commit"]
    assert row["size"] == "192x112" and row["fps_out"] > 10
    assert 0 <= row["added_p50_ms"] <= row["added_p99_ms"]
    # The receiver process saw the stream and read the capture stamps from NDI metadata.
    assert 0 < row["ndi_p50_ms"] <= row["ndi_p99_ms"]
    assert "added p99" in capsys.readouterr().out
