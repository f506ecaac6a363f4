"""`livevace bench vae_decoder` (tiny, CPU): the decoder's convolution count per chunk, from
its shapes, against torch's own FLOP counter and the formula for one layer; the command runs."""

from __future__ import annotations

import json

import torch
from torch.utils.flop_counter import FlopCounterMode
from wan_support import one_thread  # noqa: F401

from livevace.bench.vae_decoder import LATENTS, TINY, chunk_convs, chunk_latents, steady_decoder
from livevace.cli import main
from livevace.models.wan.vae import WanVAE


def test_the_count_is_torchs_and_the_formula_for_the_last_layer():
    torch.manual_seed(0)
    vae = WanVAE(TINY).eval()
    convs, attention = chunk_convs(vae, 8, 6)
    decoder = steady_decoder(vae, 8, 6)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        decoder.decode(chunk_latents(8, 6, "cpu", torch.float32))
    counted = counter.get_flop_counts()["Global"]
    assert sum(c.flops for c in convs) == counted[torch.ops.aten.convolution]
    assert attention == counted[torch.ops.aten.bmm]  # a CPU's attention: two batched matmuls
    last = [c for c in convs if c.name == "conv_out"]
    assert len(last) == LATENTS  # one pass per latent: 4 frames each, 2 remembered in front
    assert all(c.input_shape == (1, TINY.base_dim, 4 + 2, 64, 48) for c in last)
    assert all(c.flops == 2 * (3 * 4 * 64 * 48) * TINY.base_dim * 27 for c in last)


def test_the_command_reports_the_floor_and_the_convolutions_alone(tmp_path, capsys):
    code = main(["bench", "vae_decoder", "--tiny", "--repeat", "1", "--warmup", "0", "--top", "3",
                 "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0 and "slowest convolutions alone" in capsys.readouterr().out
    (result,) = tmp_path.glob("vae-decoder-*.json")
    (row,) = json.loads(result.read_text())["rows"]
    assert row["size"] == "64x64" and row["conv_gflop"] > 0 and row["floor_ms"] > 0
    assert row["convs_alone_ms"] > 0 and row["eager_ms"] > 0 and row["compiled_ms"] is None
    assert len(row["top"]) == 3 and row["top"][0]["ms"] >= row["top"][-1]["ms"]
