"""Prompt blending (linear with norm preservation, slerp), transitions over chunks, and the
per-chunk signals the model core gets, with the real (tiny) text encoder behind them."""

from __future__ import annotations

import math

import pytest
import torch
from codec_support import HeldEncoder, tiny_encoder

from livevace.pipelines.vace.prompt_blend import TextConditioner, blend, pad, slerp
from livevace.pipelines.vace.embeddings import PromptEmbeddings
from livevace.params import Prompt, parse_prompts


def rows(n: int, d: int = 8, seed: int = 0, zero_from: int | None = None) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    if zero_from is not None:
        x[zero_from:] = 0
    return x


def test_linear_endpoints_exact_and_norms_kept():
    a, b, c = rows(6, seed=1, zero_from=4), rows(6, seed=2, zero_from=5), rows(6, seed=3)
    assert blend([a, b], [1.0, 0.0]) is a and blend([a, b, c], [0, 0, 2.5]) is c
    out = blend([a, b, c], [0.5, 0.3, 0.2])
    target = 0.5 * a.norm(dim=1) + 0.3 * b.norm(dim=1) + 0.2 * c.norm(dim=1)
    torch.testing.assert_close(out.norm(dim=1), target)
    direction = 0.5 * a + 0.3 * b + 0.2 * c  # the direction is the weighted mean's
    torch.testing.assert_close(out / out.norm(dim=1, keepdim=True), direction / direction.norm(dim=1, keepdim=True))
    torch.testing.assert_close(blend([a, b], [3.0, 1.0]), blend([a, b], [0.75, 0.25]))  # weights normalised
    zero_rows = blend([rows(3, zero_from=0), rows(3, seed=4, zero_from=1)], [0.5, 0.5])
    assert zero_rows[1:].abs().sum() == 0


def test_slerp_geometry():
    a = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 4.0], [0.0, 3.0], [0.0, 2.0]])
    mid = slerp(a, b, 0.5)
    half = 1 / math.sqrt(2)
    torch.testing.assert_close(mid[0], torch.tensor([half, half]) * 3.0)  # 45°, norm (2 + 4) / 2
    torch.testing.assert_close(mid[1], torch.tensor([half, half]) * 2.0)
    torch.testing.assert_close(mid[2], torch.tensor([0.0, 1.0]))  # a padding row: plain linear
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    x, y = rows(5, seed=5), rows(5, seed=6)
    for t in (0.1, 0.5, 0.9):
        torch.testing.assert_close(blend([x, y], [1 - t, t], "slerp").norm(dim=1),
                                   (1 - t) * x.norm(dim=1) + t * y.norm(dim=1))
    same = slerp(x, x * 2, 0.25)  # parallel rows: no division by sin 0
    torch.testing.assert_close(same, x * 1.25)
    three = [x, y, rows(5, seed=7)]
    torch.testing.assert_close(blend(three, [1, 1, 1], "slerp"), blend(three, [1, 1, 1], "linear"))


def test_blend_rejects_nonsense():
    with pytest.raises(ValueError):
        blend([rows(2)], [0.0])


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("text"))[0]


def test_conditioner_cut_pending_transition(encoder):
    held = HeldEncoder(encoder, fail=("boom",))
    source = PromptEmbeddings(held)
    text_len = encoder.text_len
    try:
        a, b = source.get("a neon city at night"), source.get("a forest in the rain")
        cond = TextConditioner(source, text_len)
        A, B = [Prompt("a neon city at night")], [Prompt("a forest in the rain")]

        first = cond.update(A, wait=True)
        assert first.changed and not first.recache and first.embeddings.shape == (1, text_len, a.shape[1])
        assert torch.equal(first.embeddings[0], pad(a, text_len))
        assert not cond.update(A).changed
        cond.invalidate()  # reset_cache: same prompt, its K/V rebuilt in the fresh cache
        again = cond.update(A)
        assert again.changed and not again.recache and again.embeddings is first.embeddings
        assert not cond.update(A).changed

        held.release.clear()  # a new prompt that takes a while: the old one keeps playing
        c_text = "slow motion smoke, red and blue"
        waiting = cond.update([Prompt(c_text)], transition_chunks=0)
        assert waiting.pending and not waiting.changed and waiting.embeddings is first.embeddings
        held.release.set()
        source.request(c_text).result(10)
        cut = cond.update([Prompt(c_text)], transition_chunks=0)
        assert cut.changed and cut.recache and not cut.pending
        assert torch.equal(cut.embeddings[0], pad(source.get(c_text), text_len))

        steps = [cond.update(B, "slerp", transition_chunks=3) for _ in range(4)]
        assert [s.changed for s in steps] == [True, True, True, False]
        assert not any(s.recache for s in steps)
        assert [round(s.transition, 3) for s in steps] == [0.333, 0.667, 1.0, 1.0]
        expected = blend([cut.embeddings, pad(b, text_len)[None]], [2 / 3, 1 / 3], "slerp")
        torch.testing.assert_close(steps[0].embeddings, expected)
        assert torch.equal(steps[2].embeddings[0], pad(b, text_len))  # the endpoint is exact

        mixed = cond.update(parse_prompts("a neon city at night :: 0.7 | a forest in the rain :: 0.3"))
        assert mixed.changed and mixed.recache
        torch.testing.assert_close(mixed.embeddings[0], blend([pad(a, text_len), pad(b, text_len)], [0.7, 0.3]))

        cond.update(B, transition_chunks=4)  # a new target mid-transition starts from where it is
        mid = cond.update(A, transition_chunks=2).embeddings
        assert not torch.equal(mid, steps[2].embeddings) and not torch.equal(mid[0], pad(a, text_len))

        failing = [Prompt("boom")]
        cond.update(failing)
        source.request("boom").exception(10)
        kept = cond.update(failing)
        assert "out of memory" in kept.error and not kept.changed
    finally:
        source.close()
