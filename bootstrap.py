#!/usr/bin/env python3
"""Set up livevace's virtual environment and run it: `python3 bootstrap.py run|test [-- ARGS]`.

The one set-up path for every platform (the Makefile and Windows both call it):
1. create `.venv` beside this file;
2. install PyTorch unless the venv already has it: the CUDA build where `nvidia-smi` finds
   a GPU, otherwise a CPU build (a local `+cpu` wheel where pip's find-links folders hold
   one, its dependencies from the usual index; else the PyTorch CPU index), so machines
   without a GPU never fetch gigabytes of CUDA wheels;
3. install livevace (with the dev extras for `test`) and spandrel (without its dependencies:
   see `SPANDREL`), skipped when nothing changed;
4. on Linux with a Hopper or Blackwell GPU, try once to add FlashAttention-4 (the `flash4`
   extra: faster attention at 832×480; optional, cuDNN's SDPA does the work without it);
5. run `livevace run …` or `pytest …`, waiting out its clean stop on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SPANDREL = "spandrel==0.4.2"
"""The upscalers' loader, without its dependencies: it asks for torchvision, whose wheels on
the package index are CUDA builds that break a CPU PyTorch (and transformers' imports with
it); livevace loads no architecture that uses it (`livevace.output.upscale`)."""


def step(msg: str) -> None:
    print(f"[livevace setup] {msg}", flush=True)


def pip(*args: str, check: bool = True) -> bool:
    cmd = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, check=check).returncode == 0


def has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    return subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def ensure_torch() -> None:
    if subprocess.run([str(PY), "-c", "import torch"], capture_output=True).returncode == 0:
        return
    if has_gpu():
        step("NVIDIA GPU found: installing the CUDA build of PyTorch")
        if sys.platform == "win32":
            pip("torch", "--index-url", "https://download.pytorch.org/whl/cu128")
        else:
            pip("torch")
        return
    step("no NVIDIA GPU: installing a CPU build of PyTorch")
    wheel = local_cpu_torch()
    if wheel is None or not pip(str(wheel), check=False):  # its needs from the usual index
        pip("torch", "--index-url", CPU_INDEX)


def local_cpu_torch() -> Path | None:
    """A CPU torch wheel for this Python in pip's find-links folders, if any (CI
    machines carry one; the PyTorch index may be out of reach there)."""
    listed = subprocess.run([str(PY), "-m", "pip", "config", "list"], capture_output=True,
                            text=True).stdout
    folders = [v for line in listed.splitlines() if ".find-links=" in line
               for v in line.split("=", 1)[1].strip("'\"").split()]
    folders += os.environ.get("PIP_FIND_LINKS", "").split()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = [w for f in folders if Path(f).is_dir()
              for w in Path(f).glob(f"torch-*+cpu-{tag}-{tag}-*.whl")]
    return max(wheels, key=lambda w: w.name, default=None)


def ensure_project(extras: str) -> None:
    stamp = VENV / f".installed-{extras or 'base'}"
    newest = max(p.stat().st_mtime for p in (ROOT / "pyproject.toml", Path(__file__)))
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        return
    step(f"installing livevace{f'[{extras}]' if extras else ''} (first run takes a few minutes)")
    pip("-e", f"{ROOT}[{extras}]" if extras else str(ROOT))
    pip("--no-deps", SPANDREL)
    stamp.touch()


def flash4_extra(platform: str, capability_major: int, cuda: str) -> str | None:
    """The extra that brings FlashAttention-4 for this machine, or None where it cannot run
    (its kernels are for Hopper and Blackwell, on Linux; CUDA 13 builds of PyTorch need the
    CUDA 13 build of its compiler libraries)."""
    if platform != "linux" or capability_major not in (9, 10):
        return None
    return "flash4-cu13" if cuda.startswith("13") else "flash4"


def ensure_flash4() -> None:
    stamp = VENV / ".flash4-tried"
    if stamp.exists() or not has_gpu():
        return
    stamp.touch()  # tried once: a failure is not retried on every start
    probe = ("import torch; c = torch.cuda.get_device_capability() if torch.cuda.is_available() "
             "else (0, 0); print(c[0], torch.version.cuda or '')")
    out = subprocess.run([str(PY), "-c", probe], capture_output=True, text=True).stdout.split()
    extra = flash4_extra(sys.platform, int(out[0]), out[1]) if len(out) == 2 else None
    if extra is None:
        return
    step("Hopper/Blackwell GPU: adding FlashAttention-4 (faster attention at large frame sizes)")
    if not pip("-e", f"{ROOT}[{extra}]", check=False):
        step("FlashAttention-4 did not install; attention runs on cuDNN (PyTorch SDPA) instead")


def launch(cmd: list[str]) -> int:
    """Run `cmd` and return its exit code once it has stopped by itself.

    Ctrl-C in a terminal reaches the whole process group, so the node already has it and is
    finishing its files: the launcher ignores its own SIGINT meanwhile (subprocess.call would
    kill the node 0.25 s later and print a traceback). A SIGTERM sent to the launcher alone
    is passed on."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, lambda signum, frame: None)  # not SIG_IGN: the child inherits that
    try:
        child = subprocess.Popen(cmd)
        signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
        return child.wait()
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "setup"):
        print(__doc__)
        return 2
    what, rest = argv[0], [a for a in argv[1:] if a != "--"]
    if not PY.exists():
        step(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    ensure_torch()
    ensure_project("dev" if what == "test" else "")
    ensure_flash4()
    if what == "setup":
        return 0
    if what == "test":
        cmd = [str(PY), "-m", "pytest", *rest]
    else:
        cmd = [str(BIN / "livevace"), "run", *rest]
    os.chdir(ROOT)
    return launch(cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
