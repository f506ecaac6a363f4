"""The next chunk's VACE context encoded ahead (`overlap`) gives exactly the pictures of the
serial order, whatever lands in between: on a CPU there is no second CUDA stream, so the
same speculation, commit and rollback logic runs inline, in the overlapped order (with the
Wan VAE and with the tiny encoder as the control's encoder). Also: the
zeros of VACE switched on mid-video come from the shared cache, `prepare` on a CPU,
and `livevace run --no-compile`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from livevace.frames import Frame
from livevace.loop import TRIGGERS
from livevace.pipelines import REGISTRY
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.warmup import annotator_batches, warm_annotators, warm_codecs
from pipeline_support import SIZE, images, make_clip, models, one_thread, store_with  # noqa: F401


def live(store) -> dict:  # noqa: ANN001
    """The parameters of one call, as the node's loop takes them (triggers fire once)."""
    return {**store.snapshot(), **{name: store.take_trigger(name) for name in TRIGGERS}}


def frame(index: int) -> np.ndarray:
    """A moving blob with texture (edges move from frame to frame)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cx, cy = 6 + index % 20, 10 + (index // 3) % 12
    blob = ((xx - cx) ** 2 + (yy - cy) ** 2 < 50).astype(np.uint8) * 210
    return np.stack([blob, 255 - blob, ((xx + index) * 7 % 256).astype(np.uint8)], -1)


def picture(path: Path, value: int) -> str:
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[:, : SIZE // 2] = value
    cv2.imwrite(str(path), image)
    return str(path)


def play(models, overlap: bool, changes: dict[int, dict], calls: int,  # noqa: F811
         lookahead: int = 1, context_encoder: str = "wan"
         ) -> tuple[list[np.ndarray], dict[str, float]]:
    """Output of each call, and the pipeline's stats; `changes[i]` lands before call i."""
    store = store_with(control="edges", seed=3, transition_chunks=0)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=lookahead,
                             overlap=overlap, context_encoder=context_encoder)
    outs, index = [], 0
    try:
        for i in range(calls):
            for name, value in changes.get(i, {}).items():
                store.set(name, value)
            n = pipeline.frames_per_call
            out = pipeline([Frame(frame(index + k), float(index + k), index + k)
                            for k in range(n)], live(store))
            index += n
            outs.append(images(out) if out else np.zeros((0,)))
        return outs, pipeline.stats.snapshot()
    finally:
        pipeline.close()


@pytest.mark.parametrize("context_encoder", ["wan", "tae"])
def test_overlapped_encodes_match_the_serial_order_through_every_kind_of_change(
        models, tmp_path: Path, context_encoder: str) -> None:  # noqa: F811
    mask, first, last = (picture(tmp_path / f"{n}.png", v)
                         for n, v in (("mask", 255), ("first", 90), ("last", 160)))
    changes = {
        3: {"mask": "image", "mask_image": mask},  # a region appears: rolled back
        5: {"mask": "none", "outpaint": (0.25, 0.0, 0.0, 0.0)},
        7: {"outpaint": (0.0, 0.0, 0.0, 0.0), "first_frame_image": first},  # a keyframe due
        8: {"last_frame_image": last},
        9: {"vace_enabled": False},  # no context: the causal encoders sit out
        11: {"vace_enabled": True, "control": "none"},  # back on, mid-video, raw video
        13: {"reset_cache": True},
        15: {"chunk_frames": 1},  # a new session
        18: {"chunk_frames": 3, "vace_context_scale": 0.5},  # the kept session comes back
        20: {"reference_images": (first,)},
    }
    calls = 23
    tae_calls: list[int] = []
    hook = models.tae.encoder[0].register_forward_hook(lambda *_: tae_calls.append(1))
    try:
        serial, serial_stats = play(models, False, changes, calls, context_encoder=context_encoder)
        ahead, ahead_stats = play(models, True, changes, calls, context_encoder=context_encoder)
    finally:
        hook.remove()
    assert bool(tae_calls) == (context_encoder == "tae")  # the option swaps the encoder
    assert [o.shape for o in ahead] == [o.shape for o in serial]
    assert sum(o.shape[0] > 0 for o in serial) >= calls - 3  # the first call only submits
    for i, (a, b) in enumerate(zip(ahead, serial)):
        assert np.array_equal(a, b), f"call {i} differs"
    assert ahead_stats["encode_ahead_used"] >= 8  # most chunks took the context encoded ahead
    assert ahead_stats["encode_ahead_discarded"] >= 5  # every landing change rolled one back
    assert "encode_ahead_used" not in serial_stats
    assert ahead_stats["stage_encode_ms"] > 0


def test_without_lookahead_nothing_is_encoded_ahead(models) -> None:  # noqa: F811
    changes = {2: {"control": "none"}}
    serial, _ = play(models, False, changes, 4, lookahead=0)
    ahead, stats = play(models, True, changes, 4, lookahead=0)
    for a, b in zip(ahead, serial):
        assert np.array_equal(a, b)
    assert "encode_ahead_used" not in stats and "encode_ahead_discarded" not in stats


def encodes_per_call(models, pipeline: StreamingVace, store, changes: dict[int, dict],  # noqa: F811, ANN001
                     calls: int) -> list[int]:
    """Wan VAE encodes (chunks, whatever their passes) in each call (`changes[i]` lands
    before call i)."""
    counted: list[int] = []
    vae = models.vae
    encode_step = vae.encode_step

    def counting(*args):  # noqa: ANN002, ANN202
        counted.append(1)
        return encode_step(*args)

    vae.encode_step = counting
    per_call, index = [], 0
    try:
        for i in range(calls):
            for name, value in changes.get(i, {}).items():
                store.set(name, value)
            n, before = pipeline.frames_per_call, len(counted)
            pipeline([Frame(frame(index + k), 0.0, index + k) for k in range(n)], live(store))
            index += n
            per_call.append(len(counted) - before)
    finally:
        del vae.encode_step
        pipeline.close()
    return per_call


def test_vace_switched_on_mid_video_encodes_zeros_from_the_shared_cache(models) -> None:  # noqa: F811
    """VACE's inactive video is zeros without a mask; an encoder that starts on a later chunk
    used to re-encode 13 frames of zeros in every chunk. Now only the control is encoded."""
    store = store_with(control="edges", vace_enabled=False, noise_scale=1.0)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
    warm_codecs(pipeline, pipeline.session)  # the shared zeros cache converges here
    per_call = encodes_per_call(models, pipeline, store, {2: {"vace_enabled": True}}, 6)
    assert per_call[:2] == [0, 0]  # text-to-video: nothing to encode
    assert per_call[2:] == [1, 1, 1, 1]  # the control alone; the zeros are cached


def test_both_chunk_sizes_keep_their_zeros_cached(models) -> None:  # noqa: F811
    """1- and 3-latent sessions at one frame size each take VACE's inactive zeros from a cache
    of their own chunk length: after a switch, still only the control is encoded."""
    store = store_with(control="edges")
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
    for chunk in (3, 1):
        warm_codecs(pipeline, pipeline.session_for(chunk))
    per_call = encodes_per_call(models, pipeline, store, {2: {"chunk_frames": 1},
                                                         4: {"chunk_frames": 3}}, 6)
    # (call 4 brought 4 frames, too few for the 3-latent session's first chunk: dropped)
    assert per_call == [1, 1, 1, 1, 0, 1]


def test_extra_suite_rows_run_only_when_named() -> None:
    import argparse

    from livevace.bench.pipeline import add_arguments
    from livevace.bench.suite import suite_keys

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = suite_keys(parser.parse_args([]))
    assert "vace-small" in default and not any(k.endswith(("-tae", "-serial")) for k in default)
    named = suite_keys(parser.parse_args(["--rows", "vace-small-serial,vace-small-2-tae"]))
    assert named == {"vace-small-serial", "vace-small-2-tae"}


def test_a_suite_past_its_deadline_reports_what_it_has(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from livevace.cli import main

    code = main(["bench", "pipeline", "--weights", "tiny-random", "--device", "cpu", "--suite",
                 "--rows", "vace-small", "--deadline", "0", "--out", str(tmp_path)])
    assert code == 0 and "not started: past the --deadline" in capsys.readouterr().out
    (record,) = tmp_path.glob("pipeline-suite-*.json")
    assert '"rows": []' in record.read_text()


def test_prepare_on_a_cpu_only_sets_the_prompt_for_an_eager_dit(models) -> None:  # noqa: F811
    """The first chunk of a prepared pipeline rebuilds no text K/V and shows what an
    unprepared one shows."""
    built = []
    set_text = models.dit.set_text
    store = store_with(control="edges")
    pictures = []
    for prepared in (False, True):
        pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
        try:
            if prepared:
                assert pipeline.prepare(progress=False) == 0.0
                assert not pipeline.annotation._workers  # no annotator started
            models.dit.set_text = lambda *a, **k: (built.append(prepared), set_text(*a, **k))
            out = pipeline([Frame(frame(k), 0.0, k) for k in range(9)], live(store))
            pictures.append(np.stack([f.image for f in out]))
        finally:
            models.dit.set_text = set_text
            pipeline.close()
    assert built == [False]  # built in the unprepared pipeline's first chunk only
    assert np.array_equal(*pictures)


def test_annotators_warm_up_at_every_chunk_length_and_forget_it(models) -> None:  # noqa: F811
    """(What `prepare` does on a GPU.) The warmed worker then annotates the first real chunk
    as a fresh one would: its temporal memory of the grey chunks is gone."""
    store = store_with(control="edges")
    warmed = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
    fresh = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=0)
    try:
        warm_annotators(warmed, [9], [12])
        assert warmed.annotation._workers["control"].active == "edges"  # built and run
        frames = [Frame(frame(k), 0.0, k) for k in range(9)]
        a, b = (images(p(list(frames), store.snapshot())) for p in (warmed, fresh))
    finally:
        warmed.close()
        fresh.close()
    assert np.array_equal(a, b)


@pytest.mark.parametrize("lookahead, chunks, batches", [
    (None, [1], ([1], [1, 4])),  # 1-latent chunks: frames annotated one by one too
    (1, [1], ([1], [4])),
    (None, [3], ([9], [12])),
    (0, [3, 1], ([1, 9], [1, 4, 12])),
])
def test_the_annotators_learn_the_batches_they_will_meet(models, lookahead, chunks,  # noqa: F811
                                                         batches) -> None:
    """`prepare` makes the depth network's fast path for these batch sizes (`warm_annotators`'
    second list): later chunks, and single frames where they come as captured."""
    store = store_with(control="edges")
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=lookahead)
    try:
        assert annotator_batches(pipeline, chunks) == batches
    finally:
        pipeline.close()


def test_run_takes_no_compile_through_the_registry(tmp_path: Path) -> None:
    assert "compile" in REGISTRY["vace"].options
    clip = make_clip(tmp_path / "in.mp4", 64, 64, seconds=1)
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "livevace", "run", "--pipeline", "vace", "--weights",
         "tiny-random", "--no-compile", "--source", f"video:{clip}", "--sink", f"record:{out}",
         "--width", "64", "--height", "64", "--fps", "30", "--max-frames", "12",
         "--osc-port", "-1", "--oscquery-port", "-1", "--no-zeroconf", "--no-preview",
         "--set", "control=edges"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.parametrize("overlap", [True, False])
def test_stage_times_add_up_per_chunk(models, overlap: bool) -> None:  # noqa: F811
    _, stats = play(models, overlap, {}, 4)
    for stage in ("annotate_wait", "cache", "encode", "dit", "decode"):
        assert stats[f"stage_{stage}_ms"] > 0
    assert "stage_encode_wait_ms" not in stats  # on a CPU nothing runs beside the DiT
    assert torch.get_num_threads() == 1  # (the module's one-thread fixture is active)
