"""The live parameters one call of the `vace` pipeline runs with, typed.

The node's loop hands the pipeline a registry snapshot (a plain dict) per call; the pipeline
reads it once, here (`ChunkSettings.of`), and everything below the call takes the frozen
settings: one place that knows how a snapshot's values are read, and no chunk that sees half
of a change. What changed since the last call, and when that takes effect, is the registry's
to say (`livevace.params.changes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from livevace.models.wan.vace import VaceStrength
from livevace.params import LORA_SLOTS, Prompt


@dataclass(frozen=True)
class ChunkSettings:
    """One call's live parameters (see `livevace.params.REGISTRY` for their meaning)."""

    prompts: tuple[Prompt, ...]
    prompt_blend: str
    transition_chunks: int
    steps: tuple[int, ...]
    """The sampler's steps: descending, without repeats, whatever order they came in."""
    seed: int
    chunk_frames: int
    ema_sink_alpha: float
    decoder: str
    strength: VaceStrength
    """The hint strength: the VACE scales and the layer profile together."""
    depth_model: str
    vace_enabled: bool
    control: str
    mask: str
    mask_image: str
    outpaint: tuple[float, ...]
    reference_images: tuple[str, ...]
    first_frame_image: str
    last_frame_image: str
    noise_scale: float
    noise_controller: bool
    loras: tuple[tuple[str, float], ...]
    """(file, scale) of each LoRA slot."""

    @classmethod
    def of(cls, snapshot: Mapping[str, Any]) -> ChunkSettings:
        """The settings a registry snapshot asks for."""
        p = snapshot
        return cls(
            prompts=tuple(p["prompt"]),
            prompt_blend=str(p["prompt_blend"]),
            transition_chunks=int(p["transition_chunks"]),
            steps=tuple(sorted({int(s) for s in p["denoising_steps"]}, reverse=True)),
            seed=int(p["seed"]),
            chunk_frames=int(p["chunk_frames"]),
            ema_sink_alpha=float(p["ema_sink_alpha"]),
            decoder=str(p["decoder"]),
            strength=VaceStrength(float(p["vace_context_scale"]),
                                  float(p["vace_generation_scale"]),
                                  float(p["vace_refinement_scale"]),
                                  tuple(p["vace_layer_profile"])),
            depth_model=str(p["depth_model"]),
            vace_enabled=bool(p["vace_enabled"]),
            control=str(p["control"]),
            mask=str(p["mask"]),
            mask_image=str(p["mask_image"]),
            outpaint=tuple(float(r) for r in p["outpaint"]),
            reference_images=tuple(str(path) for path in p["reference_images"]),
            first_frame_image=str(p["first_frame_image"]),
            last_frame_image=str(p["last_frame_image"]),
            noise_scale=float(p["noise_scale"]),
            noise_controller=bool(p["noise_controller"]),
            loras=tuple((str(p[f"lora_{n}"]), float(p[f"lora_{n}_scale"]))
                        for n in range(1, LORA_SLOTS + 1)),
        )

    @property
    def keyframes(self) -> dict[str, str]:
        """The keyframe image paths by position ("first", "last"; "" = none)."""
        return {"first": self.first_frame_image, "last": self.last_frame_image}
