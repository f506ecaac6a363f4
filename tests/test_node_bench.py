"""`livevace bench node` runs end to end (tiny size, short): the numbers in BENCHMARKS.md
come from this code path."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_node_runs_and_records(tmp_path):
    # --seconds: the receiver process must start and find the sender within it (a second
    # on an idle machine; a busy one starts processes slowly)
    proc = subprocess.run([sys.executable, "-m", "livevace", "bench", "node", "--sizes", "192x112",
                           "--fps", "30", "--seconds", "5", "--warmup", "0.5", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (result,) = tmp_path.glob("node-*.json")
    record = json.loads(result.read_text())
    (row,) = record["rows"]
    assert record["environment"]["commit"]
    assert row["size"] == "192x112" and row["fps_out"] > 0  # frames went out (how fast is the machine's)
    assert 0 <= row["added_p50_ms"] <= row["added_p99_ms"]
    # The receiver process saw the stream and read the capture stamps from NDI metadata.
    assert 0 < row["ndi_p50_ms"] <= row["ndi_p99_ms"]
    assert "added p99" in proc.stdout
