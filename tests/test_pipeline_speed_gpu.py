"""The vace pipeline's fast path on a CUDA GPU, with the tiny random models (skipped without
one): CUDA graphs are captured and the VAE encoder compiled in `prepare`, never while the
show runs (resets, recaches, VACE off and on, cache writes without VACE at a zero refinement
scale replay or step eagerly; an unprepared chunk
size steps eagerly), the pictures match the eager pipeline's, and the context encoded on its
own CUDA stream gives the pictures of the serial order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from livevace.frames import Frame
from livevace.models.wan.compiled import Acceleration
from livevace.models.wan.vae_compiled import SteadyCausal
from livevace.pipelines.vace.fast import LiveGraphs, accelerate, live_graphs
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.tiny import tiny_random
from pipeline_support import SIZE, images, store_with
from test_pipeline_speed_overlap import frame, live

pytestmark = pytest.mark.gpu

SCRIPT = {3: {"reset_cache": True},
          4: {"vace_refinement_scale": 0.0},  # cache writes skip VACE: the no-VACE graphs
          5: {"prompt": "a blue whale"},  # a cut: recache of the cached frames
          6: {"vace_enabled": False, "noise_scale": 1.0},
          8: {"vace_enabled": True, "control": "none"}}


@pytest.fixture(scope="module")
def cuda_models():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    models = tiny_random(device="cuda")
    yield models
    models.close()


def play(models, script: dict[int, dict], calls: int, *, overlap: bool = True,  # noqa: ANN001
         prepare: dict | None = None) -> tuple[list[np.ndarray], StreamingVace]:
    store = store_with(control="edges", seed=5, transition_chunks=0)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=1, overlap=overlap)
    if prepare is not None:
        pipeline.prepare(progress=False, **prepare)
    outs, index = [], 0
    for i in range(calls):
        for name, value in script.get(i, {}).items():
            store.set(name, value)
        n = pipeline.frames_per_call
        out = pipeline([Frame(frame(index + k), float(index + k), index + k) for k in range(n)],
                       live(store))
        index += n
        if out:
            outs.append(images(out))
    return outs, pipeline


def test_graphs_are_captured_in_prepare_and_never_live(cuda_models) -> None:
    eager, plain = play(cuda_models, SCRIPT, 10)
    plain.close()
    accelerate(cuda_models.dit, Acceleration(cuda_graph=True))
    steady = cuda_models.vae.steady = SteadyCausal(cuda_models.vae.encoder, from_start=True)
    try:
        graphs = live_graphs(cuda_models.dit)
        assert isinstance(graphs, LiveGraphs)
        store = store_with(control="edges", seed=5, transition_chunks=0)
        pipeline = StreamingVace(cuda_models, SIZE, SIZE, store.snapshot(), lookahead=1)
        pipeline.prepare(progress=False)
        captured = graphs.captures
        assert captured == 8  # window 3, 6, 9, 12 frames, with and without VACE
        assert graphs.text_captures == 1  # the stream cache's text K/V rebuild
        pipeline.close()
        learned = set(steady.shapes)
        assert len(learned) >= 2  # the VAE encoder's first and later passes, compiled there
        calls = steady.calls
        fast, pipeline = play(cuda_models, SCRIPT, 10, prepare={})
        assert graphs.captures == 2 * captured and graphs.eager_steps == 0  # none while live
        assert graphs.text_captures == 2  # the prompt cut replayed the prepared one
        assert steady.calls > calls + 5 and steady.shapes == learned  # replayed, never compiled live
        assert len(fast) == len(eager)
        for a, b in zip(fast, eager):  # uint8 pictures: float rounding at most
            assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
        store = store_with(control="edges", seed=5, chunk_frames=1)  # never prepared
        sizes = []
        for _ in range(3):
            n = pipeline.frames_per_call
            sizes.append(len(pipeline([Frame(frame(k), 0.0, k) for k in range(n)],
                                      live(store))))
        assert sizes == [1, 4, 4]  # the new session's first chunk is one frame
        assert graphs.captures == 2 * captured and graphs.eager_steps > 0  # eager, no capture
        assert steady.shapes == learned  # the new size's encodes ran eagerly, uncompiled
        pipeline.close()
    finally:
        accelerate(cuda_models.dit, Acceleration())
        cuda_models.vae.steady = None


def test_both_chunk_sizes_prepared_switch_without_eager_steps(cuda_models) -> None:
    accelerate(cuda_models.dit, Acceleration(cuda_graph=True))
    try:
        graphs = live_graphs(cuda_models.dit)
        outs, pipeline = play(cuda_models, {2: {"chunk_frames": 1}, 6: {"chunk_frames": 3}}, 10,
                              prepare={"chunk_sizes": (3, 1), "vace_modes": (True,)})
        captured = graphs.captures
        assert [len(o) for o in outs][:3] == [9, 1, 4] and 9 in [len(o) for o in outs[3:]]
        assert graphs.eager_steps == 0 and graphs.captures == captured
        pipeline.close()
    finally:
        accelerate(cuda_models.dit, Acceleration())


def test_context_on_its_own_stream_matches_the_serial_order(cuda_models) -> None:
    script = {4: {"control": "none"}, 6: {"reset_cache": True}}
    serial, a = play(cuda_models, script, 9, overlap=False)
    ahead, b = play(cuda_models, script, 9, overlap=True)
    stats = b.stats.snapshot()
    assert b.lane.separate and not a.lane.separate
    a.close()
    b.close()
    assert stats["encode_ahead_used"] >= 4 and stats["encode_ahead_discarded"] >= 1
    assert "stage_encode_wait_ms" in stats  # the DiT waited on the lane's event, on the GPU
    assert [o.shape for o in ahead] == [o.shape for o in serial]
    for x, y in zip(ahead, serial):  # the same kernels on the same inputs
        assert np.abs(x.astype(int) - y.astype(int)).mean() < 0.5
