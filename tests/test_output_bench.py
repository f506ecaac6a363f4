"""`livevace bench output` runs end to end on a CPU with --tiny: every row, both orders; on a
GPU its other upscaler runners compute the node's pictures."""

from __future__ import annotations

import json

import pytest
import torch

from livevace.cli import main


def test_bench_output_tiny_times_every_part_and_both_orders(tmp_path, capsys):
    rc = main(["bench", "output", "--tiny", "--device", "cpu", "--repeat", "1", "--warmup", "0",
               "--chunk", "4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "cheaper order by time:" in out and "by operations:" in out
    record = json.loads(next(tmp_path.glob("output-*.json")).read_text())
    rows = {r["what"]: r for r in record["rows"]}
    assert list(rows) == ["interpolate", "sr span 2x", "sr compact 4x", "lanczos",
                          "stage interpolate_first", "stage upscale_first"]
    assert all(r["ms"] > 0 and r["ms_each"] > 0 and r["gflop_each"] > 0 for r in rows.values())
    assert rows["stage upscale_first"]["upscaler"].startswith("span (")


def test_random_files_are_the_catalogues_files_and_load_as_the_node_loads_them(tmp_path, monkeypatch):
    """`--random-files` writes what `models pull` would, in its layout: the node's own loaders
    find and load them (full-size IFNet and SPAN 2x)."""
    import torch

    from livevace.output.stage import load_rife, load_upscaler

    assert main(["bench", "output", "--random-files", str(tmp_path)]) == 0
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "no-scope"))
    cpu = torch.device("cpu")
    net = load_rife(cpu, torch.float32)
    network = load_upscaler("span_2x", cpu, torch.float32)
    assert sum(p.numel() for p in net.parameters()) > 5_000_000
    assert network.scale == 2 and network.run(torch.rand(1, 3, 16, 24)).shape == (1, 3, 32, 48)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_upscalers_other_runners_give_the_nodes_pictures():
    """`bench output`'s `nchw` and `compiled` rows (both layouts) time the same function as the node's runner
    (fp16: to rounding)."""
    from livevace.bench.output import networks, runner_variants
    from livevace.output.upscale import network_runner

    tuned = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # as the bench runs (restored for later tests)
    try:
        for module in networks(True).values():
            module = module.cuda().half().eval().requires_grad_(False)
            batch = torch.rand(4, 3, 64, 96, device="cuda", dtype=torch.half)
            variants = runner_variants(module, torch.half, batch)
            assert set(variants) == {"nchw", "compiled", "compiled nchw"}  # graphs captured
            node = network_runner(module, torch.half)(batch)
            for run in variants.values():
                torch.testing.assert_close(run(), node, rtol=1e-2, atol=1e-2)
    finally:
        torch.backends.cudnn.benchmark = tuned
