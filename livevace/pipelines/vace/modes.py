"""Which generation mode a chunk runs in, read from what the VJ has supplied — there is no
mode switch to set (VACE's own principle: the task follows from the inputs).

- the input video goes through VACE as a control video when `vace_enabled` (annotated by
  `control`; `control=none` passes the raw video);
- otherwise it initialises the latents when `noise_scale` < 1 (video-to-video), and is
  ignored at `noise_scale` = 1 (text-to-video);
- `mask` person / person_inverse / image and non-zero `outpaint` ratios add a region to
  regenerate (inpainting, outpainting); the rest of the picture is kept;
- `reference_images` add style/subject references (in the cache's sink, see `references`);
- `first_frame_image` / `last_frame_image` add keyframes (see `keyframes`).
Any combination composes; `Plan.describe` names it for the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from livevace.pipelines.vace.settings import ChunkSettings

PERSON_MASKS = ("person", "person_inverse")


@dataclass(frozen=True)
class Plan:
    """What one chunk uses (built from its settings)."""

    control: str | None
    """Annotator feeding VACE ("none": the raw video), or None: no control video."""
    person_mask: str | None
    mask_image: str
    outpaint: tuple[float, ...] | None
    references: tuple[str, ...]
    first_frame: str
    last_frame: str
    noise_scale: float

    @property
    def annotator(self) -> str | None:
        """The annotator to run on the input (None for the raw video or no control)."""
        return self.control if self.control not in (None, "none") else None

    @property
    def latent_init(self) -> bool:
        """Video-to-video: the encoded input, noised, is where denoising starts."""
        return self.control is None and self.noise_scale < 1.0

    @property
    def has_region(self) -> bool:
        return bool(self.person_mask or self.mask_image or self.outpaint)

    def describe(self) -> str:
        parts = []
        if self.control is not None:
            parts.append("VACE raw-video control" if self.control == "none"
                         else f"VACE {self.control} control")
        elif self.latent_init:
            parts.append(f"video-to-video (noise {self.noise_scale:.2f})")
        else:
            parts.append("text-to-video")
        if self.person_mask:
            parts.append("inpainting the " + ("person" if self.person_mask == "person"
                                              else "background"))
        if self.mask_image:
            parts.append("inpainting a mask image")
        if self.outpaint:
            parts.append("outpainting " + "/".join(f"{r:g}" for r in self.outpaint))
        if self.references:
            parts.append(f"{len(self.references)} reference image"
                         + ("s" if len(self.references) > 1 else ""))
        if self.first_frame or self.last_frame:
            which = [n for n, p in (("first", self.first_frame), ("last", self.last_frame)) if p]
            parts.append(" and ".join(which) + " frame")
        return " + ".join(parts)


def plan(settings: ChunkSettings) -> Plan:
    mask = settings.mask
    outpaint = settings.outpaint
    return Plan(
        control=settings.control if settings.vace_enabled else None,
        person_mask=mask if mask in PERSON_MASKS else None,
        mask_image=settings.mask_image if mask == "image" else "",
        outpaint=outpaint if any(r > 0 for r in outpaint) else None,
        references=settings.reference_images,
        first_frame=settings.first_frame_image,
        last_frame=settings.last_frame_image,
        noise_scale=settings.noise_scale,
    )
