"""`livevace bench fp8_quality` (tiny, CPU): both FP8 paths compared with the unquantised
stream chunk by chunk, with errors that show real quantisation and nothing worse."""

from __future__ import annotations

import json
import math

from wan_support import one_thread  # noqa: F401

from livevace.cli import main


def test_fp8_quality_reports_both_paths_against_the_unquantised_stream(tmp_path, capsys):
    code = main(["bench", "fp8_quality", "--weights", "tiny-random", "--device", "cpu",
                 "--resolution", "64x64", "--chunks", "3", "--mode", "vace", "--out",
                 str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "eager+fp8ao" in out and "3 chunks at 64x64 (vace" in out
    (result,) = tmp_path.glob("fp8-quality-*.json")
    rows = json.loads(result.read_text())["rows"]
    assert [r["fp8"] for r in rows] == ["rowwise", "torchao"]
    for row in rows:
        for kind in ("latents", "frames"):
            errors = row["per_chunk"][kind]
            assert len(errors) == 3 and all(1e-4 < e < 0.1 for e in errors), errors
            assert row[kind]["worst"] == max(errors) and row[kind]["last"] == errors[-1]
        assert all(20 < db < math.inf for db in row["per_chunk"]["psnr_db"])
    rowwise, torchao = (r["per_chunk"]["latents"] for r in rows)  # the same maths
    assert all(abs(a - b) <= 1e-3 * b for a, b in zip(rowwise, torchao))


def test_an_unknown_fp8_path_is_one_line(tmp_path, capsys):
    code = main(["bench", "fp8_quality", "--weights", "tiny-random", "--device", "cpu",
                 "--kernels", "rowwise,int4", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--kernels takes rowwise, torchao" in err and len(err.splitlines()) == 1
