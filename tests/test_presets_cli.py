"""`livevace presets` resolves names as `--preset` does, checks a user's own files, and an
out-of-range value is clamped with one log line wherever it comes from (preset, --set,
scene, controller file)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from livevace.commands import node_options as config
from livevace.cli import build_parser, main
from livevace.control.mapping import load_controller
from livevace.control.scenes import load_scene
from livevace.params import ParamStore
from test_control_support import presets, running, user_scenes  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
NO_OSC = ["--osc-port", "-1", "--oscquery-port", "-1", "--no-zeroconf"]


def clamp_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "clamped to" in line]


def test_show_takes_every_name_preset_takes(capsys):
    for name, file in (("720p", "resolutions/720p.toml"), ("default", "default.toml"),
                       ("scenes/ink_wash", "scenes/ink_wash.toml")):
        assert config.find_preset(name) == config.presets_root() / file
        assert main(["presets", "show", name]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0] == f"# {config.presets_root() / file}"
        assert out.endswith((config.presets_root() / file).read_text())


def test_show_of_an_unknown_name_says_what_is_near(capsys):
    assert main(["presets", "show", "ink_wash"]) == 2
    assert capsys.readouterr().err.strip() == \
        "livevace: no preset named 'ink_wash' (did you mean scenes/ink_wash?)"


def test_list_names_presets_as_preset_takes_them(capsys):
    assert main(["presets", "list", "node"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert {"default", "720p", "1080p", "576x320"} <= set(names)
    assert all(config.find_preset(n).is_file() for n in names)


def test_a_scene_saved_over_osc_is_listed_and_takes_its_name(running, presets, user_scenes,
                                                              capsys):
    r = running()
    r.client.send("/livevace/control", "gray")
    r.client.send("/livevace/scene/save", "mine")
    r.client.send("/livevace/scene/save", "ink_wash")  # shadows the shipped one
    r.client.sync()
    assert main(["presets", "list", "scenes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert rows["scenes/mine"].split()[1] == "(yours)"
    assert "(yours, instead of the shipped one)" in rows["scenes/ink_wash"]
    assert [line.split()[0] for line in lines].count("scenes/ink_wash") == 1
    assert "scenes/neon_dancer" in rows and "yours" not in rows["scenes/neon_dancer"]
    assert lines[-1] == f"  (yours: saved in {user_scenes})"
    for name in ("scenes/mine", "scenes/ink_wash"):  # --preset finds the saved scene
        cfg = config.from_args(build_parser(["run"]).parse_args(["run", "--preset", name]))
        assert cfg.presets[-1] == str(user_scenes / f"{name.split('/')[1]}.toml")
        assert cfg.params["control"] == "gray"
        assert main(["presets", "show", name]) == 0
        assert capsys.readouterr().out.splitlines()[0] == \
            f"# {user_scenes / name.split('/')[1]}.toml"
    assert main(["presets", "validate"]) == 0
    out = capsys.readouterr().out
    assert f"ok     {user_scenes / 'mine.toml'}\n" in out
    assert f"ok     {presets / 'scenes' / 'ink_wash.toml'}\n" in out


def test_validate_checks_a_users_own_node_preset(tmp_path, capsys):
    mine = tmp_path / "club.toml"
    mine.write_text('[node]\nwidth = 1280\nheight = 720\n[params]\ncontrol = "edges"\n')
    assert main(["presets", "validate", str(mine), "720p"]) == 0
    out = capsys.readouterr().out
    assert f"ok     {mine}\n" in out and "2 valid, 0 with errors" in out
    mine.write_text("[node]\nwidth = 333\n")
    assert main(["presets", "validate", str(mine)]) == 1
    assert "error  width 333: must be an even number" in capsys.readouterr().out


def test_a_preset_value_out_of_range_is_clamped_with_one_line(tmp_path, caplog):
    mine = tmp_path / "loud.toml"
    mine.write_text('[params]\ncontrol = "edges"\nnoise_scale = 5\n')
    caplog.set_level(logging.INFO)
    args = build_parser(["run"]).parse_args(["run", *NO_OSC, "--preset", str(mine),
                                             "--set", "vace_context_scale=7"])
    cfg = config.from_args(args)
    assert clamp_lines(caplog.messages) == [
        f"{mine}:3: noise_scale: 5 clamped to 1.0 (range 0..1)",
        "--set vace_context_scale: 7 clamped to 2.0 (range 0..2)"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if "clamped" in r.message)
    store = ParamStore()
    store.update(cfg.params)
    assert (store.get("noise_scale"), store.get("vace_context_scale")) == (1.0, 2.0)


def test_run_says_each_clamp_once_in_a_real_process(tmp_path):
    mine = tmp_path / "loud.toml"
    mine.write_text("[params]\nseed = -4\n")
    proc = subprocess.run(
        [sys.executable, "-m", "livevace", "run", *NO_OSC, "--no-preview", "--pipeline",
         "passthrough", "--max-frames", "2", "--sink", f"record:{tmp_path / 'out.mp4'}",
         "--preset", str(mine), "--set", "noise_scale=-1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = clamp_lines(proc.stderr.splitlines())
    assert len(lines) == 2, proc.stderr
    assert lines[0].endswith(f"{mine}:2: seed: -4 clamped to 0 (range 0..2147483647)")
    assert lines[1].endswith("--set noise_scale: -1 clamped to 0.0 (range 0..1)")


def test_a_scene_value_out_of_range_is_clamped_with_one_line(tmp_path, caplog):
    scene = tmp_path / "hot.toml"
    scene.write_text('description = "x"\n[params]\nvace_context_scale = 3.5\n')
    assert load_scene(scene).values["vace_context_scale"] == 2.0
    assert clamp_lines(caplog.messages) == [
        f"{scene}:3: vace_context_scale: 3.5 clamped to 2.0 (range 0..2)"]


def test_a_controller_trigger_value_out_of_range_is_clamped_with_one_line(tmp_path, caplog):
    pad = tmp_path / "pad.toml"
    pad.write_text('name = "pad"\n\n[[map]]\naddress = "/pad/1"\nparam = "noise_scale"\n'
                   'mode = "trigger"\nvalue = 4\n')
    (mapping,) = load_controller(pad).maps
    assert mapping.value == 1.0
    assert clamp_lines(caplog.messages) == [
        f"{pad}:7: noise_scale: 4 clamped to 1.0 (range 0..1)"]
