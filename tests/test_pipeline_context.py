"""The VACE context against the reference: diffusers' `WanVACEPipeline.prepare_video_latents`
and `prepare_masks` (the numerical reference for Wan models), run with an `AutoencoderKLWan`
holding the same random weights as our VAE. Streamed chunk by chunk, ours must equal the
reference on the whole clip; references and an encoder restarted mid-video line up too; the
latents of an all-zeros video are computed once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import AutoencoderKLWan, WanVACEPipeline

from livevace.models.wan.vae import WanVAE, WanVAEConfig
from livevace.pipelines.vace.context import ContextEncoder, SessionEncoder, reference_context
from livevace.pipelines.vace.zeros import ZeroCachedEncoder, zero_latents

CFG = WanVAEConfig(base_dim=4)
H = W = 32


@pytest.fixture(scope="module")
def vaes() -> tuple[WanVAE, AutoencoderKLWan]:
    torch.manual_seed(0)
    ours = WanVAE(CFG).eval()
    with torch.no_grad():  # norm gains away from 1, so a mix-up would show
        for name, p in ours.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    ref = AutoencoderKLWan(base_dim=CFG.base_dim, z_dim=16, dim_mult=list(CFG.dim_mult),
                           num_res_blocks=2, temperal_downsample=[False, True, True]).eval()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _pipe(vae: AutoencoderKLWan | None = None) -> SimpleNamespace:
    """What the two methods read of a WanVACEPipeline."""
    return SimpleNamespace(vae=vae, _execution_device=torch.device("cpu"),
                           vae_scale_factor_temporal=4, vae_scale_factor_spatial=8,
                           transformer=SimpleNamespace(config=SimpleNamespace(patch_size=(1, 2, 2))),
                           transformer_2=None)


def reference_masks(mask: torch.Tensor, refs: int = 0) -> torch.Tensor:
    """diffusers' 64 mask channels (mask [1,1,T,H,W] in [0,1])."""
    return WanVACEPipeline.prepare_masks(_pipe(), mask, [[None] * refs], None)


def reference(vae: AutoencoderKLWan, video: torch.Tensor, mask: torch.Tensor,
              refs: list[torch.Tensor] | None = None) -> torch.Tensor:
    """diffusers' conditioning latents (video [1,3,T,H,W] in [-1,1], mask [1,1,T,H,W] in [0,1])."""
    with torch.no_grad():
        latents = WanVACEPipeline.prepare_video_latents(
            _pipe(vae), video, mask, [refs or []], None, torch.device("cpu"))
    return torch.cat([latents, reference_masks(mask, len(refs or []))], dim=1).float()


def clip(frames: int = 21, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(1, 3, frames, H, W, generator=g) * 2 - 1
    mask = torch.zeros(1, 1, frames, H, W)
    mask[..., 8:24, 4:20] = 1.0  # a block to regenerate …
    mask[..., 10:, :, 28:] = 0.7  # … and a soft edge that binarises to 1 from frame 10 on
    return video, mask


def streamed(vae: WanVAE, video: torch.Tensor, mask: torch.Tensor | None,
             control: torch.Tensor | None = None) -> torch.Tensor:
    """Our context for the clip, as the pipeline builds it: 9 frames, then 12."""
    encoder = ContextEncoder(vae, 3, H, W, torch.device("cpu"))
    out, start = [], 0
    for chunk, n in enumerate((9, 12)):
        part = slice(start, start + n)
        start += n
        out.append(encoder.encode((1, 3, n, H, W), chunk, chunk == 0,
                                  video=(video if control is None else control)[:, :, part],
                                  source=video[:, :, part],
                                  mask=None if mask is None else mask[0, 0, part]).clone())
    return torch.cat(out, dim=2)


def test_masked_context_streams_to_the_references_whole_clip(vaes) -> None:
    ours, ref = vaes
    video, mask = clip()
    expected = reference(ref, video, mask)
    got = streamed(ours, video, mask)
    assert got.shape == expected.shape == (1, 96, 6, 4, 4)
    assert torch.allclose(got[:, :32], expected[:, :32], atol=1e-4, rtol=1e-4)
    # diffusers resizes the raw mask; binarised first it is VACE's 0/1 mask
    assert torch.equal(got[:, 32:], reference_masks((mask > 0.5).float()))


def test_control_video_without_mask_is_reactive_only(vaes) -> None:
    ours, ref = vaes
    control, _ = clip(seed=2)
    expected = reference(ref, control, torch.ones(1, 1, 21, H, W))  # diffusers' default mask
    got = streamed(ours, torch.zeros_like(control), None, control)
    assert torch.allclose(got[:, :32], expected[:, :32], atol=1e-4, rtol=1e-4)
    assert (got[:, 32:] == 1).all()


def test_reference_context_matches_vaces_reference_frames(vaes) -> None:
    ours, ref = vaes
    video, mask = clip(9)
    image = torch.rand(3, H, W, generator=torch.Generator().manual_seed(3)) * 2 - 1
    expected = reference(ref, video, mask, [image])[:, :, :1]  # the reference frame in front
    latent = ours.causal_encoder().encode(image[None, :, None]).float()
    got = reference_context(latent)
    assert torch.allclose(got[:, :32], expected[:, :32], atol=1e-4, rtol=1e-4)
    assert torch.equal(got[:, 32:], expected[:, 32:])  # mask 0: keep as given


@pytest.mark.parametrize("frame, changed", [(12, [0, 1, 2]), (13, [1, 2])])
def test_an_encoder_started_mid_video_keeps_the_latent_groups_aligned(vaes, frame: int,
                                                                   changed: list[int]) -> None:
    """Restarted on a later chunk (frames 9..20), latent k still covers frames 9+4k..12+4k."""
    ours, _ = vaes
    video, _ = clip()
    edited = video.clone()
    edited[:, :, frame] = -edited[:, :, frame]
    out = []
    for v in (video, edited):
        encoder = SessionEncoder(ours)
        out.append(encoder.encode(v[:, :, 9:21], (1, 3, 12, H, W), torch.device("cpu"), 1, False))
    assert out[0].shape[2] == 3
    differs = [(out[0][:, :, k] - out[1][:, :, k]).abs().max().item() > 1e-6 for k in range(3)]
    assert [k for k in range(3) if differs[k]] == changed


def test_zero_latents_cached_and_exact(vaes) -> None:
    ours = vaes[0]

    def cached() -> ZeroCachedEncoder:
        return ZeroCachedEncoder(ours, zero_latents(ours))

    first, later, n = (1, 3, 5, 16, 16), (1, 3, 4, 16, 16), 40
    plain = ours.causal_encoder()
    expected = [plain.encode(torch.zeros(first))] + [plain.encode(torch.zeros(later)) for _ in range(n - 1)]
    cached_a, cached_b = cached(), cached()
    got_a = [cached_a.encode_zeros(first, "cpu")] + [cached_a.encode_zeros(later, "cpu") for _ in range(n - 1)]
    run = zero_latents(ours)._runs[(1, 16, 16, torch.device("cpu"), torch.float32)]
    computed = len(run)
    got_b = [cached_b.encode_zeros(first, "cpu")] + [cached_b.encode_zeros(later, "cpu") for _ in range(n - 1)]
    assert computed < n and len(run) == computed  # converged; the second encoder computed nothing
    assert all(x is y for x, y in zip(got_a, got_b))
    for e, g in zip(expected, got_a):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)
    real = torch.rand(later, generator=torch.Generator().manual_seed(7))
    # the encoder turns non-zero: it continues from the zeros' memory as if it had encoded all along
    torch.testing.assert_close(cached_a.encode(real), plain.encode(real), rtol=1e-4, atol=1e-5)
    # an encoder that took early cached latents (no memory kept for them) replays the zeros first
    late, replayed = cached(), ours.causal_encoder()
    late.encode_zeros(first, "cpu")
    late.encode_zeros(later, "cpu")
    assert late.state is None
    replayed.encode(torch.zeros(first))
    replayed.encode(torch.zeros(later))
    torch.testing.assert_close(late.encode(real), replayed.encode(real), rtol=1e-4, atol=1e-5)
