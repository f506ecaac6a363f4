"""Wan VAE: equal to diffusers' AutoencoderKLWan (the reference), streaming equal to whole-clip,
both weight layouts, wrong files rejected."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from livevace.errors import ModelError
from livevace.models.wan.vae import LATENT_MEAN, LATENT_STD, WanVAE, WanVAEConfig, load_wan_vae

CFG = WanVAEConfig(base_dim=8)  # Wan2.1's structure with narrow channels
MEAN = torch.tensor(LATENT_MEAN).view(1, -1, 1, 1, 1)
STD = torch.tensor(LATENT_STD).view(1, -1, 1, 1, 1)


@pytest.fixture(scope="module")
def reference() -> AutoencoderKLWan:
    torch.manual_seed(0)
    ref = AutoencoderKLWan(base_dim=CFG.base_dim, z_dim=16, dim_mult=list(CFG.dim_mult),
                           num_res_blocks=2, temperal_downsample=[False, True, True]).eval()
    with torch.no_grad():  # non-trivial norm gains, so a swapped gamma would show
        for name, p in ref.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return ref


def to_original_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers names → Wan's `Wan2.1_VAE.pth` names (checked below against diffusers' own
    converter, so the original layout used in these tests is the real one)."""
    resnet = {"norm1.gamma": "residual.0.gamma", "conv1.": "residual.2.", "norm2.gamma": "residual.3.gamma",
              "conv2.": "residual.6.", "conv_shortcut.": "shortcut."}
    out = {}
    for key, v in sd.items():
        k = key
        k = re.sub(r"^quant_conv\.", "conv1.", k)
        k = re.sub(r"^post_quant_conv\.", "conv2.", k)
        k = re.sub(r"^(encoder|decoder)\.conv_in\.", r"\1.conv1.", k)
        k = re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.head.0.", k)
        k = re.sub(r"^(encoder|decoder)\.conv_out\.", r"\1.head.2.", k)
        m = re.match(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.*)$", k)
        if m:
            k = f"{m[1]}.middle.{1 if m[2] == 'attentions' else 2 * int(m[3])}.{m[4]}"
        m = re.match(r"^decoder\.up_blocks\.(\d)\.(resnets\.(\d)|upsamplers\.0)\.(.*)$", k)
        if m:
            k = f"decoder.upsamples.{4 * int(m[1]) + (int(m[3]) if m[3] else 3)}.{m[4]}"
        k = k.replace("encoder.down_blocks.", "encoder.downsamples.")
        if ".attentions" not in key and not k.endswith(("head.0.gamma", "head.2.weight", "head.2.bias")) \
                and re.match(r"^(encoder|decoder)\.(downsamples|upsamples|middle)\.", k):
            for a, b in resnet.items():
                k = re.sub(r"\." + re.escape(a), "." + b, k)
        out[k] = v
    return out


def test_original_layout_is_real(reference):
    sd = reference.state_dict()
    converted = convert_wan_vae_to_diffusers(to_original_layout(sd))
    assert converted.keys() == sd.keys()
    assert all(converted[k] is sd[k] for k in sd)


@pytest.fixture(scope="module")
def ours(reference, tmp_path_factory) -> WanVAE:
    path = tmp_path_factory.mktemp("vae") / "Wan2.1_VAE.pth"
    torch.save(to_original_layout(reference.state_dict()), path)
    return load_wan_vae(path, cfg=CFG)


def clip(frames: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, 32, 48, generator=g) * 2 - 1


def test_encode_equals_diffusers(reference, ours):
    x = clip(13)
    with torch.no_grad():
        mu = reference.encode(x).latent_dist.mean
    z = ours.causal_encoder().encode(x)
    assert z.shape == (1, 16, 4, 4, 6)
    torch.testing.assert_close(z, (mu - MEAN) / STD, rtol=1e-5, atol=1e-5)


def test_decode_equals_diffusers(reference, ours):
    z = torch.randn(1, 16, 4, 4, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = reference.decode(z * STD + MEAN).sample
    out = ours.causal_decoder().decode(z)
    assert out.shape == (1, 3, 13, 32, 48)
    assert (out.abs() < 0.99).float().mean() > 0.5  # not a saturated, trivially clamped picture
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunks", [(1, 4, 4, 4), (5, 8), (9, 4)])
def test_streaming_encode_equals_whole_clip(ours, chunks):
    x = clip(13, seed=3)
    whole = ours.causal_encoder().encode(x)
    encoder, parts, t = ours.causal_encoder(), [], 0
    for n in chunks:
        parts.append(encoder.encode(x[:, :, t:t + n]))
        t += n
    torch.testing.assert_close(torch.cat(parts, 2), whole, rtol=1e-5, atol=1e-5)


def test_streaming_decode_counts_and_equality(ours):
    z = torch.randn(1, 16, 5, 4, 6, generator=torch.Generator().manual_seed(4))
    whole = ours.causal_decoder(latents_per_pass=5).decode(z)
    decoder = ours.causal_decoder()
    parts = [decoder.decode(z[:, :, :1]), decoder.decode(z[:, :, 1:3]), decoder.decode(z[:, :, 3:])]
    assert [p.shape[2] for p in parts] == [1, 8, 8]
    torch.testing.assert_close(torch.cat(parts, 2), whole, rtol=1e-5, atol=1e-5)


def test_separate_encoders_do_not_mix(ours):
    a, b = clip(9, seed=5), clip(9, seed=6)
    s1, s2 = ours.causal_encoder(), ours.causal_encoder()
    interleaved = [s1.encode(a[:, :, :5]), s2.encode(b[:, :, :5]), s1.encode(a[:, :, 5:]), s2.encode(b[:, :, 5:])]
    torch.testing.assert_close(torch.cat(interleaved[0::2], 2), ours.causal_encoder().encode(a))
    torch.testing.assert_close(torch.cat(interleaved[1::2], 2), ours.causal_encoder().encode(b))


def test_bad_chunk_lengths_refused(ours):
    s = ours.causal_encoder()
    with pytest.raises(ValueError, match="1\\+4k"):
        s.encode(clip(4))
    s.encode(clip(5))
    with pytest.raises(ValueError, match="multiple of 4"):
        s.encode(clip(5))
    with pytest.raises(ValueError, match="multiples of 8"):
        s.encode(torch.zeros(1, 3, 4, 32, 44))


def test_diffusers_folder_loads(reference, tmp_path):
    reference.save_pretrained(tmp_path / "vae")
    vae = load_wan_vae(tmp_path / "vae", cfg=CFG)
    x = clip(5, seed=8)
    with torch.no_grad():
        mu = reference.encode(x).latent_dist.mean
    torch.testing.assert_close(vae.causal_encoder().encode(x), (mu - MEAN) / STD, rtol=1e-5,
                               atol=1e-5)


def test_bf16(ours, reference, tmp_path):
    vae = ours.to(torch.bfloat16)
    try:
        z = torch.randn(1, 16, 2, 4, 6, generator=torch.Generator().manual_seed(9))
        out = vae.causal_decoder().decode(z)
        assert out.dtype == torch.bfloat16 and out.shape == (1, 3, 5, 32, 48)
        with torch.no_grad():
            ref = reference.decode(z * STD + MEAN).sample
        assert (out.float() - ref).abs().mean() < 0.05
    finally:
        ours.to(torch.float32)


def test_wrong_files_rejected(tmp_path, reference):
    with pytest.raises(ModelError, match="does not exist"):
        load_wan_vae(tmp_path / "missing.pth", cfg=CFG)
    bad = tmp_path / "taew2_1.pth"
    torch.save({"encoder.0.weight": torch.zeros(64, 3, 3, 3)}, bad)
    with pytest.raises(ModelError, match="is not a Wan2.1 VAE.*missing"):
        load_wan_vae(bad, cfg=CFG)
    with pytest.raises(ModelError, match="wrong shape"):  # the real-size VAE expected, a tiny one given
        path = tmp_path / "small.pth"
        torch.save(to_original_layout(reference.state_dict()), path)
        load_wan_vae(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read"):
        load_wan_vae(junk, cfg=CFG)
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text("{}")
    with pytest.raises(ModelError, match="not a safetensors shard index"):
        load_wan_vae(folder, cfg=CFG)
    legacy = tmp_path / "legacy.pth"  # pre-zip torch pickles load too (not memory-mapped)
    torch.save(to_original_layout(reference.state_dict()), legacy, _use_new_zipfile_serialization=False)
    load_wan_vae(legacy, cfg=CFG)
