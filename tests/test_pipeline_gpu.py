"""The vace pipeline's CUDA path with the tiny random models (skipped without a GPU): pinned
staging buffers, the encoders and decoders on the device, stage times from CUDA events, and
the same pictures as on the CPU within float tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.tiny import tiny_random
from pipeline_support import SIZE, store_with
from test_pipeline_vace import clip

pytestmark = pytest.mark.gpu

SETTINGS = dict(control="edges", mask="person", outpaint=(0.25, 0.0, 0.0, 0.0), seed=5)


def render(device: str) -> tuple[list[np.ndarray], dict[str, float]]:
    models = tiny_random(device=device)
    store = store_with(**SETTINGS)
    pipeline = StreamingVace(models, SIZE, SIZE, store.snapshot(), lookahead=1)
    outs = [pipeline(frames, store.snapshot()) for frames in clip(4)]
    stats = pipeline.stats.snapshot()
    pipeline.close()
    models.close()
    return [np.stack([f.image for f in out]) for out in outs if out], stats


def test_cuda_matches_the_cpu_and_times_its_stages() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu, stats = render("cuda")
    cpu, _ = render("cpu")
    assert [o.shape for o in gpu] == [o.shape for o in cpu] == [(9, SIZE, SIZE, 3)] + [(12, SIZE, SIZE, 3)] * 2
    for a, b in zip(gpu, cpu):  # uint8 pictures: a few levels of float difference at most
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0
    for stage in ("encode", "dit", "decode"):
        assert stats[f"stage_{stage}_ms"] > 0


def test_real_weights_generate_at_576x320() -> None:
    """With the catalogue's weights on this machine (`livevace models pull`), else skipped."""
    from livevace.config import RunConfig
    from livevace.errors import ModelError
    from livevace.frames import Frame
    from livevace.pipelines import create

    store = store_with(control="edges", prompt="a dancer made of ink, cinematic light")
    config = RunConfig(width=576, height=320, sinks=(), preview="off")
    try:
        pipeline = create("vace", config, store)
    except ModelError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(0)
    try:
        outs = []
        for _ in range(4):
            count = pipeline.frames_per_call
            frames = [Frame(rng.integers(0, 255, (320, 576, 3), dtype=np.uint8), float(i), i)
                      for i in range(count)]
            out = pipeline(frames, store.snapshot())
            if out:  # the first call only submits its chunk (annotation runs ahead)
                outs.append(np.stack([f.image for f in out]))
        stats = pipeline.stats.snapshot()
    finally:
        pipeline.close()
    assert [o.shape[0] for o in outs] == [9, 12, 12]
    assert all(o.shape[1:] == (320, 576, 3) and o.std() > 5 for o in outs)
    print({k: round(v, 1) for k, v in stats.items() if k.startswith("stage_")})
