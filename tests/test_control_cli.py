"""The command line: `livevace osc --list` is the README's table, `presets validate`, and a
`livevace osc serve` process driven by `osc send --reply` and watched by `osc monitor`."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from livevace.cli import main
from livevace.commands.osc import readme_table
from test_control_support import free_udp_port, presets  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_is_the_list_output(capsys):
    assert main(["osc", "--list"]) == 0
    listed = capsys.readouterr().out
    table = readme_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert table is not None, "README.md lost its osc-table markers"
    assert table == listed, "run `livevace osc --update-readme README.md`"
    assert "`/livevace/vace_refinement_scale`" in table


def test_presets_validate(presets, capsys):
    assert main(["presets", "validate"]) == 0
    shipped = len(list(presets.rglob("*.toml")))  # every shipped preset file is checked
    assert f"{shipped} valid, 0 with errors" in capsys.readouterr().out
    bad = presets / "scenes" / "bad.toml"
    bad.write_text('[params]\ncontrol = "pose"\nnoise_scale = "lots"\n')
    assert main(["presets", "validate"]) == 1
    assert f"error  {bad}:3: noise_scale: 'lots' is not a number" in capsys.readouterr().out


def test_serve_send_and_monitor(presets, capsys):
    osc, feedback = free_udp_port(), free_udp_port()
    monitor = threading.Thread(target=main, args=(["osc", "monitor", "--port", str(feedback),
                                                   "--count", "1", "--timeout", "60"],))
    monitor.start()
    serve = subprocess.Popen([sys.executable, "-m", "livevace", "osc", "serve", "--osc-port", str(osc),
                              "--oscquery-port", "-1", "--no-zeroconf", "--feedback",
                              f"127.0.0.1:{feedback}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines = [serve.stderr.readline() for _ in range(1)]
        while "OSC control on" not in lines[-1] and lines[-1] and len(lines) < 50:
            lines.append(serve.stderr.readline())
        assert "OSC control on" in lines[-1], lines
        assert main(["osc", "send", "--port", str(osc), "/livevace/control", "pose"]) == 0
        monitor.join(timeout=30)
        assert not monitor.is_alive()
        assert capsys.readouterr().out.strip() == "/livevace/control 'pose'"  # the echo
        assert main(["osc", "send", "--port", str(osc), "--reply", "/livevace/control"]) == 0
        assert capsys.readouterr().out.strip() == "/livevace/control 'pose'"  # the answer
    finally:
        serve.terminate()
        serve.wait(timeout=10)


def test_tool_mistakes_are_one_line(capsys):
    """What a VJ may type at the osc tools: a clear line each, never a traceback."""
    assert main(["osc", "send", "--host", "nosuch.invalid", "/livevace/seed", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("livevace: cannot send to nosuch.invalid:9000 (") and err.count("\n") == 1
    assert main(["osc", "send", "/livevace/seed", "99999999999999999999"]) == 2
    assert "int too large" in capsys.readouterr().err
    for argv in (["osc", "send", "--port", "70000", "/livevace/seed", "1"],
                 ["osc", "serve", "--osc-port", "65536"], ["osc", "serve", "--tick-rate", "0"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("not a port number" in err or "not a positive" in err)
