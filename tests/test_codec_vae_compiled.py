"""The Wan VAE encoder and decoder compiled for their steady state (`vae_compiled`): the
same latents, frames and causal memory as eager, graphs made only while learning, a video's
first pass eager unless compiled `from_start` (the node's encoder).

Dynamo captures the real encoder (its state-dict mutations included); the "aot_eager" backend
keeps the CPU suite free of a C++ compile. Inductor's own kernels run in the GPU test of
`tests/test_pipeline_speed_gpu.py`."""

from __future__ import annotations

import pytest
import torch

from livevace.models.wan.vae import WanVAE, WanVAEConfig
from livevace.models.wan.vae_compiled import SteadyCausal

CFG = WanVAEConfig(base_dim=8)


@pytest.fixture()
def vae() -> WanVAE:
    torch.manual_seed(0)
    model = WanVAE(CFG).eval()
    with torch.no_grad():  # non-trivial norm gains
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return model


def clip(frames: int, seed: int = 1, width: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, 32, width, generator=g) * 2 - 1


def chunked_latents(vae: WanVAE, x: torch.Tensor, chunks: tuple[int, ...]) -> list[torch.Tensor]:
    encoder, out, t = vae.causal_encoder(), [], 0
    for n in chunks:
        out.append(encoder.encode(x[:, :, t:t + n]))
        t += n
    return out


def test_compiled_steady_state_streams_the_same_latents(vae) -> None:
    x, chunks = clip(17), (1, 4, 4, 4, 4)
    eager = chunked_latents(vae, x, chunks)
    vae.steady = SteadyCausal(vae.encoder, backend="aot_eager")
    with vae.steady.learning():
        compiled = chunked_latents(vae, x, chunks)
    assert vae.steady.calls == 4  # every later chunk; the first has no memory yet
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_graphs_are_made_only_while_learning(vae) -> None:
    steady = vae.steady = SteadyCausal(vae.encoder, backend="aot_eager")
    with steady.learning():
        chunked_latents(vae, clip(9), (1, 4, 4))
    assert steady.calls == 2 and len(steady.shapes) == 1
    chunked_latents(vae, clip(13, seed=2), (1, 4, 4, 4))  # a learned shape: compiled, live
    assert steady.calls == 5
    chunked_latents(vae, clip(17, seed=2), (1, 8, 8))  # 8-frame chunks: two 4-frame passes
    assert steady.calls == 9 and len(steady.shapes) == 1
    x = clip(17, seed=3, width=64)
    eager = WanVAE(CFG).eval()
    eager.load_state_dict(vae.state_dict())
    out = chunked_latents(vae, x, (1, 8, 8))  # frames of another size were never learned
    assert steady.calls == 9 and len(steady.shapes) == 1
    for a, b in zip(chunked_latents(eager, x, (1, 8, 8)), out, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_from_start_a_videos_first_frame_has_a_graph_of_its_own(vae) -> None:
    """The node's encoder: the first pass (one frame, empty memory) is learned too, and a
    new video (a reset, a restarted context) replays it live with the eager latents."""
    graphs = []

    def backend(gm: torch.fx.GraphModule, inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    chunks = (1, 4, 4, 4)
    reference = eager_copy(vae)
    steady = vae.steady = SteadyCausal(vae.encoder, backend=backend, from_start=True)
    with steady.learning():
        learned = chunked_latents(vae, clip(13), chunks)
    assert steady.calls == 4 and len(steady.shapes) == 2 and len(graphs) == 2
    for a, b in zip(chunked_latents(reference, clip(13), chunks), learned, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    x = clip(13, seed=7)
    live = chunked_latents(vae, x, (5, 8))  # a new video: its first frame, then 4-frame passes
    assert steady.calls == 8 and len(graphs) == 2  # replayed, nothing compiled live
    for a, b in zip(chunked_latents(reference, x, (5, 8)), live, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert SteadyCausal(vae.encoder, backend=backend)(clip(1), {}) is None  # default: eager


def test_the_compiled_encoder_is_not_part_of_the_weights(vae) -> None:
    keys = set(vae.state_dict())
    vae.steady = SteadyCausal(vae.encoder, backend="aot_eager")
    assert set(vae.state_dict()) == keys


def test_the_graph_runs_a_channels_last_twin_and_eager_keeps_its_weights(vae) -> None:
    steady = vae.steady = SteadyCausal(vae.encoder, backend="aot_eager")
    pairs = [(m, t) for m, t in zip(vae.encoder.modules(), steady.twin.modules())
             if isinstance(m, torch.nn.Conv3d)]
    assert pairs and all(t is not m and torch.equal(t.weight, m.weight) for m, t in pairs)
    assert all(t.weight.is_contiguous(memory_format=torch.channels_last_3d)
               and m.weight.is_contiguous() for m, t in pairs)
    encoder = vae.causal_encoder()
    with steady.learning():
        encoder.encode(clip(1))
        encoder.encode(clip(4))  # through the twin: the memory must still be the encoder's own
    assert set(encoder.state) <= set(vae.encoder.modules()) | {vae.quant_conv}


def test_one_graph_per_shape_whatever_came_before(vae) -> None:
    graphs = []

    def backend(gm: torch.fx.GraphModule, inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    vae.steady = SteadyCausal(vae.encoder, backend=backend)
    with vae.steady.learning():  # later passes after a 1-frame, a 5-frame and a 4-frame chunk
        chunked_latents(vae, clip(13), (1, 4, 4, 4))
        chunked_latents(vae, clip(13), (5, 4, 4))  # the 5: a first frame, then a 4-frame pass
    assert vae.steady.calls == 6 and len(graphs) == 1


def test_a_learned_shape_that_fails_a_guard_runs_eagerly_uncompiled(vae, caplog) -> None:
    graphs = []

    def backend(gm: torch.fx.GraphModule, inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    steady = vae.steady = SteadyCausal(vae.encoder, backend=backend)
    with steady.learning():
        chunked_latents(vae, clip(9), (1, 4, 4))
    x = clip(9, seed=4)
    encoder = vae.causal_encoder()
    encoder.encode(x[:, :, :1])
    encoder.state = {m: t.transpose(3, 4).contiguous().transpose(3, 4)  # same values, new strides
                     if isinstance(t, torch.Tensor) else t for m, t in encoder.state.items()}
    expected = WanVAE(CFG).eval()
    expected.load_state_dict(vae.state_dict())
    reference = expected.causal_encoder()
    reference.encode(x[:, :, :1])
    calls = steady.calls
    torch.testing.assert_close(encoder.encode(x[:, :, 1:5]), reference.encode(x[:, :, 1:5]))
    assert len(graphs) == 1 and steady.calls == calls  # eager: nothing compiled live
    assert not steady.shapes  # …and that shape is no longer tried, after one line saying so
    assert [r.getMessage() for r in caplog.records if r.name == "livevace.vace"] == [
        "the compiled VAE encoder does not fit chunks of 1×3×4×32×48 any more; they run "
        "eagerly (slower)"]


def latents(frames: int, seed: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, CFG.z_dim, frames, 4, 6, generator=g)


def decoded(vae: WanVAE, z: torch.Tensor, chunks: tuple[int, ...]
            ) -> tuple[list[torch.Tensor], dict]:
    """Frames of each chunk of latents, and the decoder's causal memory after the last."""
    decoder, out, t = vae.causal_decoder(), [], 0
    for n in chunks:
        out.append(decoder.decode(z[:, :, t:t + n]))
        t += n
    return out, decoder.state


def test_compiled_decoder_streams_the_same_frames_and_memory(vae) -> None:
    z, chunks = latents(7), (1, 3, 3)
    eager, eager_state = decoded(vae, z, chunks)
    steady = vae.steady_decoder = SteadyCausal(vae.decoder, "decoder", conv2d=True,
                                               backend="aot_eager")
    with steady.learning():
        compiled, state = decoded(vae, z, chunks)
    # every latent after the first; the second (an upsampler's memory not yet full) is a
    # shape of its own
    assert steady.calls == 6 and len(steady.shapes) == 2
    assert [f.shape[2] for f in compiled] == [1, 12, 12]
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert list(state) == list(eager_state)  # the decoder's own modules, in the same order
    for module, value in eager_state.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(state[module], value, rtol=1e-5, atol=1e-5)
        else:
            assert state[module] == value
    live, _ = decoded(vae, latents(7, seed=6), chunks)  # learned shapes replay, live
    want, _ = decoded(eager_copy(vae), latents(7, seed=6), chunks)
    assert steady.calls == 12
    for a, b in zip(want, live, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def eager_copy(vae: WanVAE) -> WanVAE:
    copy = WanVAE(CFG).eval()
    copy.load_state_dict(vae.state_dict())
    return copy


def test_the_decoder_twin_has_its_2d_convolutions_channels_last_too(vae) -> None:
    twin = SteadyCausal(vae.decoder, "decoder", conv2d=True, backend="aot_eager").twin
    convs = [m for m in twin.modules() if type(m) is torch.nn.Conv2d and m.kernel_size == (3, 3)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert all(m.weight.is_contiguous() for m in vae.decoder.modules()
               if isinstance(m, torch.nn.Conv2d))


@pytest.mark.gpu
def test_inductor_decoder_on_a_gpu_gives_the_eager_frames() -> None:
    torch.manual_seed(0)
    vae = WanVAE(WanVAEConfig(base_dim=32)).eval().to("cuda", torch.bfloat16)
    z = latents(7).to("cuda", torch.bfloat16)
    eager, _ = decoded(vae, z, (1, 3, 3))
    vae.steady_decoder = SteadyCausal(vae.decoder, "decoder", conv2d=True)
    with vae.steady_decoder.learning():
        compiled, _ = decoded(vae, z, (1, 3, 3))
    assert vae.steady_decoder.calls == 6
    for a, b in zip(eager, compiled, strict=True):
        assert (a.float() - b.float()).abs().mean() < 2e-2  # bf16 rounding, fused differently


def test_a_chunk_is_encoded_a_latent_at_a_time_with_the_latents_of_one_pass(vae) -> None:
    """Wan's own procedure (the first frame alone, then 4 at a time): the causal memory
    carries across, so the latents are those of the whole chunk in one pass, while a pass
    holds the feature maps of 4 frames instead of the chunk's 9 or 12."""
    passes: list[int] = []
    hook = vae.encoder.register_forward_pre_hook(lambda m, args: passes.append(args[0].shape[2]))
    try:
        encoder, x = vae.causal_encoder(), clip(21, seed=7)
        got = [encoder.encode(x[:, :, :9]), encoder.encode(x[:, :, 9:])]
    finally:
        hook.remove()
    assert passes == [1, 4, 4, 4, 4, 4]
    state: dict = {}
    with torch.no_grad():  # the old way: each chunk through the encoder in one pass
        whole = [vae.quant_conv(vae.encoder(part, state))[:, :CFG.z_dim]
                 for part in (x[:, :, :9], x[:, :, 9:])]
    mean, std = vae.latent_stats(x.device)
    for a, b in zip(whole, got, strict=True):
        torch.testing.assert_close(b, (a - mean) / std, rtol=1e-5, atol=1e-5)
