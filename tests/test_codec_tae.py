"""Tiny autoencoder: loads the taehv key layout, streams equal to its whole-clip run and to a
frame-by-frame run, keeps Wan's time alignment, rejects wrong files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from livevace.errors import ModelError
from livevace.models.wan.tae import MemBlock, TAEConfig, TGrow, TinyAutoencoder, TPool, load_tae

W, N = 8, (16, 8, 8, 8)  # narrow widths, taew2_1's structure


def taehv_state_dict(first_tgrow_frames: int = 2, latent: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random checkpoint written from taehv's `TAEHV.__init__` layout (nn.Sequential indices)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(key: str, cout: int, cin: int, k: int = 3, bias: bool = True) -> None:
        sd[f"{key}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (cin * k * k) ** -0.5
        if bias:
            sd[f"{key}.bias"] = torch.randn(cout, generator=g) * 0.1

    def memblock(key: str, c: int) -> None:
        conv(f"{key}.conv.0", c, 2 * c)
        conv(f"{key}.conv.2", c, c)
        conv(f"{key}.conv.4", c, c)

    conv("encoder.0", W, 3)
    for j, i in enumerate((2, 7, 12)):
        conv(f"encoder.{i}.conv", W, W * (2 if j < 2 else 1), k=1, bias=False)  # TPool
        conv(f"encoder.{i + 1}", W, W, bias=False)
        for m in range(i + 2, i + 5):
            memblock(f"encoder.{m}", W)
    conv("encoder.17", latent, W)
    conv("decoder.1", N[0], latent)
    for j, i in enumerate((3, 9, 15)):
        for m in range(i, i + 3):
            memblock(f"decoder.{m}", N[j])
        conv(f"decoder.{i + 4}.conv", N[j] * (first_tgrow_frames if j == 0 else 2), N[j], k=1, bias=False)  # TGrow
        conv(f"decoder.{i + 5}", N[j + 1], N[j], bias=False)
    conv("decoder.22", 3, N[3])
    return sd


@pytest.fixture(scope="module")
def tae(tmp_path_factory) -> TinyAutoencoder:
    path = tmp_path_factory.mktemp("tae") / "taew2_1.pth"
    torch.save(taehv_state_dict(), path)
    return load_tae(path)


def sequential(layers: nn.Sequential, frames: list[torch.Tensor]) -> list[torch.Tensor]:
    """Reference: one frame at a time through the graph, as taehv's streaming mode walks it."""
    memory: dict[int, object] = {}

    def push(x: torch.Tensor, start: int) -> list[torch.Tensor]:
        for i in range(start, len(layers)):
            layer = layers[i]
            if isinstance(layer, MemBlock):
                past = memory.get(i, torch.zeros_like(x))
                memory[i] = x
                x = layer(x, past)
            elif isinstance(layer, TPool):
                pending = memory.setdefault(i, [])
                pending.append(x)
                if len(pending) < layer.stride:
                    return []
                x = torch.cat(pending, 0)  # taehv's plain NCHW reshapes, not ours
                x = layer.conv(x.reshape(-1, layer.stride * x.shape[1], *x.shape[2:]))
                memory[i] = []
            elif isinstance(layer, TGrow):
                grown = layer.conv(x).reshape(-1, x.shape[1], *x.shape[2:])
                return [y for f in grown.split(1, 0) for y in push(f, i + 1)]
            else:
                x = layer(x)
        return [x]

    with torch.no_grad():
        return [y for f in frames for y in push(f, 0)]


def clip(frames: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, frames, 32, 48, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_encode_streams_equal_whole_and_framewise(tae):
    x = clip(13)
    whole = tae.causal_encoder().encode(x)
    assert whole.shape == (1, 16, 4, 4, 6)
    encoder, parts, t = tae.causal_encoder(), [], 0
    for n in (5, 4, 4):
        parts.append(encoder.encode(x[:, :, t:t + n]))
        t += n
    torch.testing.assert_close(torch.cat(parts, 2), whole, rtol=1e-5, atol=1e-5)
    pixels01 = (x + 1) / 2  # taehv works in [0, 1]; frame 0 is repeated in front (Wan alignment)
    frames = [pixels01[:, :, 0]] * 3 + list(pixels01.unbind(2))
    ref = torch.stack(sequential(tae.encoder, frames), 2)
    torch.testing.assert_close(whole, ref, rtol=1e-5, atol=1e-5)


def test_decode_streams_equal_whole_and_framewise(tae):
    z = torch.randn(1, 16, 5, 4, 6, generator=torch.Generator().manual_seed(2))
    whole = tae.causal_decoder().decode(z)
    assert whole.shape == (1, 3, 17, 32, 48)  # 1 + 4·4 frames, like the Wan VAE
    decoder = tae.causal_decoder()
    parts = [decoder.decode(z[:, :, :1]), decoder.decode(z[:, :, 1:3]), decoder.decode(z[:, :, 3:])]
    assert [p.shape[2] for p in parts] == [1, 8, 8]
    torch.testing.assert_close(torch.cat(parts, 2), whole, rtol=1e-5, atol=1e-5)
    ref = torch.stack(sequential(tae.decoder, list(z.unbind(2))), 2)[:, :, 3:]  # taehv trims 3
    torch.testing.assert_close(whole, ref.clamp(0, 1) * 2 - 1, rtol=1e-5, atol=1e-5)
    assert whole.min() >= -1 and whole.max() <= 1 and whole.std() > 0.01


def test_first_tgrow_kernel_patched(tmp_path):
    """Some taew2_1 files ship the stride-1 TGrow with a 2-frame kernel: the last frame's half
    is the one used (as taehv's `patch_tgrow_layers` does)."""
    sd = taehv_state_dict(first_tgrow_frames=2)
    torch.save(sd, tmp_path / "taew2_1.pth")
    tae = load_tae(tmp_path / "taew2_1.pth")
    torch.testing.assert_close(tae.decoder[7].conv.weight, sd["decoder.7.conv.weight"][N[0]:])
    sd1 = taehv_state_dict(first_tgrow_frames=1)
    save_file(sd1, tmp_path / "taew2_1.safetensors")
    assert load_tae(tmp_path / "taew2_1.safetensors").decoder[7].conv.weight.shape == (N[0], N[0], 1, 1)


def test_real_shape_layout():
    with torch.device("meta"):
        sd = TinyAutoencoder(TAEConfig()).state_dict()
    assert len(sd) == 128
    shapes = {"encoder.0.weight": (64, 3, 3, 3), "encoder.2.conv.weight": (64, 128, 1, 1),
              "encoder.12.conv.weight": (64, 64, 1, 1), "encoder.4.conv.0.weight": (64, 128, 3, 3),
              "encoder.17.weight": (16, 64, 3, 3), "decoder.1.weight": (256, 16, 3, 3),
              "decoder.7.conv.weight": (256, 256, 1, 1), "decoder.13.conv.weight": (256, 128, 1, 1),
              "decoder.19.conv.weight": (128, 64, 1, 1), "decoder.22.weight": (3, 64, 3, 3)}
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes


def test_chunk_lengths_checked(tae):
    s = tae.causal_encoder()
    with pytest.raises(ValueError):
        s.encode(clip(4))


def test_wrong_files_rejected(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_tae(tmp_path / "taew2_1.pth")
    torch.save({"decoder.middle.0.residual.0.gamma": torch.ones(4)}, tmp_path / "vae.pth")
    with pytest.raises(ModelError, match="not a TAEHV"):
        load_tae(tmp_path / "vae.pth")
    torch.save(taehv_state_dict(latent=48), tmp_path / "taew2_2.pth")
    with pytest.raises(ModelError, match="48-channel latents.*taew2_1"):
        load_tae(tmp_path / "taew2_2.pth")
    sd = taehv_state_dict()
    del sd["decoder.15.conv.2.bias"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match="1 missing: decoder.15.conv.2.bias"):
        load_tae(tmp_path / "broken.pth")


def test_streams_feed_every_convolution_channels_last(tae):
    """NHWC throughout (cuDNN's own layout: no transposes around each convolution on a GPU)."""
    seen: list[tuple[bool, bool]] = []

    def check(conv, args):
        seen.append((args[0].is_contiguous(memory_format=torch.channels_last),
                     conv.weight.is_contiguous(memory_format=torch.channels_last)))

    convs = [m for m in tae.modules() if isinstance(m, nn.Conv2d)]
    hooks = [c.register_forward_pre_hook(check) for c in convs]
    try:
        tae.causal_decoder().decode(torch.randn(1, 16, 3, 4, 6))
        tae.causal_encoder().encode(clip(5))
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) == len(convs) and all(x and w for x, w in seen)
