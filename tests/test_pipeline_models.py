"""Making the vace pipeline: refused in one line when weights or a CUDA GPU are missing or the
GPU is too small (before a byte of weights is read), `auto` falling back to controlmap and
saying why, and `livevace run --weights tiny-random` generating on a CPU end to end."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from livevace.config import RunConfig
from livevace.errors import ModelError, UserError
from livevace.models.wan.recipe import LONGLIVE
from livevace.store import catalog, vram
from livevace.params import ParamStore
from livevace.pipelines import create
from livevace.pipelines.controlmap import ControlMap
from livevace.pipelines.vace.pipeline import StreamingVace
from pipeline_support import make_clip

CONFIG = RunConfig(width=832, height=480, sinks=(), preview="off")
QUIET = ["--osc-port", "-1", "--oscquery-port", "-1", "--no-zeroconf", "--no-preview"]


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ours = tmp_path / "models"
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(ours))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "scope"))
    return ours


def needed_keys() -> list[str]:
    """The files of the default model, LongLive."""
    return catalog.model_keys(LONGLIVE, on_disk=False)


def place_empty_files(root: Path) -> None:
    """Every file the pipeline needs, present but empty (so reading one would fail loudly)."""
    for key in needed_keys():
        entry = catalog.get(key)
        for name in (*entry.weights.files, *entry.weights.any_of):
            path = root / entry.weights.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()


def fake_gpu(monkeypatch: pytest.MonkeyPatch, free_gb: float) -> None:
    monkeypatch.setattr(vram, "gpu_memory",
                        lambda index=None: (free_gb * vram.GB, 80 * vram.GB, "GPU 0 (test)"))


def test_missing_weights_name_the_files_the_place_and_the_command(models_dir, monkeypatch) -> None:
    fake_gpu(monkeypatch, 78)
    with pytest.raises(ModelError) as err:
        create("vace", CONFIG, ParamStore())
    message = str(err.value)
    assert "\n" not in message
    assert "missing model files" in message and "models/longlive_base.pt" in message
    assert f"looked in {models_dir} and {models_dir.parent / 'scope'}" in message
    assert "`livevace models pull longlive`" in message


def test_no_cuda_gpu_is_said_first_without_the_list_of_files(models_dir, monkeypatch) -> None:
    """Without a GPU the 16 GB download would not help: that is said first, not after every
    missing file."""
    monkeypatch.setattr(vram, "gpu_memory", lambda index=None: None)  # as on this CPU machine
    with pytest.raises(ModelError) as err:
        create("vace", CONFIG, ParamStore())
    size = catalog.format_size(sum(catalog.get(k).size_bytes for k in needed_keys()))
    assert str(err.value) == (
        "the vace pipeline needs a CUDA GPU and this machine has none, so downloading its "
        f"{size} of weights would not help; `--weights tiny-random` runs it on the CPU with "
        "random weights")
    place_empty_files(models_dir)
    with pytest.raises(ModelError) as err:
        create("vace", CONFIG, ParamStore())
    assert str(err.value) == ("the vace pipeline needs a CUDA GPU and this machine has none; "
                              "`--weights tiny-random` runs it on the CPU with random weights")


def test_too_little_vram_is_refused_before_loading_with_the_estimate(models_dir,
                                                                      monkeypatch) -> None:
    place_empty_files(models_dir)  # empty: had anything been read, the error would say so
    fake_gpu(monkeypatch, 6)
    store = ParamStore()
    with pytest.raises(ModelError) as err:
        create("vace", CONFIG, store)
    need = vram.estimate(vram.VramSettings(width=832, height=480)).total / vram.GB
    message = str(err.value)
    assert message.startswith(f"not enough GPU memory: the vace pipeline needs about {need:.1f} GB")
    assert "GPU 0 (test) has 6.0 GB free" in message and "--pipeline controlmap" in message


def test_auto_falls_back_to_controlmap_naming_the_pull_command(models_dir, monkeypatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    fake_gpu(monkeypatch, 78)  # with a GPU, the missing files are what stands in the way
    caplog.set_level(logging.INFO)
    store = ParamStore()
    store.set("control", "edges")
    pipeline = create("auto", CONFIG, store)
    try:
        assert isinstance(pipeline, ControlMap)
    finally:
        pipeline.close()
    line = next(r.getMessage() for r in caplog.records if "pipeline auto ->" in r.getMessage())
    assert line.startswith("pipeline auto -> controlmap (passed over vace: missing model files")
    assert "livevace models pull" in line


def test_auto_takes_vace_with_tiny_random_and_unknown_models_are_refused(models_dir) -> None:
    small = RunConfig(width=32, height=32, sinks=(), preview="off")
    pipeline = create("auto", small, ParamStore(), weights="tiny-random")
    try:
        assert isinstance(pipeline.pipeline, StreamingVace)
        assert pipeline.models.weights == "tiny-random" and pipeline.model == "longlive"
    finally:
        pipeline.close()
    with pytest.raises(UserError, match="unknown weights 'huge'"):
        create("vace", small, ParamStore(), weights="huge")


@pytest.mark.parametrize("argv, size, says", [
    ([], (128, 80), "vace on the CPU: generating at 128×80, scaled to the 832×480 output"),
    (["--width", "832", "--height", "480"], (832, 480),
     "vace on the CPU at 832×480, as given: 39× the pixels of 128×80"),
    (["--preset", "480x832"], (480, 832), "vace on the CPU at 480×832, as given"),
    (["--width", "96", "--height", "64"], (96, 64), None),  # small already: nothing to say
])
def test_on_a_cpu_the_generator_works_small_unless_the_size_was_given(
        argv: list[str], size: tuple[int, int], says: str | None, models_dir,
        caplog: pytest.LogCaptureFixture) -> None:
    from livevace.cli import build_parser
    from livevace.commands.node_options import from_args

    caplog.set_level(logging.INFO, logger="livevace.vace")
    args = build_parser(["run"]).parse_args(["run", *QUIET, *argv])
    config = from_args(args)
    pipeline = create("vace", config, ParamStore(), weights="tiny-random")
    try:
        assert (pipeline.gen_width, pipeline.gen_height) == size
        assert (pipeline.width, pipeline.height) == (config.width, config.height)  # the output
    finally:
        pipeline.close()
    lines = [r.getMessage() for r in caplog.records if "on the CPU" in r.getMessage()]
    if says is None:
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith(says), lines
        assert "--width/--height" in lines[0] if not argv else "as given" in lines[0]


def test_livevace_run_on_the_cpu_by_default_generates_small_and_logs_what_runs(
        tmp_path: Path, models_dir) -> None:
    """The first-hour command: no size, the default depth control without its weights."""
    out = tmp_path / "out.mp4"
    env = {**os.environ, "LIVEVACE_MODELS_DIR": str(models_dir),
           "DAYDREAM_SCOPE_MODELS_DIR": str(tmp_path / "scope")}
    proc = subprocess.run(
        [sys.executable, "-m", "livevace", "run", *QUIET, "--pipeline", "vace", "--weights",
         "tiny-random", "--sink", f"record:{out}", "--max-frames", "30"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    log = proc.stderr
    assert log.count("vace on the CPU: generating at 128×80, scaled to the 832×480 output") == 1
    assert "control depth unavailable" in log and "falling back to edges" in log
    assert "vace: VACE edges control" in log and "VACE depth control" not in log
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 30 and frames[0].shape == (480, 832, 3)


def test_livevace_run_generates_on_the_cpu_with_tiny_random(tmp_path: Path, models_dir) -> None:
    clip = make_clip(tmp_path / "in.mp4", 64, 48, seconds=2)
    out = tmp_path / "out.mp4"
    env_dirs = {"LIVEVACE_MODELS_DIR": str(models_dir),
                "DAYDREAM_SCOPE_MODELS_DIR": str(tmp_path / "scope")}
    proc = subprocess.run(
        [sys.executable, "-m", "livevace", "run", *QUIET, "--pipeline", "auto", "--weights",
         "tiny-random", "--source", f"video:{clip}", "--sink", f"record:{out}", "--width", "80",
         "--height", "64", "--fps", "30", "--max-frames", "45", "--set", "control=edges"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env_dirs})
    assert proc.returncode == 0, proc.stderr
    assert "pipeline auto -> vace" in proc.stderr and "vace: VACE edges control" in proc.stderr
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 45 and frames[0].shape == (64, 80, 3)
