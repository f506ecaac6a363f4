"""Wan2.1 DiT shapes: the public checkpoints' configs and tiny ones for tests.

Everything in `livevace.models.wan` is driven by a `WanConfig`, so the 14B family (Krea
Realtime) and the other 1.3B causal checkpoints (LongLive, Self-Forcing, Reward Forcing,
StreamDiffusionV2: same shapes as Wan2.1-T2V-1.3B) load through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class WanConfig:
    """Shapes of one Wan2.1 DiT (optionally with VACE blocks)."""

    name: str
    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    in_channels: int = 16
    out_channels: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    eps: float = 1e-6
    rope_theta: float = 10000.0
    vace_layers: tuple[int, ...] = ()
    """Main block after which each VACE hint is added (empty: no VACE branch)."""
    vace_in_channels: int = 96

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"{self.name}: dim {self.dim} not divisible by {self.num_heads} heads")
        if self.head_dim % 2 or any(d % 2 for d in self.rope_dims):
            raise ValueError(f"{self.name}: head_dim {self.head_dim} cannot be split for RoPE")
        if self.vace_layers:
            if self.vace_layers[0] != 0 or list(self.vace_layers) != sorted(set(self.vace_layers)):
                raise ValueError(f"{self.name}: VACE layers must be increasing and start at 0")
            if self.vace_layers[-1] >= self.num_layers:
                raise ValueError(f"{self.name}: VACE layer {self.vace_layers[-1]} beyond the model")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Channels of each head rotated by (frame, height, width): 44/42/42 at head_dim 128."""
        d = self.head_dim
        return d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)

    @property
    def has_vace(self) -> bool:
        return bool(self.vace_layers)

    @property
    def patch_channels(self) -> int:
        """Output features of the head: one latent patch."""
        p = self.patch
        return self.out_channels * p[0] * p[1] * p[2]

    def with_vace(self, layers: tuple[int, ...] | None = None) -> "WanConfig":
        """The same DiT with VACE blocks (default: after every second main layer)."""
        layers = tuple(range(0, self.num_layers, 2)) if layers is None else tuple(layers)
        return replace(self, name=f"{self.name}+vace", vace_layers=layers)

    def without_vace(self) -> "WanConfig":
        return replace(self, name=self.name.removesuffix("+vace"), vace_layers=())


WAN21_T2V_1_3B = WanConfig("wan2.1-t2v-1.3b", dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)
"""Wan2.1-T2V-1.3B and its causal students (LongLive, Self-Forcing, StreamDiffusionV2)."""

WAN21_VACE_1_3B = WAN21_T2V_1_3B.with_vace(tuple(range(0, 30, 2)))
"""Wan2.1-VACE-1.3B: 15 VACE blocks after main layers 0, 2, …, 28."""

WAN21_T2V_14B = WanConfig("wan2.1-t2v-14b", dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)
"""Wan2.1-T2V-14B and Krea Realtime 14B."""

WAN21_VACE_14B = WAN21_T2V_14B.with_vace(tuple(range(0, 40, 5)))
"""Wan2.1-VACE-14B: 8 VACE blocks after main layers 0, 5, …, 35."""

TINY = WanConfig("tiny", dim=64, ffn_dim=96, num_heads=2, num_layers=4, freq_dim=32, text_dim=24,
                 text_len=16)
"""Test size: head_dim 32 (RoPE 12/10/10), four layers, short text."""

TINY_VACE = TINY.with_vace((0, 2))

TINY_VACE_14B = replace(TINY, name="tiny-6", num_layers=6).with_vace((0, 5))
"""Test size with the 14B's VACE spacing: a hint after every fifth layer (0 and 5 of six)."""

CONFIGS: dict[str, WanConfig] = {
    c.name: c for c in (WAN21_T2V_1_3B, WAN21_VACE_1_3B, WAN21_T2V_14B, WAN21_VACE_14B, TINY,
                        TINY_VACE, TINY_VACE_14B)
}
