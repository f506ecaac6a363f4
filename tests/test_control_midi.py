"""MIDI controllers through real ports: a JACK server started here carries MIDI between a
stand-in controller (two virtual ports) and the node. Notes, CCs, 14-bit CCs and pitch bend
move parameters through the mapping files; feedback comes back to the controller; MIDI
clock sets the tempo and the beat that quantised changes wait for; unplugging and
replugging is survived; bad bytes cost one rate-limited line."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import pytest

from livevace.control import midi as midi_module
from livevace.control.mapping import load_controller
from livevace.control.midiclock import PPQN, MidiClock
from livevace.control.midimsg import RANGE, Decoder, parse_address
from livevace.params import param
from midi_support import Controller, cc, jack, note  # noqa: F401
from polling import until
from test_control_support import (REPO_PRESETS, assert_file_error, presets,  # noqa: F401
                                  running, user_controllers)

PAD = """\
name = "Test Pad"
port = "Test Pad"
bank = ["one", "two"]

[[map]]
address = "/midi/1/note/5"
param = "pause"
mode = "toggle"

[[map]]
address = "/midi/1/cc/7"
param = "noise_scale"
slew = 0

[[map]]
address = "/midi/2/cc14/1"
param = "vace_context_scale"
slew = 0

[[map]]
address = "/midi/1/bend"
param = "vace_generation_scale"
slew = 0

[[map]]
address = "/midi/1/note/0"
mode = "bank"
index = 0
send = [0, 21]
send_channel = 7

[[map]]
address = "/midi/1/note/1"
mode = "bank"
index = 1
send = [0, 21]
send_channel = 7
"""


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    """Look at the port names often, so unplugging tests do not wait a second a look."""
    monkeypatch.setattr(midi_module, "POLL_EVERY", 0.05)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def ticking(r, done):
    """`done`, with the node loop's tick before each look (slews move on ticks)."""
    def check() -> bool:
        r.control.tick()
        return bool(done())

    return check


def connected(r, spec: str) -> bool:
    return any(d.spec == spec and d.midi_in is not None for d in r.control.midi.devices)


def test_notes_ccs_14bit_and_bend_move_parameters_and_feedback_comes_back(
        jack, running, tmp_path):
    pad = Controller("Test Pad")
    try:
        r = running("--midi", "Test Pad", "--controller", str(write(tmp_path / "pad.toml", PAD)))
        until(lambda: connected(r, "Test Pad"), "the node opens the pad's ports")
        # a controller that connects is shown the state: the pause LED is off
        until(lambda: pad.has_received(type="note_on", note=5, velocity=0), "LED state sent")
        s = r.store
        pad.send(note(5), note(5, 0))  # press and release: the toggle flips once
        until(lambda: s.get("pause") is True, "the note toggles pause")
        until(lambda: pad.has_received(type="note_on", note=5, velocity=127), "pause LED lit")

        pad.send(cc(7, 64))
        until(lambda: s.get("noise_scale") == pytest.approx(64 / 127), "CC 7 moves noise_scale")

        pad.send(cc(1, 64, channel=2), cc(33, 1, channel=2))  # 14 bits: MSB, then LSB
        until(lambda: s.get("vace_context_scale") == pytest.approx(2.0 * (64 * 128 + 1) / 16383),
              "the 14-bit pair moves vace_context_scale to the LSB's step")

        pad.send(mido.Message("pitchwheel", pitch=4096))
        until(lambda: s.get("vace_generation_scale") == pytest.approx(2.0 * 12288 / 16383),
              "pitch bend moves vace_generation_scale")

        # a change from elsewhere (OSC) moves the motor fader and the 14-bit fader
        pad.forget()
        r.client.send("/livevace/vace_generation_scale", 0.5)
        r.client.send("/livevace/vace_context_scale", 1.5)
        until(ticking(r, lambda: pad.has_received(type="pitchwheel",
                                                  pitch=round(0.25 * 16383) - 8192)),
              "pitch bend feedback (motor fader)")
        raw = round(0.75 * 16383)
        until(ticking(r, lambda: pad.has_received(type="control_change", channel=1, control=1,
                                                  value=raw >> 7)
                      and pad.has_received(type="control_change", channel=1, control=33,
                                           value=raw & 0x7F)), "14-bit feedback, MSB and LSB")

        # bank buttons: the pressed one lights green (21) on the brightness channel, the
        # other goes dark
        pad.forget()
        pad.send(note(1))
        until(lambda: s.get("prompt") == load_controller(tmp_path / "pad.toml").bank[1],
              "the pad selects prompt 2")
        until(lambda: pad.has_received(type="note_on", channel=6, note=1, velocity=21)
              and pad.has_received(type="note_on", channel=6, note=0, velocity=0),
              "bank LEDs follow the prompt")
    finally:
        pad.unplug()


def test_a_file_with_a_port_answers_only_that_port(jack, running, tmp_path):
    one = write(tmp_path / "a.toml", 'port = "Deck A"\n[[map]]\naddress = "/midi/1/cc/7"\n'
                'param = "noise_scale"\nslew = 0\n')
    two = write(tmp_path / "b.toml", 'port = "Deck B"\n[[map]]\naddress = "/midi/1/cc/7"\n'
                'param = "vace_context_scale"\nslew = 0\n')
    a, b = Controller("Deck A"), Controller("Deck B")
    try:
        r = running("--midi", "Deck A", "--midi", "Deck B", "--controller", str(one),
                    "--controller", str(two))
        until(lambda: connected(r, "Deck A") and connected(r, "Deck B"), "both decks open")
        a.send(cc(7, 127))
        until(lambda: r.store.get("noise_scale") == 1.0, "deck A's CC 7 moves noise_scale")
        b.send(cc(7, 0))
        until(lambda: r.store.get("vace_context_scale") == 0.0,
              "deck B's CC 7 moves vace_context_scale")
        assert r.store.get("noise_scale") == 1.0  # deck B's CC 7 did not reach deck A's map
        b.forget()  # the state it was sent on connecting (its own CC 7 at 64) included
        r.client.send("/livevace/noise_scale", 0.5)
        until(ticking(r, lambda: a.has_received(type="control_change", control=7, value=64)),
              "deck A's feedback")
        r.client.sync()
        assert not b.has_received(type="control_change", control=7, value=64)
    finally:
        a.unplug()
        b.unplug()


def test_learn_maps_a_midi_control(jack, running, user_controllers):
    pad = Controller("Learn Pad")
    try:
        r = running("--midi", "Learn Pad")
        until(lambda: connected(r, "Learn Pad"), "the pad opens")
        r.client.send("/livevace/learn", "noise_scale")
        r.client.sync()
        pad.send(cc(9, 127, channel=3))
        until(ticking(r, lambda: r.store.get("noise_scale") == 1.0),
              "the learnt CC applies at once")
        learned = load_controller(user_controllers / "learned.toml")
        assert [m.address for m in learned.maps] == ["/midi/3/cc/9"]
    finally:
        pad.unplug()


def test_learn_maps_a_14bit_fader_as_one_control(jack, running, user_controllers):
    fader = Controller("Learn Fader")
    try:
        r = running("--midi", "Learn Fader")
        until(lambda: connected(r, "Learn Fader"), "the fader opens")
        r.client.send("/livevace/learn", "vace_context_scale")
        r.client.sync()
        fader.send(cc(4, 100, channel=2), cc(36, 0, channel=2))  # one move: MSB, then LSB
        until(lambda: r.control.controllers.cc14 == {(2, 4)}, "learn pairs CC 4 with CC 36")
        learned = load_controller(user_controllers / "learned.toml")
        assert [m.address for m in learned.maps] == ["/midi/2/cc14/4"]
        fader.send(cc(4, 3, channel=2), cc(36, 77, channel=2))  # a step 7 bits cannot make
        until(ticking(r, lambda: r.store.get("vace_context_scale")
                      == pytest.approx(2.0 * (3 * 128 + 77) / 16383)),
              "the learnt fader moves the parameter in 14-bit steps")
    finally:
        fader.unplug()


def test_learn_keeps_a_7bit_cc_whose_partner_comes_later(jack, running, user_controllers):
    knob = Controller("Learn Knob")
    try:
        r = running("--midi", "Learn Knob")
        until(lambda: connected(r, "Learn Knob"), "the knob opens")
        r.client.send("/livevace/learn", "vace_context_scale")
        r.client.sync()
        # a 7-bit knob turned (CC 5 twice), then another knob that happens to be CC 5 + 32
        knob.send(cc(5, 127), cc(5, 0), cc(37, 64), cc(5, 64))
        until(ticking(r, lambda: r.store.get("vace_context_scale") == pytest.approx(2 * 64 / 127)),
              "the learnt CC follows the knob")
        learned = load_controller(user_controllers / "learned.toml")
        assert [m.address for m in learned.maps] == ["/midi/1/cc/5"]
        assert r.control.controllers.cc14 == frozenset()
    finally:
        knob.unplug()


def test_unplugged_controller_is_one_line_and_comes_back(jack, running, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="livevace.midi")
    pad = Controller("Test Pad")
    r = running("--midi", "Test Pad", "--controller", str(write(tmp_path / "pad.toml", PAD)))
    until(lambda: connected(r, "Test Pad"), "the pad opens")
    pad.unplug()

    def said(text: str) -> list[str]:
        return [rec.getMessage() for rec in caplog.records if text in rec.getMessage()]

    until(lambda: said("unplugged"), "the node sees the pad gone")
    pad.plug()
    try:
        until(lambda: connected(r, "Test Pad"), "the pad is picked up again")
        assert len(said("unplugged")) == 1 and not said("waiting")
        pad.send(cc(7, 127))
        until(ticking(r, lambda: r.store.get("noise_scale") == 1.0),
              "the replugged pad steers again")
        until(lambda: pad.has_received(type="note_on", note=5), "it is shown the state again")
    finally:
        pad.unplug()


def test_bad_midi_costs_one_rate_limited_line(jack, running, tmp_path, caplog):
    pad = Controller("Test Pad")
    try:
        r = running("--midi", "Test Pad", "--controller", str(write(tmp_path / "pad.toml", PAD)))
        until(lambda: connected(r, "Test Pad"), "the pad opens")
        caplog.clear()
        rng = random.Random(0)
        for _ in range(50):  # what a byte stream can carry: cut short, undefined, unmapped
            pad.send([0x90, 60], [rng.randrange(0x80, 0xF0)], [0xF4], [0xFD, 1], [5, 6, 7],
                     [0xF2, 1], [0xF0, 1, 2, 3, 0xF7], [0xC0, 5], [0xA0, 1, 2],
                     [0xB5, 99, 10], [0xF8], [0xFE])
        pad.send(cc(7, 127))
        until(ticking(r, lambda: r.store.get("noise_scale") == 1.0),
              "a good CC after the garbage works")
        lines = [rec.getMessage() for rec in caplog.records if rec.name == "livevace.midi"]
        assert len(lines) <= 1 and all("malformed" in line for line in lines), lines
        assert not [rec for rec in caplog.records if rec.name == "livevace.osc"
                    and rec.levelno >= logging.WARNING]
    finally:
        pad.unplug()


def test_midi_clock_sets_the_tempo_and_holds_changes_for_the_beat(jack, running):
    drum = Controller("Drum Machine")
    stop = threading.Event()

    def play(bpm: float) -> None:  # clocks on an absolute schedule: late ones catch up
        start, k = time.monotonic(), 0
        while not stop.is_set():
            k += 1
            time.sleep(max(0.0, start + k * 60 / bpm / PPQN - time.monotonic()))
            drum.send([0xF8])

    try:
        r = running("--midi-clock", "Drum Machine", "--bpm", "100")
        until(lambda: connected(r, "Drum Machine"), "the clock port opens")
        assert r.store.get("tempo") == 100.0
        player = threading.Thread(target=play, args=(150.0,), daemon=True)
        drum.send([0xFA])
        player.start()

        until(ticking(r, lambda: abs(r.store.get("tempo") - 150.0) < 1.5),
              "the tempo follows the clock")
        until(lambda: 0 < r.store.get("beat_phase") and r.control.quantiser.clock.beat > 1,
              "the beat runs")
        stop.set()
        player.join()

        # quantise: a prompt change waits for the next beat, which is the 24th clock
        clock = r.control.quantiser.clock
        drum.send([0xFA], [0xF8])  # start: the first clock is beat 0
        until(lambda: clock.running and clock.beat < 1 / PPQN, "started at beat 0")
        r.client.send("/livevace/quantize", "beat")
        r.client.send("/livevace/prompt", "on the beat")
        r.client.sync()
        assert r.control.quantiser.waiting == ["prompt"]
        drum.send(*[[0xF8]] * 23)
        until(lambda: clock.beat >= 23 / PPQN, "23 clocks in")
        r.control.tick()
        assert r.control.quantiser.waiting == ["prompt"]  # beat 0.96: not yet
        drum.send([0xF8])
        until(lambda: clock.beat >= 1.0, "the 24th clock")
        r.control.tick()
        assert r.store.get("prompt")[0].text == "on the beat"

        drum.send([0xFC])  # stopped: nothing waits for a beat that will not come
        until(lambda: not clock.running, "stopped")
        r.client.send("/livevace/prompt", "while stopped")
        r.client.sync()
        assert r.store.get("prompt")[0].text == "while stopped"
    finally:
        stop.set()
        drum.unplug()


def test_clock_tempo_is_the_mean_of_jittered_clocks():
    now = [0.0]
    clock = MidiClock(120.0, now=lambda: now[0])
    clock.start()
    rng = random.Random(1)
    for k in range(200):
        now[0] = k * 60 / 128 / PPQN
        clock.clock(now[0] + rng.uniform(-0.002, 0.002))
    assert clock.tempo == pytest.approx(128.0, abs=0.5)
    assert clock.beat == pytest.approx(199 / PPQN, abs=1 / PPQN)
    now[0] += 5.0  # a pause: the next clocks start a new measurement
    for k in range(30):
        now[0] += 60 / 90 / PPQN
        clock.clock()
    assert clock.tempo == pytest.approx(90.0, abs=0.5)
    clock.song_position(16)  # bar 2 (16 sixteenths)
    clock.stop()
    assert clock.beat == 4.0 and not clock.running


def test_decoder_pairs_14bit_halves_only_where_mapped():
    d = Decoder()
    assert d.decode(cc(33, 5)) == ("/midi/1/cc/33", 5 / 127)
    d.pairs = frozenset({(1, 1)})
    assert d.decode(cc(1, 2)) == ("/midi/1/cc14/1", 256 / 16383)
    assert d.decode(cc(33, 5)) == ("/midi/1/cc14/1", 261 / 16383)
    assert d.decode(cc(1, 3)) == ("/midi/1/cc14/1", 389 / 16383)  # a new MSB keeps the LSB
    assert d.decode(note(60, 1, channel=16)) == ("/midi/16/note/60", 1.0)
    assert d.decode(mido.Message("note_off", note=60)) == ("/midi/1/note/60", 0.0)
    assert d.decode(mido.Message("sysex", data=[1, 2])) is None


BAD_FILES = [
    ('[[map]]\naddress = "/midi/17/cc/1"\nparam = "noise_scale"\n', 2, "MIDI channels are 1..16"),
    ('[[map]]\naddress = "/midi/1/cc14/40"\nparam = "noise_scale"\n', 2, "cc14 numbers are 0..31"),
    ('[[map]]\naddress = "/midi/1/knob/1"\nparam = "noise_scale"\n', 2, "a MIDI address is"),
    ('[[map]]\naddress = "/midi/1/bend/3"\nparam = "noise_scale"\n', 2, "pitch bend has no number"),
    ('[[map]]\naddress = "/a"\nparam = "noise_scale"\nsend = [0, 5]\n', 4,
     "send applies to MIDI controls"),
    ('[[map]]\naddress = "/midi/1/cc/1"\nparam = "noise_scale"\nsend = [0, 300]\n', 4,
     "send must be [off, on] whole numbers 0..127"),
    ('[[map]]\naddress = "/midi/1/note/1"\nparam = "pause"\nsend_channel = 0\n', 4,
     "send_channel must be a MIDI channel"),
    ('[[map]]\naddress = "/midi/1/cc/1"\nparam = "noise_scale"\narg = 1\n', 4,
     "leave arg out"),
    ('port = 3\n[[map]]\naddress = "/midi/1/cc/1"\nparam = "noise_scale"\n', 1,
     "port must be"),
]


@pytest.mark.parametrize("text,line,message", BAD_FILES)
def test_bad_midi_mappings_name_file_and_line(tmp_path, text, line, message):
    assert_file_error(load_controller, tmp_path / "bad.toml", text, line, message)


SHIPPED = ["apc_mini_mk2", "launch_control_xl", "nanokontrol2", "ddj_flx4"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_midi_mappings_steer_through_real_ports(jack, running, name):
    """Every fader and knob of a shipped file, moved to its top over a real port, puts its
    parameter at the top of the mapped range; buttons are checked by the file loading."""
    c = load_controller(REPO_PRESETS / "controllers" / f"{name}.toml")
    assert c.port and all(m.address.startswith("/midi/") for m in c.maps)
    device = Controller(c.port)
    try:
        r = running("--midi", c.port, "--controller", name)
        until(lambda: connected(r, c.port), f"{c.port} opens")
        faders = [m for m in c.maps if m.mode == "absolute" and param(m.param).kind == "float"
                  and parse_address(m.address).kind != "note"]
        assert faders, f"{name} maps no fader"
        for m in faders:  # each to the end that puts its parameter at the top
            control = parse_address(m.address)
            device.send(*control.messages(0 if m.invert else RANGE[control.kind]))
        top = {m.param: m.to_param(0.0 if m.invert else 1.0) for m in faders}

        until(ticking(r, lambda: all(r.store.get(p) == pytest.approx(v) for p, v in top.items())),
              f"{name}'s faders move their parameters")
    finally:
        device.unplug()


@pytest.mark.parametrize("name", SHIPPED)
def test_the_controller_page_names_every_shipped_control(name):
    """docs/controllers.md says what each control of a shipped file does (a control added
    to a file without a row there fails here)."""
    page = (REPO_PRESETS.parent / "docs" / "controllers.md").read_text(encoding="utf-8")
    section = page.split(f"(`--controller {name}`)")[1].split("\n## ")[0]
    c = load_controller(REPO_PRESETS / "controllers" / f"{name}.toml")
    named = {line.split("(`")[1].split("`)")[0] for line in section.splitlines()
             if line.startswith("|") and "(`/midi/" in line}
    assert named == {m.address for m in c.maps}


def test_midi_list_names_the_ports(jack):
    pad = Controller("Listed Pad")
    try:
        proc = subprocess.run([sys.executable, "-m", "livevace", "midi", "list"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "Listed Pad:Listed Pad MIDI 1" in proc.stdout
        assert "livevace" not in proc.stdout.replace("livevace midi", "")  # not its own ports
    finally:
        pad.unplug()


def test_midi_without_a_midi_system_is_one_line(monkeypatch):
    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/WINDOWS_MM")
    proc = subprocess.run([sys.executable, "-m", "livevace", "midi", "list"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "no MIDI API 'WINDOWS_MM'" in proc.stderr
