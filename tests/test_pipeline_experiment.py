"""`livevace experiment stratify` with the tiny random model on an ffmpeg-made clip: one video
per strategy (files of presets/stratification plus custom pairs), the grid, and metrics in
JSON and Markdown with sane values; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from livevace.cli import main
from livevace.commands.experiment import chunk_sizes, load_strategies, strategy_names
from livevace.experiment.report import LABEL_HEIGHT
from pipeline_support import make_clip

SIZE = 32


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("stratify")
    clip = make_clip(d / "dance.mp4", 96, 64, seconds=2)
    out = d / "out"
    preset = d / "look.toml"
    preset.write_text('[params]\nseed = 3\nprompt = "an ink-wash dancer"\n')
    code = main(["experiment", "stratify", "--source", f"video:{clip}", "--weights", "tiny-random",
                 "--strategies", "baseline,strong", "--custom", "0.5/0.5", "--chunks", "3",
                 "--width", str(SIZE), "--height", str(SIZE), "--control", "edges",
                 "--out", str(out), "--preset", str(preset)])
    assert code == 0
    return out


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_writes_a_video_per_strategy_and_the_grid(experiment: Path) -> None:
    names = ["baseline", "strong", "r0.5_g0.5"]
    for name in names:
        frames = frames_of(experiment / f"output_{name}.mp4")
        assert len(frames) == 9 + 12 + 12 and frames[0].shape == (SIZE, SIZE, 3)
    grid = frames_of(experiment / "grid.mp4")
    assert len(grid) == 33 and grid[0].shape == (2 * (SIZE + LABEL_HEIGHT), 2 * SIZE, 3)


def test_metrics_are_written_with_sane_values(experiment: Path) -> None:
    data = json.loads((experiment / "metrics.json").read_text())
    rows = data["strategies"]
    assert [r["name"] for r in rows] == ["baseline", "strong", "r0.5_g0.5"]
    assert [(r["refinement_scale"], r["generation_scale"]) for r in rows] == [
        (1.0, 1.0), (0.2, 1.0), (0.5, 0.5)]
    for row in rows:
        m = row["metrics"]
        assert m["frames"] == 33 and row["video"] == f"output_{row['name']}.mp4"
        assert 0 < m["warp_error"] < 1
        assert -1 <= m["control_adherence"] <= 1
        assert 0 <= m["drift_mean"] <= 1 and 0 <= m["drift_last"] <= 1
        assert m["fps"] > 0 and 0 < m["chunk_latency_p50_ms"] <= m["chunk_latency_p95_ms"]
    assert len({r["metrics"]["warp_error"] for r in rows}) == 3  # the strategies differ
    assert data["settings"]["seed"] == 3 and data["settings"]["chunks"] == 3
    assert data["settings"]["prompt"] == "an ink-wash dancer"
    table = (experiment / "metrics.md").read_text()
    assert "| strong | 0.2 | 1 |" in table and "warp_error" in table


def test_strategies_come_from_the_preset_files() -> None:
    assert strategy_names()[0] == "baseline"
    assert {"strong", "moderate", "inverse"} <= set(strategy_names())
    moderate = load_strategies(["moderate"], [])[0]
    assert (moderate.refinement, moderate.generation) == (0.5, 1.0)
    assert chunk_sizes(40, 8, 3) == [9, 12, 12] and chunk_sizes(8, 8, 3) == []
    assert chunk_sizes(9, 3, 1) == [1, 4, 4]


@pytest.mark.parametrize("args, message", [
    (["--strategies", "nope"], "no preset named 'stratification/nope'"),
    (["--custom", "0.5/x"], "--custom 0.5/x: vace_generation_scale: 'x' is not a number"),
    (["--custom", "0.5"], "--custom '0.5': expected REFINEMENT/GENERATION"),
])
def test_bad_strategies_are_one_line(args: list[str], message: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=1)
    code = main(["experiment", "stratify", "--source", f"video:{clip}", "--weights",
                 "tiny-random", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_clip_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["experiment", "stratify", "--source", f"video:{tmp_path / 'none.mp4'}",
                 "--weights", "tiny-random", "--out", str(tmp_path / "o")])
    assert code == 2 and "expected video:PATH of an existing clip" in capsys.readouterr().err


def test_a_control_that_cannot_run_is_said_once_and_labelled_truly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Depth without its weights: every strategy runs with edges, one warning says so, and
    the table says edges, not depth."""
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path / "models"))  # no depth weights
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "scope"))
    caplog.set_level("INFO")
    clip = make_clip(tmp_path / "c.mp4", 96, 64, seconds=1)
    out = tmp_path / "out"
    code = main(["experiment", "stratify", "--source", f"video:{clip}", "--weights", "tiny-random",
                 "--strategies", "baseline,strong", "--chunks", "2", "--width", str(SIZE),
                 "--height", str(SIZE), "--control", "depth", "--out", str(out)])
    assert code == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("control depth unavailable"), warnings
    modes = {r.getMessage() for r in caplog.records if r.getMessage().startswith("vace: ")}
    assert modes == {"vace: VACE edges control"}
    assert json.loads((out / "metrics.json").read_text())["settings"]["control"] == \
        "edges (in place of depth)"
    assert "control: edges (in place of depth)" in (out / "metrics.md").read_text()
