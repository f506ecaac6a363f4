"""Scenes: crossfades over N chunks, recall by name/index/path, save into the user folder
(never over a shipped scene), file paths refused, bad files, the four stratification
strategies, and beat quantisation against a real Ableton Link session."""

from __future__ import annotations

import logging
import math
import time

import pytest

from livevace.control.ramps import Ramps
from livevace.control.scenes import Scenes, load_scene, scene_names
from livevace.control.tempo import Clock, Quantiser
from livevace.params import ParamStore, parse_prompts
from test_control_support import (REPO_PRESETS, assert_file_error, oscsend, presets,  # noqa: F401
                                  running, user_scenes)

FADE = """description = "test"
crossfade = 4

[params]
prompt = "a glass city"
control = "edges"
vace_context_scale = 2.0
vace_layer_profile = [0.0]
seed = 5
"""


@pytest.fixture
def fading(presets):
    """A store crossfading to the 'glass' scene (FADE), not yet ticked."""
    (presets / "scenes" / "glass.toml").write_text(FADE)
    store = ParamStore()
    ramps = Ramps(store)
    scenes = Scenes(store, ramps)
    scenes.apply(scenes.load("glass"))
    return store, ramps


def test_crossfade_over_n_chunks(fading):
    store, ramps = fading
    # at once: the non-continuous values (the pipeline fades the prompt itself)
    assert store.get("prompt") == parse_prompts("a glass city")
    assert (store.get("control"), store.get("seed"), store.get("scene")) == ("edges", 5, "glass")
    assert store.get("vace_context_scale") == 1.0
    steps = []
    for _ in range(5):
        ramps.tick()
        steps.append((store.get("vace_context_scale"), store.get("vace_layer_profile")))
    assert steps == [(1.25, (0.75,)), (1.5, (0.5,)), (1.75, (0.25,)), (2.0, (0.0,)), (2.0, (0.0,))]


def test_a_control_moved_during_a_crossfade_wins(fading):
    store, ramps = fading
    ramps.tick()
    ramps.slew("vace_context_scale", 0.5, 0.0)  # what the router does for a fader
    for _ in range(4):
        ramps.tick()
    assert store.get("vace_context_scale") == 0.5


def test_stratification_strategies():
    want = {"baseline": (1.0, 1.0), "strong": (0.2, 1.0), "moderate": (0.5, 1.0), "inverse": (1.0, 0.2)}
    for name, (refinement, generation) in want.items():
        scene = load_scene(REPO_PRESETS / "stratification" / f"{name}.toml")
        assert scene.values == {"vace_refinement_scale": refinement, "vace_generation_scale": generation}


def test_recall_by_osc_name_index_and_path(running, presets):
    r = running()
    names = scene_names()
    assert names == scene_names(presets / "scenes")  # nothing saved yet
    oscsend(r.port, "/livevace/scene", "i", str(names.index("ink_wash")))
    r.client.sync()
    for _ in range(6):  # ink_wash crossfades over 6 chunks
        r.control.tick()
    ink = load_scene(presets / "scenes" / "ink_wash.toml")
    assert {k: r.store.get(k) for k in ink.values} == ink.values
    assert r.store.get("scene") == "ink_wash"
    oscsend(r.port, "/livevace/scene", "s", "stratification/inverse")
    r.client.sync()
    r.control.tick()
    assert r.store.get("vace_generation_scale") == pytest.approx((0.2 + 1.0) / 2)
    r.control.tick()
    assert r.store.get("vace_generation_scale") == 0.2
    r.client.send("/livevace/scene/list")
    assert r.client.receive_until("/livevace/scene/list")[-1] == ("/livevace/scene/list", names)


def test_save_then_recall(running, presets, user_scenes):
    r = running()
    r.client.send("/livevace/prompt", "a paper lantern festival :: 0.6 | rain :: 0.4")
    r.client.send("/livevace/control", "gray")
    r.client.send("/livevace/outpaint", 0.1, 0.0, 0.1, 0.0)
    r.client.send("/livevace/scene/save", "mine")
    r.client.send("/livevace/scene/save", "../escape")  # refused: not a plain name
    r.client.sync()
    saved = load_scene(user_scenes / "mine.toml")
    assert saved.values["control"] == "gray"
    assert saved.values["prompt"] == parse_prompts("a paper lantern festival :: 0.6 | rain :: 0.4")
    assert saved.values["outpaint"] == pytest.approx((0.1, 0.0, 0.1, 0.0))
    assert not (presets / "escape.toml").exists()
    assert not (user_scenes.parent / "escape.toml").exists()
    assert "mine" in scene_names()
    r.client.send("/livevace/control", "depth")
    r.client.send("/livevace/scene", "mine")
    r.client.sync()
    assert r.store.get("control") == "gray"


def test_saving_a_shipped_name_shadows_it_and_leaves_the_file(running, presets, user_scenes):
    shipped = presets / "scenes" / "ink_wash.toml"
    before = shipped.read_bytes()
    r = running()
    r.client.send("/livevace/control", "gray")
    r.client.send("/livevace/scene/save", "ink_wash")
    r.client.sync()
    assert shipped.read_bytes() == before  # a shipped scene is never overwritten
    assert load_scene(user_scenes / "ink_wash.toml").values["control"] == "gray"
    assert scene_names().count("ink_wash") == 1
    r.client.send("/livevace/control", "depth")
    r.client.send("/livevace/scene", "ink_wash")  # the user's scene wins
    r.client.sync()
    assert r.store.get("control") == "gray"
    r.client.send("/livevace/scene", "scenes/ink_wash")  # the shipped one, by its folder
    r.client.sync()
    assert r.store.get("control") == "edges"


def test_recall_refuses_file_paths(running, presets, tmp_path, caplog):
    outside = tmp_path / "elsewhere.toml"
    outside.write_text('[params]\ncontrol = "pose"\n')
    r = running()
    before = r.store.snapshot()
    for ref in (str(outside), str(presets / "scenes" / "ink_wash.toml"), "../elsewhere",
                "scenes/../../elsewhere", "ink_wash.toml"):
        r.client.send("/livevace/scene", ref)
    r.client.sync()
    r.control.tick()
    assert r.store.snapshot() == before
    assert caplog.text.count("not a file path") == 5, caplog.text


def test_recall_log_lines_are_rate_limited(running, caplog):
    caplog.set_level(logging.INFO, "livevace.osc")
    r = running()
    began = time.monotonic()
    for i in range(300):
        r.client.send("/livevace/scene", ("ink_wash", "neon_dancer")[i % 2])
        if i % 50 == 49:
            r.client.sync()  # no overflowing the socket buffer
    r.client.sync()
    took = time.monotonic() - began
    assert r.store.get("scene") == "neon_dancer"
    recalls = [line for line in caplog.text.splitlines() if "crossfade" in line]
    assert 1 <= len(recalls) <= 2 + took / 2, recalls  # a line per 2 s, counting the others


BAD_SCENES = [
    ('[params]\nseed = 1\ncontrl = "pose"\n', 3, "did you mean control"),
    ('crossfade = -1\n', 1, "crossfade must be"),
    ('[params]\nbeat_phase = 0.5\n', 2, "cannot be part of a scene"),
    ('[params]\nprompt = ""\n', 2, "empty prompt"),
    ('fade = 2\n', 1, "unknown key 'fade'"),
    ('[params\n', 1, ""),
]


@pytest.mark.parametrize("text,line,message", BAD_SCENES)
def test_bad_scene_files_name_file_and_line(tmp_path, text, line, message):
    assert_file_error(load_scene, tmp_path / "bad.toml", text, line, message)


def test_a_bad_scene_recalled_live_changes_nothing(running, presets, caplog):
    (presets / "scenes" / "broken.toml").write_text('[params]\ncontrol = "pose"\nnoise_scale = "x"\n')
    r = running()
    before = r.store.snapshot()
    r.client.send("/livevace/scene", "broken")
    r.client.send("/livevace/scene", "missing")
    r.client.sync()
    r.control.tick()
    assert r.store.snapshot() == before
    assert f"broken.toml:3: noise_scale: 'x' is not a number" in caplog.text
    assert "scene 'missing': no such scene in " in caplog.text


def test_quantised_scene_waits_for_the_next_link_beat(presets):
    (presets / "scenes" / "glass.toml").write_text(FADE.replace("crossfade = 4", "crossfade = 0"))
    store = ParamStore()
    clock = Clock(bpm=240.0)  # a real Link session (alone on this machine): a beat every 0.25 s
    try:
        quantiser = Quantiser(store, clock)
        scenes = Scenes(store, Ramps(store))
        store.set("quantize", "beat")
        scene = scenes.load("glass")
        while clock.beat % 1.0 > 0.6:  # early in a beat: ticks to look at before the line
            time.sleep(0.01)
        while True:  # (deferred again if a beat line passed meanwhile: which one is next?)
            before = clock.beat
            quantiser.defer("scene", lambda: scenes.apply(scene))
            after = clock.beat
            if math.floor(before) == math.floor(after):
                break
        line = math.floor(before) + 1.0
        assert quantiser.waiting == ["scene"] and store.get("control") == "depth"
        # Held until the line, then applied by the first tick on or after it: every tick
        # that started before the line kept it waiting, and the one that applied it ended
        # past the line (however late the machine ticks).
        while quantiser.waiting:
            assert store.get("control") == "depth"
            before = clock.beat
            quantiser.tick()
            after = clock.beat
            assert before < line or not quantiser.waiting, "its beat came and it still waits"
            time.sleep(0.01)
        assert after >= line, "applied before the beat line"
        assert store.get("control") == "edges" and store.get("vace_context_scale") == 2.0
        assert 0.0 <= store.get("beat_phase") < 1.0
        assert store.get("tempo") == pytest.approx(240.0)
        store.set("tempo", 128.0)  # the node can set the session tempo too
        assert clock.tempo == pytest.approx(128.0)
    finally:
        clock.close()


def test_quantize_without_link_applies_at_once(caplog):
    store = ParamStore()
    quantiser = Quantiser(store, None)
    store.set("quantize", "bar")
    done = []
    quantiser.defer("prompt", lambda: done.append(1))
    assert done == [1] and "needs a tempo source" in caplog.text


def test_link_option_quantises_osc_recalls(running):
    r = running("--link", "--bpm", "480")  # a bar of 4 beats every half second
    assert r.store.get("tempo") == pytest.approx(480.0)
    r.client.send("/livevace/quantize", "bar")
    r.client.send("/livevace/scene", "stratification/strong")
    r.client.sync()
    assert r.control.quantiser.waiting == ["scene"] and r.store.get("scene") == ""
    deadline = time.monotonic() + 30
    while r.store.get("vace_refinement_scale") != 0.2 and time.monotonic() < deadline:
        time.sleep(0.02)
        r.control.tick()
    assert r.store.get("scene") == "stratification/strong"
    assert r.store.get("vace_refinement_scale") == 0.2
