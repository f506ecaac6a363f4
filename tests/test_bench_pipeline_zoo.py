"""`livevace bench pipeline --model NAME`: every model of the zoo runs its own recipe (its
steps and chunk by default) through the real pipeline and its rows name it; `--weights-dtype
fp8` stores the DiT's blocks in FP8; each row sets the memory estimate of its model beside
the measured peak (on a GPU, the estimate of the full-size models is close to their peak)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from pipeline_support import one_thread  # noqa: F401

from livevace.bench.measure import measure
from livevace.bench.pipeline import add_arguments
from livevace.bench.rig import Assets, build_rig, settings_from, steps_for
from livevace.cli import main
from livevace.models.wan import zoo
from livevace.models.wan.fp8_weights import block_linears, stored_fp8
from livevace.pipelines.vace.choices import MODEL_NAMES
from livevace.store import vram

SIZE = 32


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--weights", "tiny-random", "--device", "cpu", *argv])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_runs_its_own_recipe_and_its_rows_name_it(name, tmp_path):
    recipe = zoo.recipe(name)
    args = parse("--model", name, "--resolution", f"{SIZE}x{SIZE}")
    s = settings_from(args)
    assert (s.steps, s.chunk) == (len(recipe.steps), recipe.chunk)
    rig = build_rig(args, Assets.make(tmp_path))
    try:
        assert rig.models.recipe is recipe
        row = measure(rig, s, chunks=1, warmup=1)
    finally:
        rig.models.close()
    assert row["model"] == name and row["weights_dtype"] == "bf16" and row["fps"] > 0
    assert row["settings"]["steps"] == len(recipe.steps)
    assert row["estimate_gb"] is None  # toy sizes: the estimate is for the real model
    assert rig.describe()["recipe"] == name


def test_a_model_takes_its_own_steps_or_evenly_spaced_ones():
    sdv2 = zoo.recipe("streamdiffusionv2")
    assert steps_for(sdv2, len(sdv2.steps)) == sdv2.steps
    assert steps_for(sdv2, 4) == (1000, 750, 500, 250)
    assert steps_for(zoo.recipe("longlive"), 2) == (1000, 500)
    assert settings_from(parse("--model", "streamdiffusionv2", "--steps", "3")).steps == 3


def test_fp8_weights_are_stored_and_reach_the_json_and_the_estimate(tmp_path, capsys):
    code = main(["bench", "pipeline", "--model", "krea-realtime", "--weights", "tiny-random",
                 "--weights-dtype", "fp8", "--device", "cpu", "--resolution", f"{SIZE}x{SIZE}",
                 "--chunks", "1", "--warmup", "1", "--out", str(tmp_path)])
    assert code == 0
    assert "krea-realtime, " in capsys.readouterr().out  # the printed row names its model
    (result,) = tmp_path.glob("pipeline-*.json")
    record = json.loads(result.read_text())
    assert record["recipe"] == "krea-realtime" and record["weights_dtype"] == "fp8"
    (row,) = record["rows"]
    assert row["model"] == "krea-realtime" and row["weights_dtype"] == "fp8"

    args = parse("--model", "krea-realtime", "--weights-dtype", "fp8", "--resolution",
                 "832x480")
    rig = build_rig(args, Assets.make(tmp_path))
    try:
        assert all(stored_fp8(layer.weight) is not None for layer in block_linears(rig.models.dit))
        s = settings_from(args)
        settings = rig.vram_settings(s)
        assert rig.estimate_gb(s) == pytest.approx(vram.estimate(settings).total / 1e9)
        # a text-to-video row holds what the node loads and warms whatever the mode (the
        # VACE module, the Wan VAE and its encoder's and decoder's working set): its estimate
        # is the one the node checks, not a smaller one for the row's mode and decoder
        t2v = settings_from(parse("--model", "krea-realtime", "--weights-dtype", "fp8",
                                  "--resolution", "832x480", "--mode", "t2v",
                                  "--decoder", "wan"))
        assert rig.vram_settings(t2v) == settings
    finally:
        rig.models.close()
    assert (settings.model, settings.weights_dtype, settings.width, settings.height,
            settings.chunk_frames, settings.steps) == ("krea-realtime", "fp8", 832, 480,
                                                       s.chunk, s.steps)
    assert settings.text_encoder == "gpu"  # the tiny set's UMT5 is resident
    assert settings.vace


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,dtype", [("longlive", "bf16"), ("krea-realtime", "fp8")])
def test_on_a_gpu_the_estimate_is_within_a_fifth_of_the_measured_peak(name, dtype, tmp_path):
    code = main(["bench", "pipeline", "--model", name, "--weights", "random", "--weights-dtype",
                 dtype, "--resolution", "576x320", "--chunks", "3", "--out", str(tmp_path)])
    assert code == 0
    (result,) = tmp_path.glob("pipeline-*.json")
    (row,) = json.loads(result.read_text())["rows"]
    assert row["model"] == name and row["weights_dtype"] == dtype
    assert 0.8 < row["peak_gb"] / row["estimate_gb"] < 1.2
    # the row's peak is its larger phase's: the prepare and warm-up, or the timed calls
    assert row["peak_gb"] == max(row["peak_warmup_gb"], row["peak_steady_gb"])
    assert row["peak_steady_gb"] > 4.0  # the weights stay resident
