"""RIFE v4.25's IFNet (`livevace.models.rife`) against a slow functional reference written from
Practical-RIFE's published code facts (the state dict's tensors through F.conv2d, warping by
explicit bilinear sampling instead of grid_sample), and its strict loader."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from livevace.errors import ModelError
from livevace.models.rife import IFNet, load_ifnet
from wan_support import one_thread, rel_err


def random_ifnet(seed: int = 0) -> IFNet:
    """Random weights at a scale that keeps activations and flows moderate (8 residual convs
    per block: unit-gain weights, so nothing explodes or vanishes and every term counts)."""
    g = torch.Generator().manual_seed(seed)
    net = IFNet()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("beta"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
    return net.eval()


def lrelu(x: Tensor) -> Tensor:
    return torch.where(x >= 0, x, 0.2 * x)


def sample(image: Tensor, flow: Tensor) -> Tensor:
    """Bilinear sample of each pixel at (x + fx, y + fy), coordinates clamped to the frame."""
    b, c, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    px = (xs + flow[:, 0].double()).clamp(0, w - 1)
    py = (ys + flow[:, 1].double()).clamp(0, h - 1)
    x0, y0 = px.floor().long().clamp(max=w - 2), py.floor().long().clamp(max=h - 2)
    ax, ay = (px - x0).unsqueeze(1), (py - y0).unsqueeze(1)
    flat = image.double().reshape(b, c, h * w)

    def at(yy: Tensor, xx: Tensor) -> Tensor:
        idx = (yy * w + xx).reshape(b, 1, h * w).expand(b, c, h * w)
        return flat.gather(2, idx).reshape(b, c, h, w)

    top = at(y0, x0) * (1 - ax) + at(y0, x0 + 1) * ax
    bottom = at(y0 + 1, x0) * (1 - ax) + at(y0 + 1, x0 + 1) * ax
    return (top * (1 - ay) + bottom * ay).to(image.dtype)


def resize(x: Tensor, factor: float) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def reference_block(sd: dict[str, Tensor], i: int, x: Tensor, flow: Tensor | None,
                    scale: float) -> tuple[Tensor, Tensor, Tensor]:
    p = f"module.block{i}."
    x = resize(x, 1 / scale)
    if flow is not None:
        x = torch.cat((x, resize(flow, 1 / scale) / scale), 1)
    for j in range(2):
        x = lrelu(F.conv2d(x, sd[f"{p}conv0.{j}.0.weight"], sd[f"{p}conv0.{j}.0.bias"],
                           stride=2, padding=1))
    for j in range(8):
        q = f"{p}convblock.{j}."
        y = F.conv2d(x, sd[q + "conv.weight"], sd[q + "conv.bias"], padding=1)
        x = lrelu(y * sd[q + "beta"] + x)
    x = F.conv_transpose2d(x, sd[f"{p}lastconv.0.weight"], sd[f"{p}lastconv.0.bias"],
                           stride=2, padding=1)
    x = resize(F.pixel_shuffle(x, 2), scale)
    return x[:, :4] * scale, x[:, 4:5], x[:, 5:]


def reference_head(sd: dict[str, Tensor], x: Tensor) -> Tensor:
    p = "module.encode."
    x = x.clamp(0, 1)
    x = lrelu(F.conv2d(x, sd[p + "cnn0.weight"], sd[p + "cnn0.bias"], stride=2, padding=1))
    x = lrelu(F.conv2d(x, sd[p + "cnn1.weight"], sd[p + "cnn1.bias"], padding=1))
    x = lrelu(F.conv2d(x, sd[p + "cnn2.weight"], sd[p + "cnn2.bias"], padding=1))
    return F.conv_transpose2d(x, sd[p + "cnn3.weight"], sd[p + "cnn3.bias"], stride=2,
                              padding=1)


def reference(sd: dict[str, Tensor], img0: Tensor, img1: Tensor, t: float) -> Tensor:
    """One pair at a time, as Practical-RIFE's inference runs it."""
    img0, img1 = img0.clamp(0, 1), img1.clamp(0, 1)
    f0, f1 = reference_head(sd, img0), reference_head(sd, img1)
    step = torch.full_like(img0[:, :1], t)
    flow = mask = feat = None
    w0, w1 = img0, img1
    for i, scale in enumerate((16, 8, 4, 2, 1)):
        if flow is None:
            flow, mask, feat = reference_block(sd, i, torch.cat((img0, img1, f0, f1, step), 1),
                                               None, scale)
        else:
            wf0, wf1 = sample(f0, flow[:, :2]), sample(f1, flow[:, 2:4])
            fd, mask, feat = reference_block(
                sd, i, torch.cat((w0, w1, wf0, wf1, step, mask, feat), 1), flow, scale)
            flow = flow + fd
        w0, w1 = sample(img0, flow[:, :2]), sample(img1, flow[:, 2:4])
    m = torch.sigmoid(mask)
    return w0 * m + w1 * (1 - m)


def published_state(net: IFNet) -> dict[str, Tensor]:
    """The network's weights as Practical-RIFE's flownet.pkl holds them (DataParallel keys)."""
    return {f"module.{k}": v.clone() for k, v in net.state_dict().items()}


def test_ifnet_matches_the_reference_for_a_batch_of_timesteps(tmp_path, one_thread):
    net = random_ifnet()
    sd = published_state(net)
    path = tmp_path / "flownet.pkl"
    torch.save(sd, path)
    loaded = load_ifnet(path)
    g = torch.Generator().manual_seed(1)
    img0 = torch.rand(3, 3, 64, 128, generator=g)
    img1 = torch.roll(img0, shifts=(2, 5), dims=(2, 3)) * 0.9 + 0.05
    ts = torch.tensor([0.25, 0.5, 0.75])
    with torch.no_grad():
        out = loaded(img0, img1, ts)
        feats = loaded(img0, img1, ts, loaded.encode(img0), loaded.encode(img1))
        for k, t in enumerate(ts.tolist()):
            ref = reference(sd, img0[k:k + 1], img1[k:k + 1], t)
            assert rel_err(out[k:k + 1], ref) < 1e-5
        assert rel_err(feats, out) < 1e-6
    assert out.shape == img0.shape
    assert float((out - img0).abs().mean()) > 1e-3  # not a copy of either input
    assert float((out - img1).abs().mean()) > 1e-3


def test_the_loader_takes_keys_without_the_wrapper_prefix_and_ignores_others_beside_it(
        tmp_path):
    net = random_ifnet(seed=2)
    bare, wrapped = tmp_path / "bare.pth", tmp_path / "flownet.pkl"
    torch.save(net.state_dict(), bare)
    torch.save({**published_state(net), "step": torch.zeros(1)}, wrapped)  # not the network
    for path in (bare, wrapped):
        loaded = load_ifnet(path)
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v)


def test_a_checkpoint_of_another_version_is_one_clear_error(tmp_path):
    sd = published_state(random_ifnet())
    del sd["module.block4.lastconv.0.bias"]  # 4.6 and others have four blocks, no block4
    sd["module.block0.extra.weight"] = torch.zeros(1)
    path = tmp_path / "flownet.pkl"
    torch.save(sd, path)
    with pytest.raises(ModelError, match=r"not RIFE v4.25.*missing: block4.lastconv.0.bias"
                                         r".*unexpected: block0.extra.weight"):
        load_ifnet(path)
    with pytest.raises(ModelError, match="does not exist"):
        load_ifnet(tmp_path / "absent.pkl")
