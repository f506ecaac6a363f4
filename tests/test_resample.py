"""The matrix-product resize equals F.interpolate (its weights come from it, so this checks
the separable construction: axes, orientation, borders, antialiasing)."""

import pytest
import torch
import torch.nn.functional as F

from livevace.annotators.resample import resize


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("size_in,size_out", [((32, 56), (52, 93)),  # up, as depth input at 576×320
                                              ((37, 66), (20, 36)),   # down, antialiasing matters
                                              ((15, 40), (15, 17))])  # one axis kept
def test_resize_equals_interpolate(mode: str, antialias: bool, size_in, size_out) -> None:
    x = torch.rand(3, 2, *size_in, generator=torch.Generator().manual_seed(0)) * 255
    want = F.interpolate(x, size=size_out, mode=mode, align_corners=False, antialias=antialias)
    got = resize(x, size_out, mode, antialias)
    assert got.shape == want.shape and got.dtype == x.dtype
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-5)


def test_resize_keeps_half_precision_and_refuses_other_modes() -> None:
    x = torch.rand(1, 1, 8, 8).half()
    assert resize(x, (4, 4)).dtype == torch.float16
    with pytest.raises(ValueError, match="nearest"):
        resize(x, (4, 4), "nearest")
