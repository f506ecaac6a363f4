"""Upscaling: tiny random checkpoints of each supported architecture load through spandrel and
give the requested size; Lanczos alone where none is given; a foreign file is one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from livevace.errors import ModelError
from livevace.output import lanczos
from livevace.output.upscale import Upscaler, import_spandrel, load_network
from wan_support import one_thread, randomise

spandrel = import_spandrel()
archs = spandrel.architectures


def tiny(arch: str, scale: int) -> torch.nn.Module:
    """A random network of `arch` small enough for CPU tests (the layouts are spandrel's)."""
    if arch == "Compact":
        net = archs.Compact.Compact(num_feat=8, num_conv=2, upscale=scale)
    elif arch == "SPAN":
        net = archs.SPAN.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=scale)
    else:
        net = archs.ESRGAN.ESRGAN(num_filters=8, num_blocks=1, scale=scale)
    return randomise(net)


@pytest.mark.parametrize(("arch", "scale"), [("Compact", 4), ("SPAN", 2), ("ESRGAN", 2)])
def test_a_tiny_checkpoint_loads_through_spandrel_and_gives_the_size_asked(tmp_path, arch, scale,
                                                                          one_thread):
    path = tmp_path / f"{arch}.pth"
    torch.save(tiny(arch, scale).state_dict(), path)
    network = load_network(path, torch.device("cpu"), torch.float32)
    assert (network.arch, network.scale) == (arch, scale)
    frames = torch.rand(2, 3, 24, 40)
    raw = network.run(frames)
    out = Upscaler(network)(frames, (100, 60))
    assert raw.shape == (2, 3, 24 * scale, 40 * scale)
    assert out.shape == (2, 3, 60, 100)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    # the network's picture, not a plain resize of the input
    assert float((out - Upscaler(None)(frames, (100, 60))).abs().mean()) > 1e-3


def test_without_a_network_the_frames_are_resized_by_lanczos():
    frames = torch.rand(1, 3, 20, 30)
    out = Upscaler(None)(frames, (75, 50))
    assert out.shape == (1, 3, 50, 75)
    assert Upscaler(None)(frames, (30, 20)) is frames


def test_lanczos_matches_pil_and_keeps_flat_areas_flat():
    y, x = np.mgrid[0:18, 0:26]
    image = (128 + 80 * np.sin(x / 3.0) * np.cos(y / 4.0)).astype(np.uint8)  # no clipping
    ours = lanczos.resize(torch.from_numpy(image).double()[None, None], 45, 65)[0, 0]
    pil = np.asarray(Image.fromarray(image).resize((65, 45), Image.LANCZOS), dtype=np.float64)
    inner = (slice(4, -4), slice(4, -4))  # PIL and ours treat the border differently
    # PIL rounds to 8 bits between its two passes
    assert np.abs(ours.numpy()[inner].clip(0, 255) - pil[inner]).max() <= 2.0
    flat = torch.full((1, 1, 7, 9), 0.3, dtype=torch.float64)
    assert torch.allclose(lanczos.resize(flat, 20, 13), torch.full((1, 1, 20, 13), 0.3,
                                                                   dtype=torch.float64))


def test_a_file_that_is_no_sr_model_is_one_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ModelError, match="no super-resolution model spandrel knows"):
        load_network(path, torch.device("cpu"), torch.float32)
    with pytest.raises(ModelError, match="does not exist"):
        load_network(tmp_path / "absent.pth", torch.device("cpu"), torch.float32)


@pytest.mark.gpu
def test_the_network_is_timed_on_its_own_stream_not_with_the_rest_of_the_gpus_work():
    """In a node the generator keeps the GPU busy on its streams; the upscaler's measurement
    must time the network alone, not wait for (and count) that work."""
    from livevace.output.upscale import Network

    device = torch.device("cuda")
    net = tiny("SPAN", 2).to(device).eval()
    network = Network("tiny", "SPAN", 2, lambda x: net(x))
    busy, own = torch.cuda.Stream(), torch.cuda.Stream()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.cuda.stream(busy):
        start.record()
        torch.cuda._sleep(2_000_000_000)  # seconds of another stream's work
        end.record()
    with torch.cuda.stream(own), torch.inference_mode():
        ms = Upscaler(network).per_frame_ms(32, 32, device, torch.float32)
    end.synchronize()
    assert ms * 4 < start.elapsed_time(end) / 10


@pytest.mark.parametrize("arch", ["SPAN", "Compact"])
def test_channels_last_gives_what_the_plain_layout_gives(arch, one_thread):
    """On a GPU the networks run channels-last (cuDNN's fast layout for half precision); the
    result is the same picture."""
    from livevace.output.upscale import network_runner

    net = tiny(arch, 2).eval()
    x = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(2))
    plain = network_runner(net, torch.float32, channels_last=False)(x)
    fast = network_runner(net, torch.float32, channels_last=True)(x)
    assert fast.shape == (2, 3, 48, 64)
    assert ((fast - plain).norm() / plain.norm()).item() < 1e-5


def test_span_blocks_are_folded_once_and_give_spandrels_picture(one_thread):
    """spandrel's SPAN refolds each `Conv3XC` block's weights on every eval call; the runner
    folds them once. The picture is the one spandrel's own eval forward gives, and a call then
    runs one convolution per layer instead of the refold's many."""
    import copy

    from torch.profiler import ProfilerActivity, profile

    from livevace.output.upscale import FoldedConv, network_runner

    net = tiny("SPAN", 2).eval()
    reference = copy.deepcopy(net)
    x = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = reference(x)
    run = network_runner(net, torch.float32, channels_last=False)
    assert sum(isinstance(m, FoldedConv) for m in net.modules()) == 20  # conv_1, 6×3, conv_2
    assert not [m for m in net.modules() if type(m).__name__ == "Conv3XC"]
    got = run(x)
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5

    def convolutions(call) -> int:
        with profile(activities=[ProfilerActivity.CPU]) as p:
            call()
        return sum(e.count for e in p.key_averages() if e.key == "aten::conv2d")

    with torch.inference_mode():
        refolding = convolutions(lambda: reference(x))
    assert convolutions(lambda: run(x)) == 22  # the 20 folded, conv_cat and the upsampler
    assert refolding >= 22 + 2 * 20


def test_folding_in_half_precision_folds_in_float32(one_thread):
    """The fold's sums run in float32 and only the folded weight is rounded to the network's
    dtype: closer to the float32 fold than folding in bfloat16."""
    import copy

    from livevace.output.upscale import fold_reparameterised

    net = tiny("SPAN", 2).eval()
    exact, low = copy.deepcopy(net), copy.deepcopy(net).to(torch.bfloat16)
    fold_reparameterised(exact)
    ours = copy.deepcopy(net).to(torch.bfloat16)
    assert fold_reparameterised(ours) == 20
    with torch.no_grad():
        low.conv_1.update_params()
    want = exact.conv_1.conv.weight
    assert ours.conv_1.conv.weight.dtype == torch.bfloat16
    ours_err = (ours.conv_1.conv.weight.float() - want).norm()
    assert ours_err < (low.conv_1.eval_conv.weight.float() - want).norm()
    assert ours_err / want.norm() < 1e-2
