"""Helpers shared by the control tests (no tests here): a running control service on free
ports with a private copy of the presets, and a real OSC client that hears replies."""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_packet import OscPacket

from livevace.control import service
from livevace.control.router import encode
from livevace.params import ParamStore

REPO_PRESETS = Path(__file__).resolve().parents[1] / "presets"


def control_args(*extra: str, zeroconf: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    service.add_arguments(parser)
    quiet = [] if zeroconf else ["--no-zeroconf"]
    return parser.parse_args(["--osc-port", "0", "--oscquery-port", "-1", *quiet, *extra])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OscClient:
    """python-osc messages over a UDP socket of our own, so the node's replies reach us.
    Its waits return as soon as what they wait for has come; their generous deadlines are
    reached only when it never does."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(encode(address, list(args)), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def receive(self, timeout: float = 30.0, count: int = 1) -> list[tuple[str, list[Any]]]:
        """Up to `count` messages (fewer when `timeout` passes first)."""
        out: list[tuple[str, list[Any]]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                break
            out += [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]
        return out

    def receive_until(self, address: str, timeout: float = 30.0) -> list[tuple[str, list[Any]]]:
        """Messages up to and including the first to `address` (all, if it never comes)."""
        out: list[tuple[str, list[Any]]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.receive(timeout=deadline - time.monotonic())
            out += got
            if any(a == address for a, _ in got):
                break
        return out

    def latest_until(self, expected: dict[str, Any], timeout: float = 30.0) -> dict[str, list[Any]]:
        """The last arguments per address, read until each address in `expected` shows its
        expected ones (a glide's last step: earlier steps come first); all that came, if
        that never happens."""
        latest: dict[str, list[Any]] = {}
        deadline = time.monotonic() + timeout
        while any(latest.get(a) != v for a, v in expected.items()) and time.monotonic() < deadline:
            latest.update(self.receive(timeout=deadline - time.monotonic()))
        return latest

    def sync(self) -> None:
        """Round trip: once the node answers, it has handled everything we sent before."""
        self.send("/livevace/seed")
        replies = self.receive_until("/livevace/seed")  # skips earlier replies
        assert any(a == "/livevace/seed" for a, _ in replies), "the node stopped answering"

    def close(self) -> None:
        self.sock.close()


def assert_file_error(load: Any, path: Path, text: str, line: int, message: str) -> None:
    """Loading `text` from `path` fails with 'path:line: …message…' (a preset file error)."""
    from livevace.control.tomlfiles import PresetError

    path.write_text(text)
    with pytest.raises(PresetError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert message in str(err.value), str(err.value)


def oscsend(port: int, address: str, types: str = "", *values: str, url: str | None = None) -> None:
    """Send with liblo's oscsend (a real, independent OSC implementation)."""
    target = [url] if url else ["127.0.0.1", str(port)]
    subprocess.run(["oscsend", *target, address, types, *values], check=True, timeout=10)


@pytest.fixture
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the shipped presets, a private user scene folder, `user_scenes`
    (scenes saved land there), and a private user controller folder, `user_controllers`
    (mappings learnt land there)."""
    root = tmp_path / "presets"
    shutil.copytree(REPO_PRESETS, root)
    monkeypatch.setenv("LIVEVACE_PRESETS", str(root))
    monkeypatch.setenv("LIVEVACE_SCENES_DIR", str(tmp_path / "user-scenes"))
    monkeypatch.setenv("LIVEVACE_CONTROLLERS_DIR", str(tmp_path / "user-controllers"))
    return root


@pytest.fixture
def user_scenes(presets: Path) -> Path:
    """The user scene folder of the `presets` fixture (not created yet)."""
    return presets.parent / "user-scenes"


@pytest.fixture
def user_controllers(presets: Path) -> Path:
    """The user controller folder of the `presets` fixture (not created yet)."""
    return presets.parent / "user-controllers"


class Running:
    def __init__(self, *extra: str, stats: Any = None, zeroconf: bool = False) -> None:
        self.store = ParamStore()
        self.control = service.start(control_args(*extra, zeroconf=zeroconf), self.store, stats)
        self.port = self.control.osc_address[1]
        self.client = OscClient(self.port)

    def close(self) -> None:
        self.client.close()
        self.control.close()


@pytest.fixture
def running(presets: Path):
    """Factory: start a control service with extra options; closed after the test."""
    started: list[Running] = []

    def start(*extra: str, stats: Any = None, zeroconf: bool = False) -> Running:
        started.append(Running(*extra, stats=stats, zeroconf=zeroconf))
        return started[-1]

    yield start
    for r in started:
        r.close()
