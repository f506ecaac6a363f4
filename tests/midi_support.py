"""Helpers for the MIDI tests (no tests here): a JACK server of the test's own, and a
controller made of two virtual JACK MIDI ports (what a USB controller shows the node)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Iterator

import mido
import pytest

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"


@pytest.fixture(scope="module")
def jack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JACK server (`jackd -d dummy`, no sound hardware) named for this test process;
    MIDO_BACKEND points the node at it. Skips where jackd is not installed. Its output goes
    to a file (a pipe nobody reads would stop it once full). Synchronous mode: on a loaded
    machine a client often misses its 2.7 ms cycle, and in the default asynchronous mode the
    server then moves on without it ("client was not finished"), which can lose MIDI events
    (a clock test once counted 22 of 23 clocks in CI); synchronous, the cycle waits."""
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd is not installed (apt-get install jackd2; CI installs it)")
    name = f"livevace-test-{os.getpid()}"
    log = tmp_path_factory.mktemp("jack") / "jackd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([jackd, "--no-realtime", "--sync", "-n", name, "-d", "dummy", "-r",
                                 "48000", "-p", "128"], stdout=out, stderr=subprocess.STDOUT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JACK_DEFAULT_SERVER", name)
        mp.setenv("MIDO_BACKEND", JACK_BACKEND)
        mp.setenv("JACK_NO_AUDIO_RESERVATION", "1")
        try:
            up = subprocess.run(["jack_wait", "-s", name, "-w", "-t", "30"],
                                capture_output=True, text=True, timeout=60)
            assert up.returncode == 0 and proc.poll() is None, \
                f"jackd did not start: {log.read_text(errors='replace')[-2000:]}"
            yield name
        finally:
            proc.terminate()
            proc.wait(timeout=30)


class Controller:
    """A MIDI controller as the node sees one: an output port it sends from and an input
    port feedback reaches, both named `name`. `unplug` and `plug` remove and bring back
    both, as pulling the USB cable does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._received: list[mido.Message] = []
        self.out: Any = None
        self.inp: Any = None
        self.plug()

    def plug(self) -> None:
        import rtmidi

        self.out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=self.name)
        self.out.open_virtual_port(f"{self.name} MIDI 1")
        self.inp = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=self.name)
        self.inp.open_virtual_port(f"{self.name} MIDI 1")

    def unplug(self) -> None:
        for port in (self.out, self.inp):
            port.close_port()
            port.delete()
        self.out = self.inp = None


    def send(self, *messages: mido.Message | list[int]) -> None:
        for m in messages:
            self.out.send_message(m if isinstance(m, list) else m.bytes())

    def received(self) -> list[mido.Message]:
        """What has come back so far (taken from rtmidi's queue: no thread of rtmidi's ever
        calls into Python, which could deadlock a port closing under the interpreter lock)."""
        while self.inp is not None and (event := self.inp.get_message()) is not None:
            self._received.append(mido.Message.from_bytes(event[0]))
        return list(self._received)

    def has_received(self, **fields: Any) -> bool:
        """Whether a message with these fields (type=…, control=…, value=…) came back."""
        return any(all(getattr(m, k, None) == v for k, v in fields.items())
                   for m in self.received())

    def forget(self) -> None:
        self.received()
        self._received.clear()


def cc(control: int, value: int, channel: int = 1) -> mido.Message:
    return mido.Message("control_change", channel=channel - 1, control=control, value=value)


def note(number: int, velocity: int = 127, channel: int = 1) -> mido.Message:
    return mido.Message("note_on", channel=channel - 1, note=number, velocity=velocity)
