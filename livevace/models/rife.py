"""RIFE's IFNet, version 4.25 (Practical-RIFE), in plain torch: the in-between frames of the
output path (`livevace.output.interpolate`).

Facts honoured (hzwer/Practical-RIFE v4.25, `train_log/IFNet_HDv3.py`; the same network that
Daydream Scope's RIFE pipeline runs):
- a feature head (`encode`: conv 3→16 stride 2, two 3×3 convs, transposed conv 16→4 up 2,
  LeakyReLU 0.2 between) gives every frame 4 feature channels at full size;
- five flow blocks, coarse to fine at 1/16 … 1/1 of the (padded) frame, widths 192, 128, 96,
  64, 32. A block resizes its input by 1/scale (bilinear), runs two stride-2 convs, eight
  residual convs (`conv(x)·beta + x`, LeakyReLU 0.2) and a transposed conv + pixel shuffle
  to 13 channels at 2× — 4 of flow (t→0, t→1), 1 mask logit, 8 of feature carried to the
  next block — and resizes back (flow scaled by `scale`);
- the first block sees both frames, both features and the timestep; each later one the two
  frames and features warped by the flow so far, the timestep, the mask and the previous
  block's feature, plus the flow; flows add up, the mask is replaced;
- warping is `grid_sample` (bilinear, border, align_corners) at pixel + flow; the output is
  warped₀·σ(mask) + warped₁·(1 − σ(mask)); inputs are clamped to [0, 1];
- frame sizes must be multiples of 64 (the caller pads).

The published `flownet.pkl` is a state dict saved from DataParallel (`module.` before every
key); `load_ifnet` reads it strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from livevace.errors import ModelError
from livevace.models.wan.codec_weights import key_mismatches, read_file

MULTIPLE = 64
"""Frame sides are padded to a multiple of this (the coarsest block works at 1/16, then
halves twice more)."""
WIDTHS = (192, 128, 96, 64, 32)
SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)
FEATURES = 4
"""Channels of the feature head per frame."""
CARRIED = 8
"""Feature channels a block hands to the next."""
WHAT = "RIFE flownet"


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, True))


class Head(nn.Module):
    """Per-frame features (4 channels, full size)."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, FEATURES, 4, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.cnn0(x.clamp(0.0, 1.0)), 0.2)
        x = F.leaky_relu(self.cnn1(x), 0.2)
        x = F.leaky_relu(self.cnn2(x), 0.2)
        return self.cnn3(x)


class ResConv(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class IFBlock(nn.Module):
    """One refinement level: (flow delta, mask logit, carried feature) at full size."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2), _conv(c // 2, c))
        self.convblock = nn.Sequential(*(ResConv(c) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * (5 + CARRIED), 4, 2, 1),
                                      nn.PixelShuffle(2))

    def forward(self, x: Tensor, flow: Tensor | None, scale: float
                ) -> tuple[Tensor, Tensor, Tensor]:
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear",
                                 align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        tmp = self.lastconv(self.convblock(self.conv0(x)))
        tmp = F.interpolate(tmp, scale_factor=scale, mode="bilinear", align_corners=False)
        return tmp[:, :4] * scale, tmp[:, 4:5], tmp[:, 5:]


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample `image` at pixel + flow (bilinear, edge pixels beyond the border)."""
    h, w = image.shape[-2:]
    ys = torch.linspace(-1.0, 1.0, h, device=image.device, dtype=torch.float32)
    xs = torch.linspace(-1.0, 1.0, w, device=image.device, dtype=torch.float32)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # [h, w, 2] (x, y)
    flow = flow.float()
    shift = torch.stack((flow[:, 0] / ((w - 1) / 2.0), flow[:, 1] / ((h - 1) / 2.0)), -1)
    grid = base + shift
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.to(image.dtype)


class IFNet(nn.Module):
    """Frames [B, 3, H, W] in [0, 1] (H, W multiples of `MULTIPLE`) and timesteps [B] →
    the frames at those times."""

    def __init__(self) -> None:
        super().__init__()
        ins = (7 + 2 * FEATURES,) + (8 + 4 + 2 * FEATURES + CARRIED,) * 4
        for i, (cin, c) in enumerate(zip(ins, WIDTHS)):
            self.add_module(f"block{i}", IFBlock(cin, c))
        self.encode = Head()

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(WIDTHS))]

    def forward(self, img0: Tensor, img1: Tensor, t: Tensor, feat0: Tensor | None = None,
                feat1: Tensor | None = None) -> Tensor:
        """`feat0`/`feat1`: the frames' `encode` features when the caller already has them
        (a chunk's frames each take part in two pairs)."""
        f0 = self.encode(img0) if feat0 is None else feat0
        f1 = self.encode(img1) if feat1 is None else feat1
        return self.pairs(pack(img0, img1, t, f0, f1))

    def pairs(self, packed: Tensor) -> Tensor:
        """The in-betweens of packed pairs (`pack`): one tensor in, so a caller may replay it
        from a CUDA graph per batch size."""
        f = FEATURES
        img0, img1 = packed[:, :3].clamp(0.0, 1.0), packed[:, 3:6].clamp(0.0, 1.0)
        f0, f1, step = packed[:, 6:6 + f], packed[:, 6 + f:6 + 2 * f], packed[:, 6 + 2 * f:]
        first, *rest = self.blocks
        flow, mask, feat = first(torch.cat((img0, img1, f0, f1, step), 1), None, SCALES[0])
        warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        for block, scale in zip(rest, SCALES[1:]):
            wf0, wf1 = warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4])
            x = torch.cat((warped0, warped1, wf0, wf1, step, mask, feat), 1)
            delta, mask, feat = block(x, flow, scale)
            flow = flow + delta
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


PACKED = 3 + 3 + 2 * FEATURES + 1
"""Channels of a packed pair (`pack`)."""


def pack(img0: Tensor, img1: Tensor, t: Tensor, feat0: Tensor, feat1: Tensor) -> Tensor:
    """Pairs [B, 3 + 3 + 2·FEATURES + 1, H, W] for `IFNet.pairs`: both frames, both frames'
    features and the timestep as a plane (the first block's input, in its order)."""
    b, _, h, w = img0.shape
    step = t.to(img0.dtype).view(b, 1, 1, 1).expand(b, 1, h, w)
    return torch.cat((img0, img1, feat0, feat1, step), 1)


def load_ifnet(path: Path) -> IFNet:
    """The network with the weights of `path` (Practical-RIFE v4.25's `flownet.pkl`, with or
    without the `module.` prefix; as the published loader does, a file with `module.` keys
    is read for those alone); ModelError naming the offending keys otherwise."""
    state = {k: v for k, v in read_file(path, WHAT).items() if isinstance(v, Tensor)}
    if any(k.startswith("module.") for k in state):  # the network is what DataParallel saved
        state = {k.removeprefix("module."): v for k, v in state.items() if k.startswith("module.")}
    net = IFNet()
    missing, unexpected, wrong = key_mismatches(net.state_dict(), state)
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(keys[:3])}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ModelError(f"{WHAT}: {path} is not RIFE v4.25 ({'; '.join(parts)})")
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)
