import math
import threading

import pytest

from livevace.params import (
    BY_NAME,
    REGISTRY,
    ParamError,
    ParamStore,
    Prompt,
    changes,
    format_prompts,
    param,
    parse_prompts,
)


def test_every_default_is_valid_and_unchanged_by_coercion():
    for p in REGISTRY:
        value, clamped = p.coerce(p.default)
        assert not clamped, p.name
        if p.kind != "trigger":
            assert value == p.default, p.name


def test_names_unique_and_ranges_sane():
    assert len(BY_NAME) == len(REGISTRY)
    for p in REGISTRY:
        if p.is_numeric:
            assert p.min is not None and p.max is not None and p.min < p.max, p.name
        if p.kind == "enum":
            assert p.default in p.choices


@pytest.mark.parametrize(
    "name,given,expected,clamped",
    [
        ("vace_context_scale", 3.5, 2.0, True),
        ("vace_context_scale", -1, 0.0, True),
        ("vace_context_scale", "0.25", 0.25, False),
        ("seed", 7.6, 8, False),
        ("vace_enabled", 0.2, False, False),
        ("vace_enabled", "on", True, False),
        ("control", "pose", "pose", False),
        ("control", "1", "pose", False),  # index into the choices
        ("denoising_steps", "1000, 500", (1000, 500), False),
        ("denoising_steps", [2000, 0], (1000, 1), True),
    ],
)
def test_coercion(name, given, expected, clamped):
    assert param(name).coerce(given) == (expected, clamped)


@pytest.mark.parametrize(
    "name,bad",
    [
        ("vace_context_scale", math.nan),
        ("vace_context_scale", math.inf),
        ("vace_context_scale", "loud"),
        ("vace_enabled", "maybe"),
        ("control", "canny"),
        ("prompt", ""),
        ("prompt", "x" * 20000),
        ("prompt", "bad\x00text"),
        ("denoising_steps", list(range(1, 20))),
        ("reference_images", ["a", "b", "c", "d"]),
    ],
)
def test_rejections(name, bad):
    with pytest.raises(ParamError):
        param(name).coerce(bad)


def test_unknown_name_suggests():
    with pytest.raises(ParamError, match="vace_context_scale"):
        param("vace_context_scal")


def test_prompt_forms_round_trip():
    want = (Prompt("a neon city", 0.7), Prompt("a forest", 0.3))
    assert parse_prompts("a neon city :: 0.7 | a forest :: 0.3") == want
    assert parse_prompts(["a neon city", 0.7, "a forest", 0.3]) == want
    assert parse_prompts([{"text": "a neon city", "weight": 0.7}, {"text": "a forest", "weight": 0.3}]) == want
    assert parse_prompts(format_prompts(want)) == want
    assert parse_prompts(["one", "two"]) == (Prompt("one"), Prompt("two"))
    with pytest.raises(ParamError):
        parse_prompts(["a", -1.0])
    with pytest.raises(ParamError):
        parse_prompts([0.5])


def test_store_notifies_clamps_and_latches_triggers():
    store = ParamStore()
    seen = []
    store.subscribe(lambda n, v: seen.append((n, v)))
    assert store.set("noise_scale", 5) == (1.0, True)
    store.set("noise_scale", 1.0)  # unchanged: no notification
    store.set("reset_cache", 1)
    assert seen == [("noise_scale", 1.0), ("reset_cache", True)]
    assert store.take_trigger("reset_cache") and not store.take_trigger("reset_cache")
    with pytest.raises(ParamError):
        store.set("beat_phase", 0.5)
    store.set("beat_phase", 0.5, force=True)
    with pytest.raises(ParamError):
        store.update({"seed": 3, "noise_scale": math.nan})
    assert store.get("seed") == 42  # nothing of a bad batch is stored


def test_store_is_thread_safe():
    store = ParamStore()

    def hammer(i):
        for k in range(500):
            store.set("seed", i * 1000 + k)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 <= store.get("seed") < 4000


def test_changes_are_grouped_by_when_they_take_effect():
    """The pipelines act per `apply` kind: a new reset parameter resets without a pipeline
    edit. A trigger counts when fired; equal values are no change."""
    before = ParamStore().snapshot()
    after = {**before, "seed": 7, "denoising_steps": (1000, 500), "reset_cache": True,
             "prompt": parse_prompts("a whale"), "pause": True}
    groups = changes(before, after)
    assert groups == {"reset": {"denoising_steps", "reset_cache"}, "chunk": {"seed"},
                      "transition": {"prompt"}, "immediate": {"pause"}, "reload": set()}
    assert not any(changes(after, {**after, "reset_cache": False}).values())
