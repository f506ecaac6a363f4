"""What the command line says about itself: `livevace --help` and `livevace bench --help`
give every command a whole sentence, `bench` lists only targets that run, no user-facing
text speaks of the project's issues, and `osc send --reply` to no node says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from livevace.cli import build_parser, summary
from livevace.commands.bench import _targets
from test_control_support import free_udp_port

ROOT = Path(__file__).resolve().parents[1]


def help_of(*argv: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "livevace", *argv, "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def listed(text: str, metavar: str) -> dict[str, str]:
    """The sub-command lines under `metavar` in argparse's help, each joined back into one."""
    block = text.split(f"\n  {metavar}\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        m = re.match(r"^    (\S+)(?:\s{2,}(.*))?$", line)
        if m:
            name = m.group(1)
            entries[name] = m.group(2) or ""
        else:
            entries[name] = f"{entries[name]} {line.strip()}".strip()
    return entries


def whole_sentence(text: str) -> bool:
    return text.endswith(".") and text.count("(") == text.count(")") and text.count("`") % 2 == 0


def test_every_command_in_livevace_help_is_a_whole_sentence():
    entries = listed(help_of(), "COMMAND")
    assert set(entries) >= {"run", "sources", "bench", "models", "osc", "presets", "patches",
                            "experiment"}
    for name, text in entries.items():
        assert whole_sentence(text), (name, text)
        assert text == summary(f"livevace.commands.{name}")


def test_every_bench_target_is_a_whole_sentence_and_runs():
    entries = listed(help_of("bench"), "TARGET")
    assert set(entries) == set(_targets()) and {"dit", "pipeline", "node"} <= set(entries)
    assert not {"report", "kernels", "suite"} & set(entries)  # helpers, not targets
    for name, text in entries.items():
        assert whole_sentence(text), (name, text)
        with pytest.raises(SystemExit) as done:  # its own --help works: it is a target
            build_parser(["bench", name]).parse_args(["bench", name, "--help"])
        assert done.value.code == 0


def test_no_user_facing_text_speaks_of_the_issues():
    texts = [help_of("bench"), help_of("bench", "pipeline"), (ROOT / "README.md").read_text()]
    texts += [p.read_text() for p in (ROOT / "docs").glob("*.md")]
    assert not [t for t in texts if re.search(r"\bthe issue\b|\bissue's\b|\bissue \d", t, re.I)]


def test_osc_send_reply_with_no_node_says_none_came():
    port = free_udp_port()
    proc = subprocess.run([sys.executable, "-m", "livevace", "osc", "send", "--port", str(port),
                           "--reply", "/livevace/seed"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"livevace: no reply from 127.0.0.1:{port} within 1 s: is the node "
                           f"running with --osc-port {port}? (setting a value sends no answer; "
                           "a query is the address alone)\n")


def test_a_command_keeps_what_torch_compiles_out_of_the_temporary_folder(
        tmp_path, monkeypatch, capsys) -> None:
    """PyTorch compiles into the temporary folder, which a reboot empties; the node keeps its
    compiled kernels under ~/.cache/livevace/compiled, and a folder the user set stays."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    from livevace.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # restored after the test
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert main(["osc", "--list"]) == 0
    assert cache_dir() == str(tmp_path / ".cache" / "livevace" / "compiled")
    own = tmp_path / "mine"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(own))
    assert main(["osc", "--list"]) == 0
    assert cache_dir() == str(own)
    capsys.readouterr()
