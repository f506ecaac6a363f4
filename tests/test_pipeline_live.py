"""Live control of the vace pipeline through the real node loop: a change made between two
calls (as OSC makes it) lands on the next generated chunk and not before; parameters that need
a cache reset say so; a reset keeps the *current* prompt; the chunk size switches between 3 and
1 latent frames; references swap live; pause holds.

Text-to-video makes the pixels a function of the parameters alone (the camera is ignored), so
runs can be compared frame for frame although the loop's timing varies."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.session import pixel_frames
from pipeline_support import SIZE, images, models, one_thread, run_node, store_with  # noqa: F401

T2V = dict(vace_enabled=False, noise_scale=1.0, transition_chunks=0, prompt="a red fox")


def run(models, chunks: int, changes=None, **settings):  # noqa: F811
    store = store_with(**{**T2V, **settings})
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot())
    bursts, sink, stats = run_node(pipeline, store, chunks, changes=changes)
    assert len(bursts) >= chunks
    return bursts


@pytest.fixture(scope="module")
def plain(models) -> list:  # noqa: F811
    return run(models, 4)


@pytest.mark.parametrize("name, value", [("seed", 7), ("decoder", "wan"),
                                         ("prompt", "a blue whale"),
                                         ("vace_layer_profile", (0.5, 1.5))])
def test_a_change_lands_on_the_next_chunk(models, plain, name, value) -> None:  # noqa: F811
    # tick 1 submits chunk 0, tick 2 generates it, tick 3 (the change) generates chunk 1
    changed = run(models, 3, changes={3: {name: value}})
    assert np.array_equal(images(changed[0]), images(plain[0]))
    if name == "vace_layer_profile":  # no VACE in text-to-video: nothing may change
        assert np.array_equal(images(changed[1]), images(plain[1]))
    elif name == "prompt":  # encoded on its own thread: it lands once ready, within a chunk
        assert not np.array_equal(images(changed[2]), images(plain[2]))
    else:
        assert not np.array_equal(images(changed[1]), images(plain[1]))


def test_steps_change_resets_the_stream_and_says_so(models, plain,  # noqa: F811
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bursts = run(models, 3, changes={3: {"denoising_steps": (1000, 500)}})
    assert "denoising_steps: cache reset" in caplog.text
    assert [len(b) for b in bursts[:3]] == [9, 9, 12]  # chunk 1 starts a new session
    fresh = run(models, 1, denoising_steps=(1000, 500))
    assert np.array_equal(images(bursts[1]), images(fresh[0]))


def test_reset_keeps_the_current_prompt(models, plain,  # noqa: F811
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bursts = run(models, 5, changes={3: {"prompt": "a blue whale"}, 5: {"reset_cache": True}})
    assert "reset_cache: cache reset, the stream starts afresh with the current prompt" in caplog.text
    assert "prompt cut: re-ran" in caplog.text  # the cut recached the past
    after_reset = images(bursts[3])
    assert len(bursts[3]) == 9
    whale = run(models, 1, prompt="a blue whale")
    assert np.array_equal(after_reset, images(whale[0]))  # the current prompt, from the start
    assert not np.array_equal(after_reset, images(plain[0]))  # not the first prompt


def test_chunk_size_switches_between_3_and_1_latent_frames(models,  # noqa: F811
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bursts = run(models, 6, changes={3: {"chunk_frames": 1}, 6: {"chunk_frames": 3}})
    sizes = [len(b) for b in bursts]
    # lower latency from chunk 1 on: the held chunk (the new session's first) and the call's
    # own come out together, and no chunk is annotated ahead any more (lookahead 0)
    assert sizes[:4] == [9, pixel_frames(1, True) + 4, 4, 4]
    assert 9 in sizes[4:]  # and back: a new session of 3-latent chunks
    assert "chunk_frames: cache reset" in caplog.text


def _picture(path: Path, colour: tuple[int, int, int]) -> str:
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = colour
    cv2.imwrite(str(path), image)
    return str(path)


def test_references_swap_live_and_bad_paths_are_rejected(models, tmp_path: Path,  # noqa: F811
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    first, second = _picture(tmp_path / "a.png", (0, 0, 255)), _picture(tmp_path / "b.png", (0, 255, 0))
    missing = str(tmp_path / "nowhere.png")
    with_refs = run(models, 5, reference_images=(first,), changes={
        3: {"reference_images": (second, missing)}, 5: {"reference_images": ()}})
    assert f"reference image {missing}: no such file; going on without it" in caplog.text
    assert "reference images: " + second in caplog.text
    # the swap rewrote the sink in place (the session went on); removing them all reset it
    assert [len(b) for b in with_refs[:5]] == [9, 12, 12, 9, 12]
    assert "reference_images: cache reset" in caplog.text
    without = run(models, 2)
    assert not np.array_equal(images(with_refs[0]), images(without[0]))


def test_pause_holds_the_picture_and_the_stream_goes_on(models) -> None:  # noqa: F811
    store = store_with(**T2V)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot())
    bursts, sink, stats = run_node(pipeline, store, 4, changes={3: {"pause": True},
                                                                  30: {"pause": False}})
    assert [len(b) for b in bursts[:4]] == [9, 12, 12, 12]  # no reset across the pause
    assert stats.snapshot()["held"] > 0
