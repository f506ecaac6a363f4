"""Making the vace pipeline: refused in one line when weights or a CUDA GPU are missing or the
GPU is too small (before a byte of weights is read), `auto` falling back to controlmap and
saying why, and `livevace run --model tiny-random` generating on a CPU end to end."""

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
from livevace.store import catalog, vram
from livevace.params import ParamStore
from livevace.pipelines import create
from livevace.pipelines.controlmap import ControlMap
from livevace.pipelines.vace.models import ROLES
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
    return [k for role in catalog.ROLES if role.name in ROLES for k in role.options[0]]


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
    assert "livevace models pull " + " ".join(needed_keys()) in message


def test_no_cuda_gpu_is_said_with_the_missing_files(models_dir, monkeypatch) -> None:
    monkeypatch.setattr(vram, "gpu_memory", lambda index=None: None)  # as on this CPU machine
    with pytest.raises(ModelError, match="missing model files.*needs a CUDA GPU.*tiny-random"):
        create("vace", CONFIG, ParamStore())
    place_empty_files(models_dir)
    with pytest.raises(ModelError) as err:
        create("vace", CONFIG, ParamStore())
    assert str(err.value).startswith("the vace pipeline needs a CUDA GPU")


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


def test_auto_falls_back_to_controlmap_naming_the_pull_command(models_dir,
                                                               caplog: pytest.LogCaptureFixture) -> None:
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
    pipeline = create("auto", small, ParamStore(), model="tiny-random")
    try:
        assert isinstance(pipeline, StreamingVace) and pipeline.models.name == "tiny-random"
    finally:
        pipeline.close()
    with pytest.raises(UserError, match="unknown model 'huge'"):
        create("vace", small, ParamStore(), model="huge")


def test_livevace_run_generates_on_the_cpu_with_tiny_random(tmp_path: Path, models_dir) -> None:
    clip = make_clip(tmp_path / "in.mp4", 64, 48, seconds=2)
    out = tmp_path / "out.mp4"
    env_dirs = {"LIVEVACE_MODELS_DIR": str(models_dir),
                "DAYDREAM_SCOPE_MODELS_DIR": str(tmp_path / "scope")}
    proc = subprocess.run(
        [sys.executable, "-m", "livevace", "run", *QUIET, "--pipeline", "auto", "--model",
         "tiny-random", "--source", f"video:{clip}", "--sink", f"record:{out}", "--width", "80",
         "--height", "64", "--fps", "30", "--max-frames", "45", "--set", "control=edges"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env_dirs})
    assert proc.returncode == 0, proc.stderr
    assert "pipeline auto -> vace" in proc.stderr and "vace: VACE edges control" in proc.stderr
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 45 and frames[0].shape == (64, 80, 3)
