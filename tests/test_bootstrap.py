"""bootstrap.py: the FlashAttention-4 build only where its kernels run; the launcher waits
for the node's clean stop on Ctrl-C and passes SIGTERM on."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "bootstrap.py")
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)


def test_flash4_only_for_hopper_and_blackwell_on_linux() -> None:
    assert bootstrap.flash4_extra("linux", 9, "12.8") == "flash4"
    assert bootstrap.flash4_extra("linux", 10, "13.0") == "flash4-cu13"
    assert bootstrap.flash4_extra("linux", 8, "12.8") is None  # Ampere/Ada: cuDNN only
    assert bootstrap.flash4_extra("win32", 9, "12.8") is None
    assert bootstrap.flash4_extra("linux", 0, "") is None  # no usable GPU


def test_the_extras_bootstrap_names_exist() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"flash4", "flash4-cu13"} <= set(extras)
    assert all("flash-attn-4" in extras[name][0] for name in ("flash4", "flash4-cu13"))


# A node stand-in: its clean stop takes a second (files being finished), then says so.
CHILD = """
import signal, sys, time
got = []
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda signum, frame: got.append(signum))
print("ready", flush=True)
while not got:
    time.sleep(0.01)
time.sleep(1)
print(f"stopped after signal {got[0]}", flush=True)
sys.exit(3)
"""


def start_launcher(tmp_path: Path) -> subprocess.Popen:
    """`bootstrap.launch` running the stand-in, in a session of its own (its own process
    group, as a terminal's foreground job is); returns once the stand-in is listening."""
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import bootstrap; "
            f"sys.exit(bootstrap.launch([sys.executable, {str(child)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def stopped(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # an orphaned stand-in, if the launcher left it


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (Linux: /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status).group(1), 16)
    return bool(caught >> (signum - 1) & 1)


@pytest.mark.skipif(os.name == "nt", reason="process groups and POSIX signals")
@pytest.mark.timeout(120)
def test_ctrl_c_waits_for_the_nodes_clean_stop(tmp_path) -> None:
    proc = start_launcher(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = stopped(proc)
    assert f"stopped after signal {int(signal.SIGINT)}" in out
    assert "Traceback" not in err and proc.returncode == 3, err


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.timeout(120)
def test_sigterm_to_the_launcher_alone_reaches_the_node(tmp_path) -> None:
    proc = start_launcher(tmp_path)
    deadline = time.monotonic() + 30
    while not catches(proc.pid, signal.SIGTERM):
        assert time.monotonic() < deadline, "the launcher never handles SIGTERM"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGTERM)
    out, err = stopped(proc)
    assert f"stopped after signal {int(signal.SIGTERM)}" in out
    assert "Traceback" not in err and proc.returncode == 3, err
