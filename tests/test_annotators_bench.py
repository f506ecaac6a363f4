"""`livevace bench annotators` runs end to end (tiny sizes; speed itself is not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_annotators_smoke(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "livevace", "bench", "annotators", "--tiny", "--size", "96x64",
           "--only", "gray,pose,pose+edges,depth", "--repeat", "2", "--warmup", "1", "--chunk", "2",
           "--depth-input-size", "56", "--device", "cpu", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(next(tmp_path.glob("annotators-*.json")).read_text())
    names = [row["annotator"] for row in record["rows"]]
    assert names[:4] == ["gray", "pose", "pose (chunk)", "pose+edges (in turn)"]
    assert any(n.startswith("depth_anything_v2_small (tiny) float32 @84x56") for n in names)
    assert all(row["ms_per_frame"] > 0 for row in record["rows"])
    assert "commit" in record["environment"] and "pose+edges (2 workers)" in done.stdout
