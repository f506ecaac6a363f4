"""`livevace bench pipeline` on the CPU with the tiny random models: every option path runs the
real pipeline, and the JSON it writes is consistent (fps = frames / time, the breakdown fits in
the chunk time, the FLOP floor is the cost model's for the forwards that ran)."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import gzip
import json
from pathlib import Path

import pytest
import torch
from pipeline_support import one_thread  # noqa: F401

import livevace.models.wan.compiled as compiled
from livevace.bench.dit import forward_flops
from livevace.bench.measure import PROFILE_CALLS, measure
from livevace.bench.pipeline import add_arguments
from livevace.bench.rig import MODES, Assets, Settings, build_rig, step_list
from livevace.bench.suite import SuiteRow, run_suite_row
from livevace.cli import main
from livevace.models.wan.blocks import EAGER
from livevace.models.wan.config import TINY_VACE
from livevace.models.wan.kv_cache import CacheLayout
from livevace.models.wan.sampler import FlowMatchSchedule
from livevace.models.wan.text import WanTextEncoder
from livevace.params import param
from livevace.pipelines.vace import random_models
from livevace.pipelines.vace.motion import start_timesteps
from livevace.pipelines.vace.random_models import RandomTextEmbedding
from livevace.pipelines.vace.tiny import TINY_TEXT

SIZE = 32
STAGES = ("text", "annotate_wait", "encode", "dit", "decode")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--weights", "tiny-random", "--device", "cpu", *argv])


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    built = build_rig(parse(), Assets.make(tmp_path_factory.mktemp("assets")))
    yield built
    built.models.close()


def run_cli(tmp_path: Path, *argv: str) -> dict:
    code = main(["bench", "pipeline", "--weights", "tiny-random", "--device", "cpu",
                 "--out", str(tmp_path), *argv])
    assert code == 0
    (result,) = tmp_path.glob("pipeline*.json")
    return json.loads(result.read_text())


def test_a_row_writes_consistent_numbers(tmp_path, capsys):
    record = run_cli(tmp_path, "--resolution", f"{SIZE}x{SIZE}", "--chunks", "3")
    assert "dit_mfu_%" in capsys.readouterr().out
    assert record["model"] == "longlive (tiny-random)" and record["depth"] == "tiny random depth model"
    assert record["matmul_tflops"] > 0 and "commit" in record["environment"]
    (row,) = record["rows"]
    assert row["plan"] == "VACE depth control"
    assert (row["chunks"], row["frames"], row["frames_per_chunk"]) == (3, 36, 12)
    assert row["fps"] == pytest.approx(row["frames"] / row["seconds"])
    assert row["seconds"] * 1e3 == pytest.approx(3 * row["chunk_ms"]["mean"])
    assert row["chunk_ms"]["min"] <= row["chunk_p50_ms"] <= row["chunk_p95_ms"]
    each = row["chunk_ms_each"]  # in order, so an outlier says which chunk it was
    assert len(each) == 3 and (min(each), max(each)) == (row["chunk_ms"]["min"],
                                                          row["chunk_ms"]["max"])
    stages = sum(row["breakdown_ms"][k] for k in STAGES)
    assert 0 < stages <= row["chunk_ms"]["mean"]
    assert stages + row["other"] == pytest.approx(row["chunk_ms"]["mean"])
    assert row["annotate"] > 0  # the depth model ran on the annotator thread
    # 4 denoising steps + the cache write, every one with the VACE context
    assert row["forwards_per_chunk"] == row["vace_forwards_per_chunk"] == 5
    per_forward = forward_flops(TINY_VACE, CacheLayout(SIZE // 8, SIZE // 8), vace=True).total
    assert row["dit_gflop_per_chunk"] == pytest.approx(5 * per_forward / 1e9)
    assert row["dit_floor_ms"] == pytest.approx(
        5 * per_forward / (record["matmul_tflops"] * 1e12) * 1e3)
    assert row["dit_mfu_%"] == pytest.approx(100 * row["dit_floor_ms"] / row["dit"])
    assert row["ttff_s"] > row["ttff_create_s"] > 0 and row["ttff_prepare_s"] == 0
    first = row["ttff_breakdown_ms"]  # the first call's parts add up to its time
    assert first["dit"] > 0 and first["encode"] > 0
    assert sum(first[k] for k in STAGES) + first["other"] == pytest.approx(
        (row["ttff_s"] - row["ttff_create_s"]) * 1e3)
    annotation = row["ttff_annotation_ms"]  # the first chunk's depth, and the wait for it
    assert annotation["annotate"] > 0 and 0 < annotation["annotate_ahead_wait"] <= first["other"]
    assert row["ttff_cold_s"] > 0
    copies = row["copies_ms"]
    assert copies["upload"] > 0 and copies["download"] > 0
    assert row["copies"] == pytest.approx(copies["upload"] + copies["download"])


def test_profile_records_steady_calls_of_the_pipeline(tmp_path, capsys):
    record = run_cli(tmp_path, "--resolution", f"{SIZE}x{SIZE}", "--chunks", "2", "--profile")
    (row,) = record["rows"]
    prof = row["profile_ms"]
    assert prof["calls"] == PROFILE_CALLS and prof["wall_ms"] > 0
    assert prof["streams_ms"] == {}  # a CPU: host operators only, read from the trace
    (trace,) = tmp_path.glob("trace-*.json.gz")
    assert row["profile_trace"] == str(trace)
    (first,) = tmp_path.glob("first-trace-*.json.gz")  # a new pipeline's calls to its first frame
    assert row["ttff_profile_trace"] == str(first) and row["ttff_profile_ms"]["calls"] == 1
    for path, calls in ((trace, PROFILE_CALLS), (first, 1)):
        names = [e.get("name", "") for e in json.loads(gzip.decompress(path.read_bytes()))
                 ["traceEvents"]]
        # the profiled calls ran the pipeline: the VAE encoder's 3D convolutions and the
        # DiT's linear layers, once per call at least
        assert sum(n == "aten::conv3d" for n in names) >= calls
        assert sum(n == "aten::linear" for n in names) >= calls
    out = capsys.readouterr().out
    assert f"{PROFILE_CALLS} steady calls profiled" in out
    assert "a new pipeline's calls to its first frame" in out


V2V_STEPS = len(start_timesteps(FlowMatchSchedule().warp(step_list(4)),
                                param("noise_scale").default))
"""Video-to-video starts below the first steps (Scope's 1000·s − 100)."""
EXPECTED = {("t2v", "image"): ("text-to-video", 4, False),
            ("v2v", "image"): ("video-to-video", V2V_STEPS, False),
            ("vace-control", "image"): ("VACE depth control", 4, True),
            ("vace-ref", "image"): ("1 reference image", 4, True),
            ("inpaint", "image"): ("VACE raw-video control + inpainting a mask image", 4, True),
            ("inpaint", "person"): ("VACE raw-video control + inpainting the person", 4, True)}


@pytest.mark.parametrize("mode,mask", EXPECTED)
def test_every_mode_runs_the_plan_it_names(rig, mode, mask):
    row = measure(rig, Settings(SIZE, SIZE, mode=mode, mask=mask), chunks=2, warmup=1)
    words, steps, vace = EXPECTED[(mode, mask)]
    assert words in row["plan"]
    assert row["frames"] == 24 and row["fps"] > 0
    assert row["forwards_per_chunk"] == steps + 1  # + the cache write
    assert row["vace_forwards_per_chunk"] == (steps + 1 if vace else 0)


def test_a_row_at_refinement_0_writes_its_cache_without_vace(rig):
    row = measure(rig, Settings(SIZE, SIZE, refinement=0.0), chunks=2, warmup=1)
    assert "refinement 0" in row["key"]
    assert row["forwards_per_chunk"] == 5 and row["vace_forwards_per_chunk"] == 4
    assert Settings(refinement=0.0).vace_modes == (True, False)  # both prepared
    assert Settings().vace_modes == (True,) and Settings(mode="t2v").vace_modes == (False,)


def test_every_mode_is_covered():
    assert {mode for mode, _ in EXPECTED} == set(MODES)


def test_steps_chunk_and_decoder_reach_the_pipeline(rig):
    decodes = {"wan": 0, "tae": 0}

    def count(name):
        return lambda *_: decodes.__setitem__(name, decodes[name] + 1)

    hooks = [rig.models.vae.post_quant_conv.register_forward_hook(count("wan")),
             rig.models.tae.decoder[-1].register_forward_hook(count("tae"))]
    try:
        row = measure(rig, Settings(SIZE, SIZE, steps=2, chunk=1, decoder="wan", lookahead=0),
                      chunks=3, warmup=2)
    finally:
        for hook in hooks:
            hook.remove()
    assert row["frames_per_chunk"] == 4  # one latent frame → 4 video frames
    assert row["forwards_per_chunk"] == 3  # 2 steps + the cache write
    assert decodes["wan"] > 0 and decodes["tae"] == 0
    assert step_list(2) == (1000, 500) and step_list(4) == (1000, 750, 500, 250)


def test_a_fading_prompt_rebuilds_the_text_every_timed_chunk(rig, monkeypatch):
    built = []
    set_text = rig.models.dit.set_text
    monkeypatch.setattr(rig.models.dit, "set_text",
                        lambda *a, **k: (built.append(1), set_text(*a, **k)))
    still = measure(rig, Settings(SIZE, SIZE), chunks=4, warmup=2)
    first = len(built)  # the prompt, once per pipeline (the row's, the ttff one's)
    fading = measure(rig, Settings(SIZE, SIZE, fade=2), chunks=4, warmup=2)
    assert first == 2 and len(built) - first == 2 + 4  # …and every timed chunk
    assert "prompt fades over 2 chunks" in fading["key"] and "fades" not in still["key"]


def test_compile_and_fp8_switch_the_dit(tmp_path, monkeypatch):
    original = compiled.compiled_phases
    monkeypatch.setattr(compiled, "compiled_phases",  # inductor's C++ build is minutes here
                        lambda mode: original(mode, backend="aot_eager"))
    fast = build_rig(parse("--compile", "--fp8"), Assets.make(tmp_path))
    try:
        dit = fast.models.dit
        assert dit.acceleration == compiled.Acceleration(compile="default", fp8=True)
        assert dit.phases is not EAGER
        assert any("weight_fp8" in name for name, _ in dit.named_buffers())
        row = measure(fast, Settings(SIZE, SIZE), chunks=2, warmup=1)
    finally:
        fast.models.close()
    assert row["acceleration"] == "compile+fp8" and row["fps"] > 0
    assert row["ttff_prepare_s"] > 0  # compiled before the first call, not counted in ttff


def test_suite_reports_every_target_with_its_spread(tmp_path, capsys):
    record = run_cli(tmp_path, "--suite", "--suite-resolutions", "48x32,32x32", "--chunks", "2",
                     "--repeat", "2", "--probe-seconds", "1.5", "--probe-settle", "0.5")
    out = capsys.readouterr().out
    assert "glass to glass p50" in out and "not comparable here" in out
    keys = ["t2v-large", "t2v-large-fp8", "t2v-large-wan", "vace-large", "vace-large-fp8",
            "vace-small", "vace-small-2", "g2g-small", "g2g-small-30", "g2g-small-l1", "memory"]
    assert sorted(r["suite_row"] for r in record["rows"]) == sorted(keys * 2)
    targets = {t["target"]: t for t in record["targets"]}
    assert len(targets) == 16
    for line in targets.values():
        assert line["n"] == 2 and line["min"] <= line["median"] <= line["max"]
        assert line["met"] == ("-" if line["goal"] == "report" else "n/a")
    assert targets["48×32, text-to-video, 4 steps, TAE decode, FP8"]["goal"] == "≥ 48 fps"
    assert targets["32×32, time to first frame (new pipeline, warm process)"]["goal"] == "≤ 0.2 s"
    rows = {(r["suite_row"], r["repeat"]): r for r in record["rows"]}
    assert rows[("t2v-large-fp8", 0)]["acceleration"] == "eager+fp8"  # that row alone
    assert rows[("t2v-large", 0)]["acceleration"] == "eager"
    assert rows[("t2v-large-wan", 0)]["settings"]["decoder"] == "wan"
    assert rows[("g2g-small", 0)]["source_fps"] == 60
    assert rows[("g2g-small", 0)]["capture_wait_ms"] == pytest.approx(3 * 1000 / 60)
    assert rows[("vace-small-2", 0)]["forwards_per_chunk"] == 3
    assert rows[("t2v-large", 0)]["vace_forwards_per_chunk"] == 0
    assert rows[("memory", 1)]["text_encode_ms"] > 0
    period_ms = 1000 / 30
    for k in range(2):
        ahead, direct = rows[("g2g-small-l1", k)], rows[("g2g-small-30", k)]  # default: 0
        # causality: a frame is out only after the rest of its chunk (and, annotated ahead,
        # the next chunk) has been captured; one period of slack for a late capture stamp
        assert ahead["latency_ms"]["min"] >= ahead["capture_wait_ms"] - period_ms
        # annotating ahead costs latency; compared net of the measured compute, which a
        # busy machine can stretch in one run and not the other
        assert (direct["latency_p50_ms"] - direct["pipeline_ms"]
                < ahead["latency_p50_ms"] - ahead["pipeline_ms"])
        assert ahead["fps_out"] > 0 and ahead["settings"]["chunk"] == 1
        assert ahead["annotated_early"] == 0  # annotated a chunk ahead: none as captured
        # its own 4 frames (3 periods after the first) and, annotated ahead, 4 more
        assert ahead["capture_wait_ms"] == pytest.approx(7 * period_ms)
        assert direct["capture_wait_ms"] == pytest.approx(3 * period_ms)
        for probe in (ahead, direct):
            assert probe["pipeline_ms"] > 0
            assert probe["rest_ms"] == pytest.approx(
                probe["latency_p50_ms"] - probe["capture_wait_ms"] - probe["pipeline_ms"])


def test_probe_command_writes_its_record(tmp_path, capsys):
    code = main(["bench", "probe", "--weights", "tiny-random", "--device", "cpu", "--resolution",
                 f"{SIZE}x{SIZE}", "--probe-seconds", "1", "--probe-settle", "0.5",
                 "--out", str(tmp_path)])
    assert code == 0 and "capture_wait_ms" in capsys.readouterr().out
    (result,) = tmp_path.glob("probe-*.json")
    record = json.loads(result.read_text())
    (row,) = record["rows"]
    assert row["settings"]["chunk"] == 1 and row["latency_ms"]["n"] > 0
    # nothing is out before its chunk is in: the chunk's last frame comes 3 periods after its
    # first (capture_wait_ms); one period of slack for a capture stamped late
    assert row["capture_wait_ms"] == pytest.approx(3 * 1000 / 30)
    assert row["latency_ms"]["min"] >= row["capture_wait_ms"] - 1000 / 30
    assert row["latency_p50_ms"] >= row["capture_wait_ms"]
    assert record["model"] == "longlive (tiny-random)" and record["depth"] == "tiny random depth model"


def test_memory_row_loads_umt5_beside_random_embeddings(rig, monkeypatch):
    """--weights random's text stand-in is swapped for a resident UMT5 (at toy size here) for the
    memory row, and put back."""
    tokenizer = rig.models.text.tokenizer
    stand_in = WanTextEncoder(RandomTextEmbedding(len(tokenizer), TINY_VACE.text_dim),
                              tokenizer, TINY_VACE.text_len)
    bare = copy.copy(rig)
    bare.models = dataclasses.replace(rig.models, text=stand_in, _embeddings=None)
    monkeypatch.setattr(random_models, "random_umt5", functools.partial(
        random_models.random_umt5, vocab_size=len(tokenizer), **TINY_TEXT))
    try:
        row = run_suite_row(bare, SuiteRow("memory", Settings(SIZE, SIZE), "memory"),
                            parse("--chunks", "2", "--warmup", "1"))
    finally:
        bare.models.close()
    assert row["text_encoder"].startswith("UMT5 resident") and row["text_encode_ms"] > 0
    assert row["frames"] == 24 and row["vace_forwards_per_chunk"] == 5
    assert bare.models.text is stand_in
    assert bare.describe()["text_encoder"].startswith("random embeddings")


@pytest.mark.parametrize("argv,words", [
    (["--suite", "--suite-resolutions", "64x64"], "LARGE,SMALL"),
    (["--suite", "--rows", "vace-small,nope"], "unknown suite row(s) nope"),
    (["--steps", "9"], "--steps 9"),
])
def test_bad_options_are_one_line(tmp_path, capsys, argv, words):
    code = main(["bench", "pipeline", "--weights", "tiny-random", "--device", "cpu",
                 "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_full_size_models_without_a_gpu_are_refused_in_one_line(tmp_path, capsys):
    code = main(["bench", "pipeline", "--weights", "random", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "CUDA" in err and "tiny-random" in err and len(err.splitlines()) == 1


def test_probe_with_the_output_stage_reports_it(tmp_path, capsys, monkeypatch):
    """--output-fps/--output-size run the node's output stage in the probe (random files):
    the sink gets the output rate's frames and the row says what the stage did;
    --with-baseline measures the same row without the stage first."""
    assert main(["bench", "output", "--random-files", str(tmp_path / "models")]) == 0
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "no-scope"))
    code = main(["bench", "probe", "--weights", "tiny-random", "--device", "cpu", "--resolution",
                 f"{SIZE}x{SIZE}", "--probe-seconds", "1.5", "--probe-settle", "0.5",
                 "--output-fps", "60", "--output-size", "64x64", "--with-baseline",
                 "--out", str(tmp_path)])
    assert code == 0
    baseline, row = json.loads(next(tmp_path.glob("probe-*.json")).read_text())["rows"]
    assert baseline["output_fps"] == 0 and baseline["output_size"] is None  # the stage off
    assert baseline["stages_ms"].get("stage_output_ms", 0) == 0
    assert baseline["output"]["output_prepare_s"] == 0
    assert row["output_fps"] == 60 and row["output_size"] == [64, 64]
    assert row["stages_ms"]["stage_output_ms"] > 0
    assert row["output"]["interpolation_latency_ms"] > 0 or row["output"]["output_degraded"] > 0
    assert row["output"]["output_prepare_s"] > 0  # the node prepared the stage before the show
