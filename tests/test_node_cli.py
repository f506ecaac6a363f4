"""`livevace run` / `sources` from the command line: bad input is one line and a non-zero
exit, never a traceback; presets and options become a validated RunConfig."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import pytest

from livevace import __version__
from livevace.commands import node_options as config
from livevace.cli import build_parser, main
from livevace.config import RunConfig
from livevace.errors import UserError
from livevace.io.specs import parse_sink

NO_OSC = ["--osc-port", "-1", "--oscquery-port", "-1", "--no-zeroconf"]
QUIET = [*NO_OSC, "--no-preview"]


@pytest.mark.parametrize("args, says", [
    (["--source", "foo"], "is not a source; use one of: pattern, camera"),
    (["--source", "video:"], "video needs a path"),
    (["--source", "video:/no/such/clip.mp4"], "does not exist"),
    (["--source", "camera:7"], "camera 7 is not available"),
    (["--sink", "spout"], "spout is not available on this platform (Windows only): use ndi"),
    (["--sink", "syphon:x"], "syphon is not available on this platform (macOS only): use ndi"),
    (["--sink", "vcam"], "v4l2loopback"),
    (["--sink", "record:"], "record needs a file"),
    (["--sink", "smoke"], "is not a sink; use one of"),
    (["--preset", "no-such-preset"], "no preset named 'no-such-preset'"),
    (["--width", "333"], "width 333: must be an even number"),
    (["--fps", "0"], "fps 0: must be within"),
    (["--pipeline", "magic"], "pipeline 'magic': choose auto"),
    (["--set", "vace_scale=2"], "unknown parameter 'vace_scale'"),
    (["--control", "xray"], "'xray' is not one of"),
])
def test_bad_input_is_one_line_and_nonzero(args, says, capsys):
    if sys.platform != "linux" and "--sink" in args and args[-1] in ("spout", "syphon:x", "vcam"):
        pytest.skip("platform-specific message")
    code = main(["run", *QUIET, "--pipeline", "passthrough", *args]
                if "--pipeline" not in args else ["run", *QUIET, *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("livevace: "), err
    assert says in err[0]


def test_bad_spec_in_a_real_process_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "livevace", "run", *QUIET, "--source", "ndi"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "livevace: --source 'ndi': ndi needs a name (forms: pattern, camera[:INDEX], "
        "video:PATH, ndi:NAME, ndi:HOST:PORT, spout:NAME)"]


def test_version_and_sources(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"livevace {__version__}"
    assert main(["sources", "--wait", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "cameras:" in out and "NDI sources" in out


def run_args(*argv: str):
    return build_parser(["run"]).parse_args(["run", *NO_OSC, *argv])


def test_default_preset_file_is_the_embedded_default():
    from_file = config.load(["default"])
    embedded = RunConfig()
    assert {k: v for k, v in asdict(from_file).items() if k != "presets"} == \
        {k: v for k, v in asdict(embedded).items() if k != "presets"}
    # And `livevace run` with no options runs exactly that.
    assert asdict(config.from_args(run_args())) == asdict(from_file)



def test_default_preset_file_shows_every_node_key():
    """The README sends VJs to presets/default.toml for the keys a [node] table takes."""
    import re

    text = (config.presets_root() / "default.toml").read_text()
    shown = set(re.findall(r"^#? ?(\w+) = ", text, flags=re.M))
    assert set(config.NODE_KEYS) <= shown, set(config.NODE_KEYS) - shown

def test_presets_layer_and_the_command_line_wins(tmp_path):
    mine = tmp_path / "club.toml"
    mine.write_text('[node]\nfps = 60\nsinks = ["ndi:club", "record:club.mp4"]\n'
                    '[params]\ncontrol = "edges"\nseed = 7\n')
    cfg = config.from_args(run_args("--preset", "720p", "--preset", str(mine),
                                    "--set", "seed=9", "--height", "736"))
    assert (cfg.width, cfg.height, cfg.fps) == (1280, 736, 60.0)
    assert cfg.sinks == ("ndi:club", "record:club.mp4")
    assert cfg.params == {"control": "edges", "seed": "9"}
    assert [parse_sink(s).kind for s in cfg.sinks] == ["ndi", "record"]
    strong = config.load(["stratification/strong"])  # the control engineer's files layer too
    assert strong.params["vace_refinement_scale"] == pytest.approx(0.2)


@pytest.mark.parametrize("text, line, says", [
    ("[node]\nfps = 30\nwidht = 640\n", 3, "unknown [node] key 'widht' (did you mean width?)"),
    ("[node]\nwidth = '640'\n", 2, "width must be a whole number"),
    ("# mine\n[params]\nnoise_scale = 'lots'\n", 3, "noise_scale: 'lots' is not a number"),
    ("[node\nwidth = 640\n", 1, ""),
    ("\ncolour = 'red'\n", 2, "unknown entry 'colour'"),
])
def test_bad_preset_names_the_file_line_and_problem(tmp_path, text, line, says):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(UserError) as exc:
        config.load([str(bad)])
    assert str(exc.value).startswith(f"{bad}:{line}: ") and says in str(exc.value)
