"""`livevace bench codecs` runs end to end on a CPU with --tiny and records its numbers."""

from __future__ import annotations

import json

from livevace.cli import main


def test_bench_codecs_tiny(tmp_path, capsys):
    rc = main(["bench", "codecs", "--tiny", "--device", "cpu", "--dtype", "fp32", "--repeat", "2", "--warmup", "0",
               "--latents-per-pass", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "wan (1/pass)" in out and "tae" in out and "UMT5 tiny prompt encode" in out
    record = json.loads(next(tmp_path.glob("codecs-*.json")).read_text())
    assert [r["codec"] for r in record["rows"]] == ["wan (1/pass)", "tae"]
    for row in record["rows"]:
        assert row["size"] == "32x32" and row["encode_ms"] > 0 and row["decode_ms"] > 0
        assert row["decode"]["n"] == 2
    assert record["text"]["encode_ms"] > 0 and record["environment"]["commit"]
