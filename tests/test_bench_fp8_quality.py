"""`livevace bench fp8_quality` (tiny, CPU): the FP8 stream compared with the unquantised one
chunk by chunk, with errors that show real quantisation and nothing worse."""

from __future__ import annotations

import json
import math

from wan_support import one_thread  # noqa: F401

from livevace.cli import main


def test_fp8_quality_reports_fp8_against_the_unquantised_stream(tmp_path, capsys):
    code = main(["bench", "fp8_quality", "--weights", "tiny-random", "--device", "cpu",
                 "--resolution", "64x64", "--chunks", "3", "--mode", "vace", "--out",
                 str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "eager+fp8" in out and "3 chunks at 64x64 (vace" in out
    (result,) = tmp_path.glob("fp8-quality-*.json")
    (row,) = json.loads(result.read_text())["rows"]
    assert row["acceleration"] == "eager+fp8"
    for kind in ("latents", "frames"):
        errors = row["per_chunk"][kind]
        assert len(errors) == 3 and all(1e-4 < e < 0.1 for e in errors), errors
        assert row[kind]["worst"] == max(errors) and row[kind]["last"] == errors[-1]
    assert all(20 < db < math.inf for db in row["per_chunk"]["psnr_db"])
