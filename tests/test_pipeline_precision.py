"""`livevace run --precision fp8` (`create(precision="fp8")`): the DiT's FP8 linear layers
on a GPU that has FP8, one clear line anywhere else."""

from __future__ import annotations

import pytest
import torch

from livevace.config import RunConfig
from livevace.errors import UserError
from livevace.models.wan.fp8_weights import stored_fp8
from livevace.pipelines import create
from pipeline_support import SIZE, store_with

CONFIG = RunConfig(width=SIZE, height=SIZE, fps=60.0, sinks=(), preview="off")


def test_fp8_without_a_gpu_is_one_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(UserError, match="--precision fp8 needs a CUDA GPU with FP8"):
        create("vace", CONFIG, store_with(), weights="tiny-random", precision="fp8")


@pytest.mark.gpu
def test_fp8_reaches_the_dit_on_a_gpu() -> None:
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 needs compute capability 8.9+")
    pipeline = create("vace", CONFIG, store_with(), weights="tiny-random", precision="fp8")
    try:
        settings = pipeline.models.dit.acceleration
        assert settings.fp8 and settings.compile == "default" and settings.cuda_graph
        data, _ = stored_fp8(pipeline.models.dit.blocks[0].ffn[0].weight_fp8)
        assert data.dtype == torch.float8_e4m3fn
    finally:
        pipeline.close()
