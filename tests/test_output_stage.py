"""The output path: where interpolated frames fall, the pacer playing them at 60 fps from a
30 fps generator, scene cuts held instead of morphed (with the vace pipeline marking them),
upscaling to the size asked, and the fallbacks when weights are missing (one log line each).

Timing is real where the pacer runs; assertions are about order, content and counts, never
about intervals (a loaded machine only makes the pacer hold, which these checks tolerate).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from livevace.errors import ModelError
from livevace.frames import Frame, now
from livevace.output.interpolate import Schedule
from livevace.output.stage import OutputStage
from livevace.output.upscale import load_network
from livevace.pacing import Pacer
from livevace.stats import Stats
from pipeline_support import models, store_with  # noqa: F401  (fixture)
from polling import until
from test_node_pacing import Recorder
from test_output_rife import random_ifnet
from test_output_upscale import tiny

CPU = torch.device("cpu")
SIDE = 64


def picture(i: int) -> np.ndarray:
    """A bright square that moves 3 pixels a frame (an in-between differs from both)."""
    image = np.full((SIDE, SIDE, 3), 30, np.uint8)
    x = 4 + (3 * i) % 40
    image[20:40, x:x + 16] = (220, 180, 60)
    return image


def generated(start: int, count: int, fps: float = 30.0, t0: float = 100.0,
              cut_at: int | None = None) -> list[Frame]:
    return [Frame(picture(i), t0 + i / fps, i, {"cut": i == cut_at}) for i in
            range(start, start + count)]


def stage(emit=lambda frames: None, stats: Stats | None = None, rife=None, upscaler=None
          ) -> OutputStage:
    net = random_ifnet()

    def no_network(model, device, dtype):
        raise ModelError(f"{model} is not downloaded")

    return OutputStage(emit, stats, device=CPU, rife=rife or (lambda d, t: net),
                       upscaler=upscaler or no_network)


def test_30_fps_to_60_puts_one_in_between_before_every_frame_and_25_to_60_keeps_the_rate():
    schedule = Schedule()
    slots = schedule.plan(generated(0, 5), 60.0)
    assert [(s.a, s.b, s.t) for s in slots] == [
        (1, 1, 0.0), (1, 2, 0.5), (2, 2, 0.0), (2, 3, 0.5), (3, 3, 0.0), (3, 4, 0.5),
        (4, 4, 0.0), (4, 5, 0.5), (5, 5, 0.0)]
    stamps = [s.frame.t_capture for s in slots]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert schedule.latency_ms == pytest.approx(1e3 / 60)  # under one generated frame
    schedule = Schedule()
    schedule.plan(generated(0, 1, fps=25.0), 60.0)
    counts = [len(schedule.plan(generated(i, 1, fps=25.0), 60.0)) for i in range(1, 26)]
    assert sum(counts) == 60 and set(counts) == {2, 3}


def test_a_cut_holds_the_previous_picture_instead_of_morphing():
    schedule = Schedule()
    slots = schedule.plan(generated(0, 4, cut_at=2), 60.0)
    cut = [s for s in slots if s.frame.meta.get("held")]
    assert len(cut) == 1 and (cut[0].a, cut[0].b) == (2, 2)  # picture 2 is frame 1
    assert not any(s.between and s.b == 3 for s in slots)


def test_the_pacer_plays_a_30_fps_generator_at_60_every_second_frame_new():
    """The stage's bursts (made first: its CPU time here is no part of what is tested) go to
    the pacer as a 30 fps generator hands over chunks of 4 frames: at 60 fps they are
    exactly on rate, the case where nothing may be dropped."""
    stats, out = Stats(), Recorder()
    output = stage(stats=stats)
    chunk, chunks = 4, 6
    params = {"output_fps": 60, "output_size": (0, 0)}
    bursts = [output.process(generated(k * chunk, chunk), params) for k in range(chunks)]
    pacer = Pacer(60.0, out, stats)
    pacer.start()
    try:
        pushed, wait = -float("inf"), 0.0
        for burst in bursts:
            time.sleep(max(0.0, pushed + wait - now()))
            pushed, wait = now(), len(burst) / 60.0
            pacer.push(burst)
        until(lambda: pacer.depth == 0, "the pacer never took its queued frames")
    finally:
        pacer.stop()
    fresh = [f for _, f, is_fresh in out.snapshot() if is_fresh]
    total = chunk * chunks
    assert len(fresh) == 2 * total - 1  # nothing dropped: every frame and every in-between
    real = fresh[0::2]
    between = fresh[1::2]
    assert [f.index for f in real] == list(range(total))
    assert all("interpolated" not in f.meta for f in real)
    assert all(f.meta.get("interpolated") == 0.5 for f in between)
    for k, f in enumerate(between):  # new pictures, not repeats of a neighbour
        assert not np.array_equal(f.image, real[k].image)
        assert not np.array_equal(f.image, real[k + 1].image)
    stamps = [f.t_capture for f in fresh]
    assert stamps == sorted(stamps)
    snapshot = stats.snapshot()
    assert snapshot.get("dropped_pacer", 0) == 0 and snapshot.get("dropped_output", 0) == 0
    assert snapshot["interpolation_latency_ms"] == pytest.approx(1e3 / 60)


def test_both_off_passes_bursts_straight_through_on_the_callers_thread():
    got: list[list[Frame]] = []
    frames = generated(0, 3)
    stage(got.append).submit(frames, {"output_fps": 0, "output_size": (0, 0)})
    assert got == [frames]


def test_the_vace_pipeline_marks_resets_and_hard_prompt_cuts_and_none_is_morphed(
        models) -> None:  # noqa: F811
    from livevace.pipelines.vace.pipeline import StreamingVace
    from livevace.pipelines.vace.session import pixel_frames

    store = store_with(control="edges", transition_chunks=2)
    side = 64
    pipeline = StreamingVace(models, side, side, store.snapshot(), lookahead=0)
    output = stage()
    changes = {2: {"reset_cache": True}, 4: {"transition_chunks": 0, "prompt": "a red fox"}}
    index, cuts, outputs = 0, [], []
    try:
        for call in range(8):
            for name, value in changes.get(call, {}).items():
                store.set(name, value)
            params = store.snapshot()
            params["reset_cache"] = store.take_trigger("reset_cache")
            n = pixel_frames(pipeline.session.chunk, pipeline.session.first)
            frames = [Frame(picture(index + j), 10.0 + (index + j) / 30.0, index + j)
                      for j in range(n)]
            index += n
            out = pipeline(frames, params)
            cuts += [bool(f.meta["cut"]) for f in out]
            params.update(output_fps=60, output_size=(0, 0))
            outputs.append((out, output.process(out, params)))
    finally:
        pipeline.close()
    starts = list(np.cumsum([0] + [len(o) for o, _ in outputs]))
    marked = [i for i, c in enumerate(cuts) if c]
    # the stream's start, the reset, and the prompt cut once its embedding has arrived
    assert marked[:2] == [0, starts[2]] and len(marked) == 3
    prompt_cut = starts.index(marked[2])
    assert prompt_cut >= 4
    for call in (2, prompt_cut):
        generated_frames, made = outputs[call]
        before = outputs[call - 1][0][-1]
        first = next(k for k, f in enumerate(made) if not f.meta.get("held"))
        assert first >= 1 and not any("interpolated" in f.meta for f in made[:first + 1])
        for held in made[:first]:  # the old picture held on the cut's slots
            assert np.array_equal(held.image, before.image)
        assert np.array_equal(made[first].image, generated_frames[0].image)  # then the new
    # every other chunk starts with an in-between of its first frame and the one before
    for call in set(range(1, 8)) - {2, prompt_cut}:
        assert outputs[call][1][0].meta.get("interpolated") == 0.5


def test_missing_rife_weights_repeat_frames_with_one_log_line(caplog):
    def missing(device, dtype):
        raise ModelError("RIFE v4.25 flownet is not downloaded: run `livevace models pull "
                         "rife_v4_25`")

    output = stage(rife=missing)
    params = {"output_fps": 60, "output_size": (0, 0)}
    with caplog.at_level(logging.WARNING, logger="livevace.output"):
        made = [f for k in range(3) for f in output.process(generated(4 * k, 4), params)]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "frames are repeated" in lines[0] and "rife_v4_25" in lines[0]
    assert len(made) == 2 * 12 - 1
    for k in range(1, len(made), 2):
        assert np.array_equal(made[k].image, made[k - 1].image)


def test_upscaling_gives_the_size_asked_by_network_or_by_lanczos(tmp_path, caplog):
    path = tmp_path / "compact.pth"
    torch.save(tiny("Compact", 2).state_dict(), path)
    with_network = stage(upscaler=lambda model, device, dtype: load_network(path, device, dtype))
    params = {"output_fps": 0, "output_size": (150, 0), "upscale_model": "mine"}
    frames = generated(0, 2)
    out = with_network.process(frames, params)
    assert [f.image.shape for f in out] == [(150, 150, 3)] * 2
    assert [f.index for f in out] == [0, 1]
    with caplog.at_level(logging.WARNING, logger="livevace.output"):
        plain = stage()
        for _ in range(2):
            resized = plain.process(frames, {**params, "output_size": (96, 80)})
    assert [f.image.shape for f in resized] == [(80, 96, 3)] * 2
    assert not np.array_equal(out[0].image[:80, :96], resized[0].image)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "Lanczos" in lines[0] and "not downloaded" in lines[0]
    both = stage().process(generated(0, 3), {"output_fps": 60, "output_size": (96, 96)})
    assert len(both) == 5 and all(f.image.shape == (96, 96, 3) for f in both)


@pytest.mark.gpu
def test_on_the_gpu_a_chunk_becomes_1080p60_in_half_precision_on_the_stages_stream(monkeypatch):
    """832x480 at 30 fps → 1920x1080 at 60 fps with the catalogue's SPAN shape (random). The
    frame budget is lifted: whether SPAN fits it is the benchmark's question, not this test's."""
    from livevace.bench.output import _network, networks
    from livevace.output import stage as stage_module

    monkeypatch.setattr(stage_module, "BUDGET_SHARE", 1e6)

    device = torch.device("cuda")
    net = random_ifnet().to(device, torch.float16)
    span = _network("span", networks(tiny=False)["span"], 2, device, torch.float16)
    output = OutputStage(lambda frames: None, device=device, rife=lambda d, t: net,
                         upscaler=lambda m, d, t: span)
    assert output.dtype == torch.float16 and output.stream is not None
    assert output.stream.priority == stage_module.STREAM_PRIORITY  # ahead of the generator's
    frames = [Frame(np.random.default_rng(i).integers(0, 256, (480, 832, 3), dtype=np.uint8),
                    i / 30.0, i) for i in range(12)]
    params = {"output_fps": 60, "output_size": (1920, 1080), "upscale_model": "span"}
    out = output.process(frames, params)
    assert len(out) == 23 and all(f.image.shape == (1080, 1920, 3) for f in out)
    assert output.upscaling.startswith("span (")
    between = [f for f in out if "interpolated" in f.meta]
    assert len(between) == 11 and all(f.image.std() > 0 for f in between)
    # as the node runs it: in line, the copy to the host finished on the stage's thread
    got: list[list[Frame]] = []
    inline = OutputStage(got.append, device=device, rife=lambda d, t: net,
                         upscaler=lambda m, d, t: span)
    assert inline.inline
    inline.submit(frames, params)
    assert inline.drain(timeout=60)
    inline.stop()
    assert len(got) == 1 and [f.index for f in got[0]] == [f.index for f in out]
    assert all(np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
               for a, b in zip(got[0], out))


def test_a_network_upscales_before_interpolation_and_lanczos_after(tmp_path):
    """The auto order: the dear network sees only the generated frames; IFNet then works at
    the output size. With Lanczos alone, IFNet works at the generated size."""
    path = tmp_path / "compact.pth"
    torch.save(tiny("Compact", 2).state_dict(), path)
    net, seen = random_ifnet(), []
    pairs = net.pairs
    net.pairs = lambda packed: seen.append(tuple(packed.shape[-2:])) or pairs(packed)
    params = {"output_fps": 60, "output_size": (128, 128), "upscale_model": "mine"}
    with_network = stage(rife=lambda d, t: net,
                         upscaler=lambda model, device, dtype: load_network(path, device, dtype))
    assert len(with_network.process(generated(0, 3), params)) == 5
    plain = stage(rife=lambda d, t: net)
    assert len(plain.process(generated(0, 3), params)) == 5
    assert seen == [(128, 128), (SIDE, SIDE)]


def test_a_change_of_path_is_no_cut_the_stage_goes_on_as_if_always_on_the_new_one(tmp_path):
    """From the network (upscaled first, in-betweens at the output size) to Lanczos alone
    (in-betweens at the generated size) mid-stream: the next burst is exactly what a stage
    that had been on the Lanczos path all along makes, the in-between across the change
    included."""
    path = tmp_path / "compact.pth"
    torch.save(tiny("Compact", 2).state_dict(), path)
    net = random_ifnet()
    with_network = {"output_fps": 60, "output_size": (128, 128), "upscale_model": "mine"}
    lanczos = {**with_network, "upscale_model": "lanczos"}
    switched = stage(rife=lambda d, t: net,
                     upscaler=lambda model, device, dtype: load_network(path, device, dtype))
    always = stage(rife=lambda d, t: net)
    switched.process(generated(0, 3), with_network)
    always.process(generated(0, 3), lanczos)
    got, want = switched.process(generated(3, 3), lanczos), always.process(generated(3, 3), lanczos)
    assert len(got) == len(want) == 6 and "interpolated" in got[0].meta
    for a, b in zip(got, want):
        assert (a.index, a.meta) == (b.index, b.meta)
        assert np.array_equal(a.image, b.image)


def test_the_node_opens_its_sinks_at_the_output_format_and_follows_a_live_rate():
    """pattern 64x48 at 30 fps → passthrough → 96x64 at 60 fps (no RIFE weights here: the
    slots between frames repeat, evenly)."""
    from livevace.config import RunConfig
    from livevace.io.pattern import PatternSource
    from livevace.loop import Node
    from livevace.params import ParamStore
    from livevace.pipelines.passthrough import Passthrough
    from test_node_lifecycle import Collect

    class Opened(Collect):
        def open(self, width: int, height: int, fps: float) -> None:
            self.opened = (width, height, fps)

    store = ParamStore()
    store.update({"output_fps": 60, "output_size": (96, 64), "upscale_model": "lanczos"})
    sink = Opened()
    config = RunConfig(width=64, height=48, fps=30.0, sinks=(), preview="off")
    node = Node(config, store, Passthrough(), PatternSource(64, 48, 30.0), [sink])
    node.start()
    try:
        until(lambda: len(sink.frames) >= 20, "no output")
        store.set("output_fps", 50)
        until(lambda: node.pacer.fps == 50.0, "the pacer kept its rate")
    finally:
        node.close()
    assert sink.opened == (96, 64, 60.0)
    assert all(f.image.shape == (64, 96, 3) for f in sink.frames)
    assert any(f.meta.get("repeat") for f in sink.frames)


def test_a_fault_mid_show_sends_that_burst_as_generated_then_falls_back_saying_so_once(caplog):
    class OutOfMemory(torch.nn.Module):
        encode = staticmethod(lambda x: x)

        def pairs(self, packed):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    got: list[list[Frame]] = []
    output = stage(got.append, rife=lambda d, t: OutOfMemory())
    params = {"output_fps": 60, "output_size": (0, 0)}
    with caplog.at_level(logging.WARNING, logger="livevace.output"):
        for k in range(3):
            output.submit(generated(4 * k, 4), params)
            assert output.drain(timeout=30)
        output.stop()
    assert [len(burst) for burst in got] == [4, 8, 8]  # as generated, then repeats
    assert [f.index for f in got[0]] == [0, 1, 2, 3]
    # each slot before a frame shows the frame before it: 3, 4, 4, 5, 5, 6, 6, 7
    assert [f.index for f in got[1]] == [3, 4, 4, 5, 5, 6, 6, 7]
    assert all(np.array_equal(got[1][k].image, got[1][k - 1].image) for k in (2, 4, 6))
    assert np.array_equal(got[1][0].image, got[0][3].image)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "out of memory" in lines[0] and "repeated" in lines[0]


def test_in_betweens_made_in_padded_batches_equal_those_made_one_batch_exactly():
    """The in-between batch is padded to a multiple of BATCH_STEP (few shapes for cuDNN's
    autotuning); the padding is computed and thrown away, never shown."""
    from livevace.output.interpolate import BATCH_STEP, Interpolator, Schedule, pad

    net = random_ifnet()
    frames = generated(0, 4)  # 3 in-betweens after the first frame: not a multiple of 4
    slots = Schedule().plan(frames, 60.0)
    between = [k for k, s in enumerate(slots) if s.between]
    assert len(between) % BATCH_STEP != 0
    pictures = torch.stack([torch.from_numpy(f.image).permute(2, 0, 1).float() / 255
                            for f in [frames[0], *frames]])
    out = Interpolator(net).render(pictures.clone(), slots)
    padded = pad(pictures)
    with torch.inference_mode():
        for k in between:
            s = slots[k]
            one = net(padded[[s.a]], padded[[s.b]], torch.tensor([s.t]))[..., :SIDE, :SIDE]
            assert torch.allclose(out[k], one[0].clamp(0, 1), atol=1e-5)
    assert out.shape[0] == len(slots)


def test_a_burst_reports_its_parts_and_its_slots():
    stats = Stats()
    stage(stats=stats).process(generated(0, 4), {"output_fps": 60})
    s = stats.snapshot()
    assert s["output_slots"] == 7  # the first frame, then an in-between before each other
    for part in ("upload", "render", "download"):
        assert s[f"stage_output_{part}_ms"] > 0


def test_a_stuck_stage_is_gone_round_and_its_late_burst_dropped(monkeypatch, caplog):
    """A burst that holds the stage over STALL bursts' play time (here a network load that
    hangs) does not starve the show: later bursts go out at once at the output size, said
    once, and the stuck burst, when it ends, is dropped rather than shown out of order."""
    import threading

    from livevace.output import stage as stage_module

    monkeypatch.setattr(stage_module, "STALL", 0.1)  # 0.1 × 4 frames at 30 fps: 13 ms
    release, entered = threading.Event(), threading.Event()
    net = random_ifnet()

    def hanging_rife(device, dtype):
        entered.set()
        release.wait(30)
        return net

    emitted: list[list[Frame]] = []
    stats = Stats()
    output = OutputStage(emitted.append, stats, device=CPU, rife=hanging_rife,
                         upscaler=lambda m, d, t: None)
    params = {"output_fps": 60, "output_size": (96, 96)}
    try:
        output.submit(generated(0, 4), params)
        assert entered.wait(30)
        time.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="livevace.output"):
            output.submit(generated(4, 4), params)
            output.submit(generated(8, 4), params)
        assert [[f.index for f in burst] for burst in emitted] == [[4, 5, 6, 7], [8, 9, 10, 11]]
        assert all(f.image.shape == (96, 96, 3) for burst in emitted for f in burst)
        assert sum("stuck" in r.getMessage() for r in caplog.records) == 1
        release.set()
        assert output.drain(30)
        assert len(emitted) == 2  # the stuck burst came too late to show
        s = stats.snapshot()
        assert s["output_bypassed"] == 2 and s["dropped_output"] >= 1
        output.submit(generated(12, 4), params)  # the stage is back: in-betweens again
        assert output.drain(30)
        assert len(emitted) == 3 and any("interpolated" in f.meta for f in emitted[-1])
    finally:
        release.set()
        output.stop()


def test_prepare_loads_the_networks_before_the_show_and_changes_no_picture(tmp_path):
    """`prepare` (the node calls it before its loop) loads what the parameters ask, so the
    first burst loads nothing; the bursts are then what an unprepared stage makes; with the
    path off it loads nothing at all."""
    path = tmp_path / "compact.pth"
    torch.save(tiny("Compact", 2).state_dict(), path)
    net, loads = random_ifnet(), []

    def rife(device, dtype):
        loads.append("rife")
        return net

    def upscaler(model, device, dtype):
        loads.append(model)
        return load_network(path, device, dtype)

    params = {"output_fps": 60, "output_size": (128, 128), "upscale_model": "mine"}
    prepared, plain = (stage(rife=rife, upscaler=upscaler) for _ in range(2))
    assert prepared.prepare([3], (SIDE, SIDE), {"output_fps": 0}) == 0.0 and loads == []
    assert prepared.prepare([2, 3], (SIDE, SIDE), params) > 0.0
    assert loads == ["mine", "rife"]
    bursts = [(generated(0, 3), generated(3, 3)), (generated(0, 3), generated(3, 3))]
    made = [[s.process(b, params) for b in bursts[k]] for k, s in enumerate((prepared, plain))]
    assert sorted(loads[2:]) == ["mine", "rife"]  # the plain stage's: the prepared, no more
    for ours, theirs in zip(*made):
        assert [f.index for f in ours] == [f.index for f in theirs]
        assert all(np.array_equal(a.image, b.image) for a, b in zip(ours, theirs))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_prepare_replays_the_networks_from_graphs_for_the_bursts_it_named(tmp_path):
    """IFNet's features and in-betweens (at the generated size) and the upscaler are
    compiled and captured for bursts of 3; such bursts replay them and make the pictures of
    the plain networks (half precision: within 1 of 255 on average); the upscaler on the
    prepared path, IFNet once the network steps down (Lanczos)."""
    from livevace.models.rife import PACKED

    path = tmp_path / "compact.pth"
    torch.save(tiny("Compact", 2).state_dict(), path)
    cuda = torch.device("cuda")
    net = random_ifnet()
    stages = [OutputStage(lambda f: None, device=cuda, rife=lambda d, t: net.to(d, t),
                          upscaler=lambda m, d, t: load_network(path, d, t), inline=True)
              for _ in range(2)]
    lanczos = {"output_fps": 60, "output_size": (128, 128), "upscale_model": "lanczos"}
    network = {**lanczos, "upscale_model": "mine"}
    prepared, plain = stages
    prepared.prepare([3], (SIDE, SIDE), network)
    features = prepared._interpolator.features
    assert (4, 3, SIDE, SIDE) in features.shapes
    assert (4, PACKED, SIDE, SIDE) in prepared._interpolator.pairs.shapes
    assert (3, 3, SIDE, SIDE) in prepared._upscaler[1].network.run.shapes
    for params in (network, lanczos):
        for k in range(3):
            ours, theirs = (s.process(generated(3 * k, 3), params) for s in stages)
            assert [f.index for f in ours] == [f.index for f in theirs]
            assert max(float(np.abs(a.image.astype(float) - b.image.astype(float)).mean())
                       for a, b in zip(ours, theirs)) <= 1.0
    assert features.graphs.replays >= 3 and prepared._interpolator.pairs.graphs.replays >= 3
