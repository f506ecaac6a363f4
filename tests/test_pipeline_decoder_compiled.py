"""The compiled Wan VAE decoder in the pipeline (`decoder=wan`): the codec warm-up of
`prepare` (`warmup.warm_codecs`, on a GPU; called here directly) learns its later latents'
shapes, the show replays them and never compiles, and the frames are the eager decoder's. The
"aot_eager" backend keeps the CPU suite free of a C++ compile."""

from __future__ import annotations

import numpy as np

from livevace.frames import Frame
from livevace.models.wan.vae_compiled import SteadyCausal
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.warmup import warm_codecs
from pipeline_support import SIZE, images, models, one_thread, store_with  # noqa: F401
from test_pipeline_speed_overlap import frame, live


def show(models, calls: int, prepare: bool) -> list[np.ndarray]:  # noqa: ANN001
    store = store_with(control="edges", seed=5, transition_chunks=0, decoder="wan")
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=1)
    try:
        if prepare:
            warm_codecs(pipeline, pipeline.session)
        outs, index = [], 0
        for _ in range(calls):
            n = pipeline.frames_per_call
            out = pipeline([Frame(frame(index + k), float(index + k), index + k)
                            for k in range(n)], live(store))
            index += n
            if out:
                outs.append(images(out))
        return outs
    finally:
        pipeline.close()


def test_prepare_learns_the_wan_decoder_and_the_show_replays_it(models) -> None:
    eager = show(models, 5, prepare=False)
    steady = models.vae.steady_decoder = SteadyCausal(models.vae.decoder, "decoder",
                                                      conv2d=True, backend="aot_eager")
    try:
        warmed = show(models, 0, prepare=True)
        learned, calls = set(steady.shapes), steady.calls
        assert not warmed and len(learned) == 2  # the second latent's shape, then the steady one
        fast = show(models, 5, prepare=False)
        assert steady.calls > calls + 5 and steady.shapes == learned  # replayed, never learned live
    finally:
        models.vae.steady_decoder = None
    assert len(fast) == len(eager)
    for a, b in zip(fast, eager):  # uint8 pictures: float rounding at most
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
