"""Live decoder switching between the Wan VAE and the tiny autoencoder, and frame conversion."""

from __future__ import annotations

import torch

from livevace.models.wan.codec import frames_to_pixels, pixels_to_frames
from livevace.pipelines.vace.live_decoder import LiveDecoder
from livevace.models.wan.tae import TAEConfig, TinyAutoencoder
from livevace.models.wan.vae import WanVAE, WanVAEConfig


def codecs() -> dict[str, object]:
    torch.manual_seed(0)
    return {"wan": WanVAE(WanVAEConfig(base_dim=8)).eval(),
            "tae": TinyAutoencoder(TAEConfig(encoder_width=8, decoder_widths=(16, 8, 8, 8))).eval()}


def latents(n: int, seed: int) -> torch.Tensor:
    return torch.randn(1, 16, n, 2, 3, generator=torch.Generator().manual_seed(seed))


def test_switch_keeps_frame_counts_and_primes_the_new_decoder():
    c = codecs()
    chunks = [latents(3, s) for s in range(5)]
    names = ["tae", "tae", "wan", "wan", "tae"]
    live = LiveDecoder(c, "tae", prime_latents=64)  # a long memory makes the switch exact
    outs = [live.decode(z, n) for z, n in zip(chunks, names)]
    assert [o.shape[2] for o in outs] == [9, 12, 12, 12, 12]
    all_latents = torch.cat(chunks, 2)
    for i, name in enumerate(names):  # each chunk equals that decoder run over the whole stream
        whole = c[name].causal_decoder().decode(all_latents)
        start = 0 if i == 0 else 9 + 12 * (i - 1)
        torch.testing.assert_close(outs[i], whole[:, :, start:start + outs[i].shape[2]], rtol=1e-4, atol=1e-5)


def test_default_priming_is_short_and_reset_restarts():
    c = codecs()
    live = LiveDecoder(c, "wan")
    live.decode(latents(3, 0))
    live.decode(latents(3, 1))
    assert live.history.shape[2] == 4
    assert live.decode(latents(3, 2), "tae").shape[2] == 12
    live.reset()
    assert live.decode(latents(3, 3)).shape[2] == 9


def test_frames_round_trip():
    frames = torch.randint(0, 256, (4, 8, 16, 3), dtype=torch.uint8)
    pixels = frames_to_pixels(frames)
    assert pixels.shape == (1, 3, 4, 8, 16) and pixels.min() >= -1 and pixels.max() <= 1
    assert torch.equal(pixels_to_frames(pixels)[0], frames)
