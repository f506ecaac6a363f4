"""One node on several ranks (gloo CPU processes, tiny random model): the same frames as one
process for every split, a lost rank that the stream survives, no process left behind."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Callable

import psutil
import pytest
import torch
from lora_support import peft_lora, write
from wan_support import one_thread, randomise  # noqa: F401

from livevace.distributed.facade import RankedSampler, RankedStreams
from livevace.distributed.launch import MULTICAST_OFF, Ranks, devices
from livevace.errors import UserError
from livevace.models.wan import zoo
from livevace.models.wan.config import TINY_VACE
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.ema_sink import set_sink_alpha
from livevace.models.wan.lora_live import LiveLoras
from livevace.models.wan.recipe import Recipe
from livevace.models.wan.sampler import StreamSampler
from livevace.pipelines.vace.loras import SLOTS, LoraSlots

CFG = replace(TINY_VACE, name="tiny-4-heads", num_heads=4)
"""Four heads (and 4×4 tokens a frame at 8×8 latents) split over up to four ranks."""
RECIPE = replace(zoo.recipe("longlive"), config=CFG)
SIZE = 8


@pytest.fixture(scope="module")
def model() -> WanDiT:
    return randomise(WanDiT(CFG)).eval().requires_grad_(False)


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(1, 5, CFG.text_dim, generator=g),
            torch.randn(1, 7, CFG.text_dim, generator=g),
            torch.randn(1, CFG.vace_in_channels, 3, SIZE, SIZE, generator=g))


def show(sampler: StreamSampler) -> list[torch.Tensor]:
    """VACE control, then t2v, a hard prompt cut (recache), a cache reset."""
    first, second, control = inputs()
    sampler.set_text(first)
    frames = [sampler.generate_chunk(vace=control), sampler.generate_chunk()]
    sampler.set_text(second)
    sampler.recache()
    frames.append(sampler.generate_chunk(vace=control))
    sampler.reset()
    frames.append(sampler.generate_chunk(vace=control))
    return frames


def one_process(model: WanDiT) -> list[torch.Tensor]:
    return show(zoo.open_stream(RECIPE, model, SIZE, SIZE, 3, None, 0))


def workers() -> list[psutil.Process]:
    """This process's children but multiprocessing's resource tracker (one per process,
    shared, not ours to stop)."""
    return [p for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())]


@pytest.mark.parametrize("split,world", [("vace", 2), ("ulysses", 2), ("ulysses", 4),
                                         ("vace", 4)])
def test_frames_equal_one_process(model: WanDiT, split: str, world: int) -> None:
    expected = one_process(model)
    ranks = Ranks(devices(str(world)), split)
    ranks.start()
    streams = RankedStreams(ranks)
    try:
        started = workers()
        assert len(started) == world - 1
        assert all(os.environ[k] == v for k, v in MULTICAST_OFF.items())
        sampler = streams(RECIPE, model, SIZE, SIZE, 3, None, 0)
        assert isinstance(sampler, RankedSampler)
        frames = show(sampler)  # type: ignore[arg-type]
        assert not sampler.alone
    finally:
        streams.close()
    assert model.split is None
    for got, want in zip(frames, expected):
        if split == "vace" and world == 2:  # work only moved: the same bits
            assert torch.equal(got, want)
        else:  # re-partitioned matrix products: the same numbers within rounding
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert not alive


def test_lost_rank_stream_goes_on(model: WanDiT, caplog: pytest.LogCaptureFixture) -> None:
    expected = one_process(model)
    ranks = Ranks(devices("2"), "vace")
    ranks.start()
    streams = RankedStreams(ranks)
    first, second, control = inputs()
    try:
        sampler = streams(RECIPE, model, SIZE, SIZE, 3, None, 0)
        sampler.set_text(first)
        frames = [sampler.generate_chunk(vace=control)]
        (worker,) = ranks.workers
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        with caplog.at_level(logging.ERROR, "livevace.distributed"):
            frames.append(sampler.generate_chunk())
        assert sampler.alone
        assert "rank 1 (cpu)" in caplog.text and "-9" in caplog.text
        sampler.set_text(second)
        sampler.recache()
        frames.append(sampler.generate_chunk(vace=control))
    finally:
        streams.close()
    for got, want in zip(frames, expected):  # rank 0 held the whole cache: not a bit lost
        assert torch.equal(got, want)
    assert not workers()


def test_ulysses_rank_lost_mid_stream_recaches(model: WanDiT) -> None:
    ranks = Ranks(devices("2"), "ulysses")
    ranks.start()
    streams = RankedStreams(ranks)
    first, _, control = inputs()
    try:
        sampler = streams(RECIPE, model, SIZE, SIZE, 3, None, 0)
        sampler.set_text(first)
        sampler.generate_chunk(vace=control)
        assert sampler.cache.k.shape[2] == CFG.num_heads // 2
        os.kill(ranks.workers[0].pid, signal.SIGKILL)
        x0 = sampler.generate_chunk(vace=control)
        assert sampler.alone and sampler.cache.k.shape[2] == CFG.num_heads
        assert sampler.cache.next_frame == 6 and torch.isfinite(x0).all()
    finally:
        streams.close()
    assert not workers()


def test_ctrl_c_reaches_rank_0_only(model: WanDiT) -> None:
    ranks = Ranks(devices("2"), "ulysses")
    ranks.start()
    try:
        (worker,) = workers()
        worker.send_signal(signal.SIGINT)
        assert worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
    finally:
        ranks.close()
    assert not workers()


def test_bad_requests_are_one_line_errors(model: WanDiT) -> None:
    with pytest.raises(UserError, match="count"):
        devices("two")
    with pytest.raises(UserError, match="no CUDA"):
        devices("0,2")
    ranks = Ranks(devices("2"), "ulysses")
    ranks.start()
    streams = RankedStreams(ranks)
    try:
        with pytest.raises(UserError, match="tokens per frame"):
            streams(RECIPE, model, 2, 6, 3, None, 0)  # 1×3 tokens a frame
        with pytest.raises(UserError, match="MemoryBankCache is not split by heads"):
            streams(replace(zoo.recipe("memflow"), config=CFG), model, SIZE, SIZE, 3, None, 0)
    finally:
        streams.close()


def test_livevace_run_gpus_on_cpu_ranks(tmp_path) -> None:
    """`livevace run --gpus 2` without CUDA: two gloo ranks make the video, and nothing of
    them outlives the node (found by a mark in their inherited environment)."""
    out, mark = tmp_path / "out.mp4", f"scale-test-{os.getpid()}"
    proc = subprocess.run(
        [sys.executable, "-m", "livevace", "run", "--osc-port", "-1", "--oscquery-port", "-1",
         "--no-zeroconf", "--no-preview", "--pipeline", "vace", "--weights", "tiny-random",
         "--gpus", "2", "--split", "vace", "--sink", f"record:{out}", "--max-frames", "12"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "LIVEVACE_MARK": mark})
    assert proc.returncode == 0, proc.stderr
    assert "2 ranks on cpu, cpu, split vace" in proc.stderr
    assert "recording finished" in proc.stderr and "(12 frames)" in proc.stderr
    left = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.environ().get("LIVEVACE_MARK") == mark:
                left.append(p)
    assert not left



def test_rank_that_hangs_is_named_and_the_stream_goes_on(
        model: WanDiT, caplog: pytest.LogCaptureFixture) -> None:
    """Rank 1 on the meta device computes nothing and sends nothing: rank 0's collective
    times out, the log names the rank, and the stream runs in rank 0 alone, frame for frame
    as one process."""
    expected = one_process(model)
    ranks = Ranks([torch.device("cpu"), torch.device("meta")], "vace", timedelta(seconds=3))
    ranks.start()
    streams = RankedStreams(ranks)
    try:
        with caplog.at_level(logging.ERROR, "livevace.distributed"):
            frames = show(streams(RECIPE, model, SIZE, SIZE, 3, None, 0))
        assert "lost rank 1 (meta): did not answer within 3 s" in caplog.text
    finally:
        streams.close()
    for got, want in zip(frames, expected):
        assert torch.equal(got, want)
    assert not workers()


def live_show(sampler: StreamSampler, change: Callable[[int], None]) -> list[torch.Tensor]:
    """Five chunks (past the window: the EMA sink takes evicted frames), `change(i)` before
    chunk i, as the pipeline makes live changes at chunk boundaries."""
    first, _, control = inputs()
    sampler.set_text(first)
    frames = []
    for i in range(5):
        change(i)
        frames.append(sampler.generate_chunk(vace=control))
    return frames


def on_two_ranks(model: WanDiT, recipe: Recipe,
                 show_on: Callable[[StreamSampler, RankedStreams], list[torch.Tensor]]
                 ) -> list[torch.Tensor]:
    ranks = Ranks(devices("2"), "vace")
    ranks.start()
    streams = RankedStreams(ranks)
    try:
        sampler = streams(recipe, model, SIZE, SIZE, 3, None, 0)
        frames = show_on(sampler, streams)  # type: ignore[arg-type]
        assert not sampler.alone
    finally:
        streams.close()
    return frames


def test_ema_sink_alpha_reaches_every_rank(model: WanDiT) -> None:
    recipe = replace(zoo.recipe("reward-forcing"), config=CFG)

    def show_on(sampler: StreamSampler, _: object = None) -> list[torch.Tensor]:
        return live_show(sampler, lambda i: i == 2 and set_sink_alpha(sampler.cache, 0.2))

    expected = show_on(zoo.open_stream(recipe, model, SIZE, SIZE, 3, None, 0))
    unchanged = live_show(zoo.open_stream(recipe, model, SIZE, SIZE, 3, None, 0), lambda i: None)
    assert not torch.equal(expected[-1], unchanged[-1])  # the change shows
    for got, want in zip(on_two_ranks(model, recipe, show_on), expected):
        assert torch.equal(got, want)


def test_live_lora_merges_on_every_rank(model: WanDiT, tmp_path: Path) -> None:
    branches = [n for n, m in model.named_modules()  # both halves of the vace split
                if isinstance(m, torch.nn.Linear) and n.split(".")[0] in ("blocks", "vace_blocks")]
    pairs, _ = peft_lora(model, 2, 2.0, seed=3, modules=branches)
    path = str(write(tmp_path / "style.safetensors", "peft", pairs))
    scales = {1: 1.0, 3: 0.4, 4: 0.0}  # merged at chunk 1, turned down at 3, out at 4

    def show_on(sampler: StreamSampler, slots: LoraSlots) -> list[torch.Tensor]:
        asked = [("", 0.0)] * SLOTS
        scale = 0.0

        def change(i: int) -> None:
            nonlocal scale
            scale = scales.get(i, scale)
            slots.update([(path if scale else "", scale), *asked[1:]], 0, wait=True)

        try:
            return live_show(sampler, change)
        finally:
            slots.close()

    alone = copy.deepcopy(model)
    expected = show_on(zoo.open_stream(RECIPE, alone, SIZE, SIZE, 3, None, 0),
                       LoraSlots(LiveLoras(alone)))
    ranked = copy.deepcopy(model)
    got = on_two_ranks(ranked, RECIPE, lambda sampler, streams: show_on(
        sampler, LoraSlots(streams.live_loras(ranked))))
    for g, want in zip(got, expected):
        assert torch.equal(g, want)
