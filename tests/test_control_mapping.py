"""Controller mappings: curves, file checking with file:line, the shipped layouts driven by
real OSC, feedback to the controls, learn mode and live reload."""

from __future__ import annotations

import logging
import os
import time

import pytest

from livevace.cli import main
from livevace.control import controllers as controllers_module
from livevace.control.mapping import CURVES, Mapping, curve, curve_inverse, load_controller
from livevace.control.tomlfiles import PresetError
from livevace.params import parse_prompts
from test_control_support import (REPO_PRESETS, assert_file_error, oscsend, presets,  # noqa: F401
                                  running, user_controllers)

NO_OSC = ["--osc-port", "-1", "--oscquery-port", "-1", "--no-zeroconf"]


def settle(r, seconds: float = 0.35) -> None:
    r.client.sync()
    r.control.tick()
    time.sleep(seconds)  # the mappings' slews (0.3 s at most in the shipped files)
    r.control.tick()


@pytest.mark.parametrize("name", CURVES)
def test_curves_are_monotonic_bijections_of_the_unit_interval(name):
    xs = [i / 100 for i in range(101)]
    ys = [curve(name, x) for x in xs]
    assert ys[0] == pytest.approx(0.0, abs=1e-12) and ys[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(ys, ys[1:]))
    assert [curve_inverse(name, y) for y in ys] == pytest.approx(xs)


def test_curve_shapes():
    assert curve("exp", 0.5) < 0.5 < curve("log", 0.5)
    assert curve("exp", 0.5) == pytest.approx((2.718281828 ** 2 - 1) / (2.718281828 ** 4 - 1))


def test_mapping_scales_into_the_parameter_range():
    fader = Mapping("/f", "vace_context_scale")
    assert fader.to_param(0.25) == pytest.approx(0.5)  # registry range 0..2
    narrow = Mapping("/f", "vace_context_scale", lo_out=0.5, hi_out=1.5, invert=True)
    assert narrow.to_param(0.0) == pytest.approx(1.5) and narrow.to_param(1.0) == pytest.approx(0.5)
    midi = Mapping("/cc", "noise_scale", lo_in=0, hi_in=127)
    assert midi.to_param(127) == pytest.approx(1.0) and midi.to_param(300) == pytest.approx(1.0)
    assert Mapping("/k", "control").to_param(0.99) == "none"
    assert Mapping("/k", "control").to_param(0.0) == "depth"
    assert Mapping("/t", "vace_enabled").to_param(0.6) is True


@pytest.mark.parametrize("crv", CURVES)
def test_feedback_position_inverts_the_mapping(crv):
    m = Mapping("/f", "vace_generation_scale", lo_in=0, hi_in=127, lo_out=0.2, hi_out=1.8,
                curve=crv, invert=True)
    for x in (0, 10, 63.5, 100, 127):
        assert m.to_control(m.to_param(x)) == pytest.approx(x, abs=1e-9)


BAD_FILES = [
    ('[[map]]\naddress = "/a"\nparam = "vace_contxt_scale"\n', 3, "did you mean vace_context_scale"),
    ('name = "x"\n\n[[map]]\naddress = "/a"\nparam = "noise_scale"\n\n[[map]]\naddress = "/b"\n'
     'param = "noise_scale"\nout = [0.0, 5.0]\n', 10, "leaves noise_scale's range"),
    ('[[map]]\naddress = "/a"\nparam = "noise_scale"\ncurv = "exp"\n', 4, "unknown key 'curv'"),
    ('[[map]]\naddress = "/a"\nparam = "noise_scale"\ncurve = "cubic"\n', 4, "curve 'cubic'"),
    ('[[map]]\naddress = "/a"\nparam = "seed"\n[[map]]\naddress = "/a"\nparam = "noise_scale"\n', 5,
     "already mapped at line 1"),
    ('[[map]]\naddress = "/a"\nparam = "noise_scale\n', 3, "Illegal character"),
    ('bank = ["one", "two"]\n[[map]]\naddress = "/a"\nmode = "bank"\nindex = 2\n', 5, "index must be 0..1"),
    ('[[map]]\naddress = "/a"\nparam = "noise_scale"\nmode = "toggle"\n', 4, "needs an on/off parameter"),
    ('[[map]]\naddress = "/a/*"\nparam = "noise_scale"\n', 2, "no wildcards"),
    ('[[map]]\naddress = "/a"\nparam = "control"\nmode = "trigger"\nvalue = "canny"\n', 5, "not one of"),
    ('[[map]]\naddress = "/a"\nparam = "beat_phase"\n', 3, "read only"),
]


@pytest.mark.parametrize("text,line,message", BAD_FILES)
def test_bad_mapping_files_name_file_and_line(tmp_path, text, line, message):
    assert_file_error(load_controller, tmp_path / "bad.toml", text, line, message)


def test_shipped_layouts_load():
    touchosc = load_controller(REPO_PRESETS / "controllers" / "touchosc.toml")
    generic = load_controller(REPO_PRESETS / "controllers" / "generic8.toml")
    assert {m.address for m in touchosc.maps} >= {f"/1/fader{i}" for i in range(1, 6)}
    assert {m.address for m in generic.maps} == {f"/knob/{i}" for i in range(1, 9)} | \
        {f"/button/{i}" for i in range(1, 9)}


def test_touchosc_layout_over_real_osc(running, presets):
    r = running("--controller", "touchosc")
    bank = load_controller(presets / "controllers" / "touchosc.toml").bank
    oscsend(r.port, "/1/fader1", "f", "0.25")
    oscsend(r.port, "/1/fader5", "f", "0.5")
    oscsend(r.port, "/1/toggle2", "f", "1")
    oscsend(r.port, "/2/push3", "f", "1")
    oscsend(r.port, "/2/push3", "f", "0")  # the release does nothing
    oscsend(r.port, "/2/push14", "f", "1")
    oscsend(r.port, "/2/push16", "f", "1")
    oscsend(r.port, "/3/xy/x", "f", "0.25")  # the Simple layout sends each axis alone
    oscsend(r.port, "/3/xy/y", "f", "0.75")
    settle(r)
    s = r.store
    assert s.get("vace_context_scale") == pytest.approx(0.5)
    assert s.get("transition_chunks") == 4
    assert s.get("pause") is True
    assert s.get("prompt") == bank[2]
    assert s.get("control") == "pose"
    assert s.take_trigger("reset_cache")
    assert s.get("vace_generation_scale") == pytest.approx(0.5)
    assert s.get("vace_refinement_scale") == pytest.approx(1.5)
    oscsend(r.port, "/2/push10", "f", "1")  # stratification/strong: over transition_chunks (4)
    r.client.sync()
    for _ in range(4):
        r.control.tick()
    assert s.get("scene") == "stratification/strong"
    assert (s.get("vace_refinement_scale"), s.get("vace_generation_scale")) == (0.2, 1.0)


def test_modes_toggle_momentary_and_bank_scan(running, presets):
    path = presets / "controllers" / "modes.toml"
    path.write_text('bank = ["a", "b", "c", "d"]\n'
                    '[[map]]\naddress = "/btn"\nparam = "pause"\nmode = "toggle"\n'
                    '[[map]]\naddress = "/hold"\nparam = "noise_controller"\nmode = "momentary"\n'
                    '[[map]]\naddress = "/scan"\nmode = "bank"\n')
    r = running("--controller", str(path))
    seen = []
    r.store.subscribe(lambda name, value: seen.append((name, value)))
    for value in ("1", "0", "1", "0", "1"):
        oscsend(r.port, "/btn", "f", value)
    r.client.send("/hold", 1.0)
    r.client.sync()
    assert r.store.get("noise_controller") is True
    r.client.send("/hold", 0.0)
    for x in (0.1, 0.2, 0.3, 0.6, 0.99):
        r.client.send("/scan", x)
    r.client.sync()
    assert [v for n, v in seen if n == "pause"] == [True, False, True]
    assert r.store.get("noise_controller") is False
    prompts = [v for n, v in seen if n == "prompt"]
    assert prompts == [parse_prompts(t) for t in ("a", "b", "c", "d")]  # 0.1 and 0.2 are both "a"


def test_feedback_moves_faders_and_lights_bank_buttons(running, presets):
    listener = running()  # a second node's client socket stands in for TouchOSC's receive port
    port = listener.client.sock.getsockname()[1]
    r = running("--controller", "touchosc", "--feedback", f"127.0.0.1:{port}")
    bank = load_controller(presets / "controllers" / "touchosc.toml").bank
    r.client.send("/livevace/vace_context_scale", 1.5)
    r.client.sync()
    r.control.tick()
    time.sleep(0.15)
    r.control.tick()
    expected = {"/1/fader1": [pytest.approx(0.75)],
                "/livevace/vace_context_scale": [pytest.approx(1.5)]}
    latest = listener.client.latest_until(expected)  # the slew's last step wins
    assert {address: latest.get(address) for address in expected} == expected
    r.client.send("/livevace/prompt", bank[1][0].text)
    r.client.sync()
    lights = dict(listener.client.receive_until("/2/push8"))
    assert lights["/2/push2"] == [1.0]
    assert all(lights[f"/2/push{i}"] == [0.0] for i in (1, 3, 4, 5, 6, 7, 8))


def test_learn_mode_writes_the_mapping_file(running, presets):
    learn_file = presets.parent / "mine.toml"  # the user's own file, outside presets/
    learn_file.write_text('# my controller\nname = "mine"\n\n[[map]]\naddress = "/old"\n'
                          'param = "seed"\n')
    r = running("--controller", str(learn_file))
    r.client.send("/livevace/learn", "noise_scale")
    r.client.sync()
    oscsend(r.port, "/my/knob", "f", "0.25")
    done = [m for m in r.client.receive_until("/livevace/learn/done") if m[0] == "/livevace/learn/done"]
    assert done == [("/livevace/learn/done", ["/my/knob", "noise_scale"])]
    settle(r, 0.15)
    assert r.store.get("noise_scale") == pytest.approx(0.25)
    text = learn_file.read_text()
    assert text.startswith("# my controller\n")  # the user's file is kept
    learned = load_controller(learn_file)
    assert [(m.address, m.param) for m in learned.maps] == [("/old", "seed"), ("/my/knob", "noise_scale")]
    # learning the same control again replaces its mapping
    r.client.send("/livevace/learn", "vace_enabled", "toggle")
    r.client.sync()
    oscsend(r.port, "/my/knob", "f", "1")
    r.client.sync()
    learned = load_controller(learn_file)
    assert [(m.address, m.param, m.mode) for m in learned.maps] == [
        ("/old", "seed", "absolute"), ("/my/knob", "vace_enabled", "toggle")]
    assert r.store.get("vace_enabled") is False  # the press toggled it off at once


def test_learn_refuses_what_a_mapping_file_could_not_hold(running, presets, caplog):
    learn_file = presets.parent / "mine.toml"
    r = running("--learn-file", str(learn_file))
    r.client.send("/livevace/learn", "noise_scale", "toggle")  # a fader value cannot toggle
    r.client.sync()
    assert "learn: mode toggle needs an on/off parameter; noise_scale is float" in caplog.text
    oscsend(r.port, "/my/knob", "f", "1")
    r.client.sync()
    assert not learn_file.exists()  # nothing written: the file would stop the next start
    r.client.send("/livevace/learn", "pause")
    r.client.sync()
    r.client.send("/my knob", 1.0)  # an address no mapping file accepts: learning stays armed
    r.client.sync()
    assert "learn: address must be an OSC address" in caplog.text and not learn_file.exists()
    oscsend(r.port, "/my/toggle", "f", "1")
    r.client.receive_until("/livevace/learn/done")
    assert [(m.address, m.param) for m in load_controller(learn_file).maps] == [("/my/toggle", "pause")]


def test_learn_never_writes_a_shipped_file_and_a_restart_keeps_what_was_learned(
        running, presets, user_controllers, caplog):
    shipped = presets / "controllers" / "touchosc.toml"
    before = shipped.read_bytes()
    learned_file = user_controllers / "learned.toml"
    caplog.set_level(logging.INFO, logger="livevace.osc")
    r = running("--controller", "touchosc")
    r.client.send("/livevace/learn", "noise_scale")
    r.client.sync()
    oscsend(r.port, "/my/knob", "f", "0.25")
    done = [m for m in r.client.receive_until("/livevace/learn/done") if m[0] == "/livevace/learn/done"]
    assert done == [("/livevace/learn/done", ["/my/knob", "noise_scale"])]
    assert shipped.read_bytes() == before  # any OSC sender can learn: never into what ships
    assert not (presets / "controllers" / "learned.toml").exists()
    assert [(m.address, m.param) for m in load_controller(learned_file).maps] == [
        ("/my/knob", "noise_scale")]
    assert f"learn mode (/livevace/learn) saves mappings in {learned_file}" in caplog.text
    # the next start loads what was learned, beside the --controller files
    again = running("--controller", "touchosc")
    oscsend(again.port, "/my/knob", "f", "0.75")
    oscsend(again.port, "/1/fader1", "f", "0.75")
    settle(again)
    assert again.store.get("noise_scale") == pytest.approx(0.75)
    assert again.store.get("vace_context_scale") == pytest.approx(1.5)
    plain = running()  # and with no --controller at all
    oscsend(plain.port, "/my/knob", "f", "0.5")
    settle(plain)
    assert plain.store.get("noise_scale") == pytest.approx(0.5)
    assert shipped.read_bytes() == before


def test_a_learn_file_in_the_shipped_presets_is_refused_at_start(presets, capsys):
    inside = presets / "controllers" / "mine.toml"
    code = main(["run", *NO_OSC, "--no-preview", "--pipeline", "passthrough", "--max-frames",
                 "1", "--learn-file", str(inside)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"livevace: --learn-file {inside}: learn mode never writes into "
                             "the shipped presets"), err
    assert not inside.exists()


def test_edited_mapping_reloads_and_a_broken_edit_keeps_the_old(running, presets, monkeypatch, caplog):
    monkeypatch.setattr(controllers_module, "RELOAD_EVERY", 0.0)
    path = presets / "controllers" / "live.toml"
    path.write_text('[[map]]\naddress = "/k"\nparam = "noise_scale"\n')
    r = running("--controller", str(path))

    def rewrite(text: str) -> None:
        path.write_text(text)
        stamp = time.time() + 5
        os.utime(path, (stamp, stamp))
        r.control.tick()

    rewrite('[[map]]\naddress = "/k"\nparam = "nois_scale"\n')
    assert f"{path}:3: unknown parameter 'nois_scale'" in caplog.text
    r.client.send("/k", 0.5)
    settle(r, 0.15)
    assert r.store.get("noise_scale") == pytest.approx(0.5)  # the old mapping still works
    rewrite('[[map]]\naddress = "/k"\nparam = "vace_context_scale"\n')
    r.client.send("/k", 0.25)
    settle(r, 0.15)
    assert r.store.get("vace_context_scale") == pytest.approx(0.5)
    assert r.store.get("noise_scale") == pytest.approx(0.5)


def test_a_broken_controller_file_at_start_is_one_clear_error(presets):
    from test_control_support import Running

    path = presets / "controllers" / "broken.toml"
    path.write_text('[[map]]\naddress = "/k"\nparam = "noise_scale"\nmode = "sideways"\n')
    with pytest.raises(PresetError, match=rf"^{path}:4: mode 'sideways'"):
        Running("--controller", str(path))


def test_unknown_controller_name(presets):
    from test_control_support import Running

    with pytest.raises(PresetError, match="cannot read"):
        Running("--controller", "no_such_controller")


def test_an_empty_controller_file_maps_nothing_and_says_so(running, presets, monkeypatch, caplog):
    """Empty means "no mappings" (a learn file starts so), but never silently: at start and
    when an edit empties a file in use, one warning names the file."""
    monkeypatch.setattr(controllers_module, "RELOAD_EVERY", 0.0)
    empty = presets / "controllers" / "empty.toml"
    empty.write_text("")
    live = presets / "controllers" / "live.toml"
    live.write_text('[[map]]\naddress = "/k"\nparam = "noise_scale"\n')
    r = running("--controller", str(empty), "--controller", str(live))
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelname == "WARNING"]
    assert warnings == [f"controller empty: {empty} has no [[map]] tables, so none of its "
                        "controls is mapped"]
    live.write_text("# cleared\n")
    stamp = time.time() + 5
    os.utime(live, (stamp, stamp))
    r.control.tick()
    assert f"controller live: {live} has no [[map]] tables" in caplog.text
