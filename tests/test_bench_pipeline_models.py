"""`--weights random`: the real shapes with random weights (checked on the meta device,
where nothing is allocated), the random text embeddings in place of UMT5, the refusal
without a GPU, and on a GPU the whole bench at 576×320."""

from __future__ import annotations

import json

import pytest
import torch

from livevace.cli import main
from livevace.errors import ModelError
from livevace.store import vram
from livevace.models.wan.config import WAN21_VACE_1_3B
from livevace.models.wan.tae import TAEConfig
from livevace.models.wan.text import UMT5_XXL, WanTextEncoder
from livevace.pipelines.vace.embeddings import PromptEmbeddings
from livevace.models.wan.vae import WanVAEConfig
from livevace.pipelines.vace.choices import RANDOM
from livevace.pipelines.vace.models import load_models
from livevace.pipelines.vace.random_models import RandomTextEmbedding, random_set, random_umt5
from livevace.pipelines.vace.tiny import char_tokenizer


def params(module: torch.nn.Module, prefix: str = "", exclude: str | None = None) -> int:
    return sum(p.numel() for name, p in module.named_parameters()
               if name.startswith(prefix) and not (exclude and name.startswith(exclude)))


def test_the_model_set_has_the_published_sizes():
    models = random_set(device="meta")
    assert models.weights == RANDOM and models.dit.cfg == WAN21_VACE_1_3B
    assert models.dit.compute_dtype == torch.bfloat16
    # Wan2.1-T2V-1.3B: 1.42 B parameters; the VACE-1.3B module: 0.73 B; Wan VAE: 127 M
    assert params(models.dit, exclude="vace") == pytest.approx(1.419e9, rel=1e-3)
    assert params(models.dit, "vace") == pytest.approx(0.735e9, rel=1e-3)
    assert params(models.vae) == pytest.approx(126.9e6, rel=1e-3)
    assert models.vae.config == WanVAEConfig() and models.tae.config == TAEConfig()
    assert isinstance(models.text.model, RandomTextEmbedding)


def test_real_shape_umt5_is_the_xxl_encoder():
    model = random_umt5(torch.device("meta"))
    assert model.config.d_model == UMT5_XXL["d_model"] and model.config.num_layers == 24
    assert params(model) == pytest.approx(5.68e9, rel=1e-2)  # UMT5-XXL's encoder: 5.7 B
    assert model.encoder.embed_tokens.weight is model.shared.weight


def test_random_text_embeddings_take_umt5s_place():
    tokenizer = char_tokenizer()
    stand_in = RandomTextEmbedding(len(tokenizer), 64).eval()
    encoder = WanTextEncoder(stand_in, tokenizer, text_len=32)
    (emb, count) = encoder.encode(["neon dancer"])
    assert emb.shape == (1, 32, 64) and int(count[0]) == len("neon dancer") + 1  # + </s>
    assert emb[0, : int(count[0])].abs().sum(-1).min() > 0
    assert emb[0, int(count[0]):].abs().sum() == 0  # padding rows zero, as UMT5's are made
    embeddings = PromptEmbeddings(encoder)
    try:
        assert embeddings.get("neon dancer", timeout=10).shape == (int(count[0]), 64)
    finally:
        embeddings.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_random_weights_need_a_gpu():
    settings = vram.VramSettings(width=576, height=320, chunk_frames=3,
                                 text_encoder_dtype="bf16")
    with pytest.raises(ModelError, match="tiny-random") as info:
        load_models("longlive", RANDOM, settings)
    assert "\n" not in str(info.value)


@pytest.mark.gpu
def test_the_bench_runs_the_full_size_pipeline_on_a_gpu(tmp_path):
    code = main(["bench", "pipeline", "--weights", "random", "--resolution", "576x320",
                 "--chunks", "3", "--out", str(tmp_path)])
    assert code == 0
    (result,) = tmp_path.glob("pipeline-*.json")
    record = json.loads(result.read_text())
    (row,) = record["rows"]
    assert record["matmul_tflops"] > 50 and row["frames"] == 36
    assert row["peak_gb"] > 4.5  # 2.15 B DiT + VACE parameters in bf16 alone are 4.3 GB
    assert 0 < row["dit_mfu_%"] < 100 and row["annotate"] > 0
