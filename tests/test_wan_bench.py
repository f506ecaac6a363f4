"""`livevace bench dit` runs (tiny, CPU) and its FLOP model matches DESIGN §4 at real shapes."""

from __future__ import annotations

import argparse
import json

import pytest
from wan_support import one_thread  # noqa: F401

from livevace.bench.dit import forward_flops, parse_variant
from livevace.cli import main
from livevace.models.wan.compiled import FP8_BF16
from livevace.models.wan.config import WAN21_VACE_1_3B
from livevace.models.wan.kv_cache import CacheLayout


def test_bench_dit_tiny_on_cpu_writes_a_result(tmp_path, capsys):
    code = main(["bench", "dit", "--tiny", "--repeat", "2", "--warmup", "1", "--device", "cpu",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "mfu_%" in out and "64x64" in out
    (result,) = tmp_path.glob("dit-*.json")
    record = json.loads(result.read_text())
    assert [(r["resolution"], r["vace"]) for r in record["rows"]] == [("64x64", "no"),
                                                                       ("64x64", "yes")]
    for row in record["rows"]:
        assert row["p50_ms"] > 0 and row["floor_ms"] > 0 and 0 < row["mfu_%"]
    assert record["rows"][1]["GFLOP"] > record["rows"][0]["GFLOP"]
    assert record["matmul_tflops"] > 0 and "commit" in record["environment"]


def test_bad_window_is_a_one_line_error(tmp_path, capsys):
    code = main(["bench", "dit", "--tiny", "--chunk", "10", "--out", str(tmp_path)])
    assert code == 2 and "does not fit" in capsys.readouterr().err


@pytest.mark.parametrize("width,height,tokens", [(576, 320, 720), (832, 480, 1560)])
def test_flop_model_matches_the_design_cost_model(width, height, tokens):
    layout = CacheLayout(height // 8, width // 8)  # W = 12, sink 3, chunk 3
    plain = forward_flops(WAN21_VACE_1_3B, layout, vace=False)
    with_vace = forward_flops(WAN21_VACE_1_3B, layout, vace=True)
    n_q = 3 * tokens
    assert layout.frame_tokens == tokens
    assert plain.linear / n_q == pytest.approx(2.5e9, rel=0.01)   # ≈ 2.5 GFLOP/token, 30 blocks
    assert plain.self_attention == 30 * 4 * n_q * 12 * tokens * 1536
    vace_linear = with_vace.vace - 15 * (4 * n_q * n_q * 1536 + 4 * n_q * 512 * 1536)
    assert vace_linear / plain.linear == pytest.approx(0.53, abs=0.01)  # VACE ≈ +53 % linear
    assert plain.vace == 0


def test_variant_words():
    fast = parse_variant("compile+graph+fa4")
    assert fast.compile == "default" and fast.cuda_graph and fast.flash4 and not fast.fp8
    assert fast.label == "compile+graph+fa4"
    assert not parse_variant("eager").flash4



def test_fp8_variant_words_pick_the_bf16_layers():
    every = parse_variant("compile+graph+fp8all")
    assert every.fp8 and every.fp8_bf16 == ()
    assert every.label == "compile+graph+fp8all"
    default = parse_variant("compile+fp8")
    assert default.fp8 and default.fp8_bf16 == FP8_BF16
    assert default.label == "compile+fp8"
    with pytest.raises(argparse.ArgumentTypeError):
        parse_variant("fp8+fp8all")
