"""Our DiT (and DiT+VACE) on one chunk equals diffusers' Wan models with the same weights."""

from __future__ import annotations

import pytest
import torch
from wan_support import one_thread, ours_from, reference, rel_err, wan_timestep_precision  # noqa: F401

from livevace.models.wan.config import TINY, TINY_VACE

B, F, H, W = 2, 3, 4, 6  # latent frames and size: 3 frames of 2×3 tokens
TOKENS = (H // 2) * (W // 2)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ref = reference(TINY, seed=1)
    ours = ours_from(ref, TINY, tmp_path_factory.mktemp("dit"))
    return ref, ours


def inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, cfg.in_channels, F, H, W, generator=g)
    ctx = torch.randn(B, cfg.text_len, cfg.text_dim, generator=g)
    return x, ctx


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
def test_one_chunk_with_per_frame_timesteps_equals_diffusers(pair, impl):
    ref, ours = pair
    wan_timestep_precision(ref)
    ours.attn_impl = impl
    x, ctx = inputs(TINY)
    t = torch.tensor([[1000.0, 937.5, 833.3], [625.0, 250.0, 0.0]])
    with torch.no_grad():
        got = ours.forward_full(x, t, ctx)
        want = ref(x, t.repeat_interleave(TOKENS, dim=1), ctx).sample  # per-token timesteps
    assert got.shape == x.shape
    assert rel_err(got, want) < 1e-5


def test_only_difference_to_stock_diffusers_is_its_float32_sinusoid(tmp_path):
    ref = reference(TINY, seed=2)
    ours = ours_from(ref, TINY, tmp_path)
    x, ctx = inputs(TINY, seed=3)
    with torch.no_grad():
        got = ours.forward_full(x, torch.full((B, F), 1000.0), ctx)
        stock = ref(x, torch.full((B,), 1000.0), ctx).sample
        wan_timestep_precision(ref)
        fixed = ref(x, torch.full((B,), 1000.0), ctx).sample
    assert rel_err(got, fixed) < 1e-5
    assert rel_err(got, stock) < 1e-4  # the float32 rounding of t·freq at t = 1000


def test_vace_with_control_and_scale_equals_diffusers(tmp_path):
    ref = wan_timestep_precision(reference(TINY_VACE, seed=4))
    ours = ours_from(ref, TINY_VACE, tmp_path)
    x, ctx = inputs(TINY_VACE, seed=5)
    control = torch.randn(B, TINY_VACE.vace_in_channels, F, H, W)
    scale = torch.tensor([0.7, 1.3])
    with torch.no_grad():
        got = ours.forward_full(x, torch.full((B, F), 833.3), ctx, vace=control, hint_scale=scale)
        want = ref(x, torch.full((B,), 833.3), ctx, control_hidden_states=control,
                   control_hidden_states_scale=scale).sample
        plain = ours.forward_full(x, torch.full((B, F), 833.3), ctx)
    assert rel_err(got, want) < 1e-5
    assert rel_err(got, plain) > 1e-2  # the hints do change the output


def test_bf16_inference_keeps_the_time_path_in_float32(pair):
    _, ours = pair
    x, ctx = inputs(TINY, seed=6)
    t = torch.full((B, F), 500.0)
    with torch.no_grad():
        full = ours.forward_full(x, t, ctx)
        half = ours.__class__(TINY)
        half.load_state_dict(ours.state_dict())
        half.for_inference(torch.bfloat16)
        low = half.forward_full(x, t, ctx)
    dtypes = {n: p.dtype for n, p in half.named_parameters()}
    assert dtypes["time_projection.1.weight"] == torch.float32
    assert dtypes["blocks.0.modulation"] == torch.float32
    assert dtypes["blocks.0.self_attn.q.weight"] == torch.bfloat16
    assert rel_err(low, full) < 5e-2


def test_wrong_inputs_are_refused(pair):
    _, ours = pair
    x, ctx = inputs(TINY)
    with pytest.raises(ValueError, match="per-frame"):
        ours.forward_full(x, torch.zeros(B), ctx)
    with pytest.raises(ValueError, match="no VACE"):
        ours.forward_full(x, torch.zeros(B, F), ctx, vace=torch.zeros(B, 96, F, H, W))
    with pytest.raises(ValueError, match="text tokens"):
        ours.forward_full(x, torch.zeros(B, F), torch.zeros(B, TINY.text_len + 1, TINY.text_dim))
