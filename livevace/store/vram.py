"""How much GPU memory the vace pipeline needs, and a refusal before loading when it won't fit.

Loading 14 GB of weights and then dying with "CUDA out of memory" mid-set is the worst way to
learn that a GPU is too small. `ensure_fits` estimates the peak from the settings, compares it
with what the GPU has free, and refuses with one line: the estimate, the GPU, and the changes
that would fit.

The estimate is a model of the streaming pipeline, not a measurement:
- weights: parameter counts of Wan2.1-1.3B (DESIGN §4), its 15 VACE blocks (the LongLive
  LoRA is merged at load, so it adds nothing), the Wan VAE, the tiny decoder, and UMT5-XXL
  when the text encoder sits on the GPU;
- the static self-attention KV cache: 30 blocks × K and V × window × tokens per latent frame
  (H/16 · W/16) × 1536, plus the cached text K/V (512 tokens per block);
- activations of one chunk's forward, assuming memory-efficient attention (SDPA flash /
  cuDNN, never the N×M matrix): per token roughly ten model-wide tensors and the FFN's two
  8960-wide ones, fp32 modulation temporaries, and the 15 VACE hints held until injected;
- codec working sets: the Wan VAE's full-resolution feature maps and causal-conv caches
  (≈2 GB at 832×480 in bf16, the figure streaming decoders show), the TAE's far smaller ones;
- a fixed workspace for cuBLAS/cuDNN and CUDA graphs, and a margin for fragmentation.
GPU benchmarks (`livevace bench`) report measured peaks to calibrate these constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from livevace.errors import ModelError
from livevace.params import param

GB = 1e9
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}

DIM, FFN, LAYERS, HEAD_OUT = 1536, 8960, 30, 64
TEXT_DIM, FREQ_DIM, TEXT_TOKENS = 4096, 256, 512
VACE_LAYERS, VACE_IN = 15, 96
T5_VOCAB, T5_DIM, T5_FFN, T5_LAYERS, T5_BUCKETS, T5_HEADS = 256384, 4096, 10240, 24, 32, 64
VAE_PARAMS = 127e6            # Wan2.1_VAE.pth: 508 MB of fp32
TAE_PARAMS = 11.3e6           # taew2_1.pth: 22.7 MB of fp16
VAE_BYTES_PER_PIXEL = 2500    # working set / (H·W·dtype bytes): ≈2 GB at 832×480 bf16
TAE_BYTES_PER_PIXEL = 3 * 64 * 4  # three 64-channel maps over the 4 frames of a latent frame
WORKSPACE = 0.75 * GB
MARGIN = 0.10


def _block_params(dim: int, ffn: int) -> int:
    """One Wan block: self- and cross-attention (q,k,v,o + q/k RMSNorm), FFN, norm3, modulation."""
    attention = 4 * (dim * dim + dim) + 2 * dim
    return 2 * attention + (2 * dim * ffn + ffn + dim) + 2 * dim + 6 * dim


DIT_PARAMS = (LAYERS * _block_params(DIM, FFN)
              + 16 * 4 * DIM + DIM                                     # patch embedding
              + TEXT_DIM * DIM + DIM + DIM * DIM + DIM                 # text embedding
              + FREQ_DIM * DIM + DIM + DIM * DIM + DIM + DIM * 6 * DIM + 6 * DIM  # time
              + DIM * HEAD_OUT + HEAD_OUT + 2 * DIM)                   # head
VACE_PARAMS = (VACE_LAYERS * (_block_params(DIM, FFN) + DIM * DIM + DIM)  # + after_proj
               + DIM * DIM + DIM + VACE_IN * 4 * DIM + DIM)               # before_proj, patch
T5_PARAMS = (T5_VOCAB * T5_DIM + T5_DIM
             + T5_LAYERS * (4 * T5_DIM * T5_DIM + 3 * T5_DIM * T5_FFN + 2 * T5_DIM
                            + T5_BUCKETS * T5_HEADS))


@dataclass(frozen=True)
class VramSettings:
    """What decides the pipeline's memory. Defaults follow the registry and LongLive."""

    width: int = 832
    height: int = 480
    chunk_frames: int = int(param("chunk_frames").default)
    window_frames: int = 12
    """Latent frames in the self-attention KV cache (LongLive: 12, the first 3 a sink)."""
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    text_encoder: Literal["gpu", "cpu"] = "gpu"
    text_encoder_dtype: Literal["bf16", "fp8"] = "fp8"
    decoder: str = str(param("decoder").default)
    vace: bool = True
    encodes_video: bool = True
    """Input video, control or references go through the Wan VAE encoder (all but t2v)."""
    vace_cache: bool = False
    """VACE blocks keep a KV cache of their own (else they attend within the chunk)."""
    annotator_gb: float = 0.0
    """GPU annotators (depth) running beside the generator."""

    @property
    def tokens_per_frame(self) -> int:
        return math.ceil(self.height / 16) * math.ceil(self.width / 16)

    def describe(self) -> str:
        text = ("off" if self.text_encoder == "cpu"
                else f"on the GPU in {self.text_encoder_dtype}")
        return (f"{self.width}×{self.height}, chunk {self.chunk_frames}, window "
                f"{self.window_frames}, {self.dtype}, decoder {self.decoder}, text encoder {text}")


@dataclass(frozen=True)
class VramEstimate:
    """Peak GPU memory by part, in bytes."""

    settings: VramSettings
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def breakdown(self) -> str:
        return ", ".join(f"{name} {v / GB:.1f}" for name, v in self.parts.items() if v) + " GB"


def estimate(s: VramSettings) -> VramEstimate:
    """The model above, part by part."""
    b = DTYPE_BYTES[s.dtype]
    pixels = s.width * s.height
    chunk_tokens = s.chunk_frames * s.tokens_per_frame
    cached_blocks = LAYERS + (VACE_LAYERS if s.vace and s.vace_cache else 0)
    text_blocks = LAYERS + (VACE_LAYERS if s.vace else 0)
    per_token = b * (10 * DIM + 2 * FFN) + 4 * 4 * DIM
    parts = {
        "dit": DIT_PARAMS * b,
        "vace": VACE_PARAMS * b if s.vace else 0.0,
        "text encoder": (T5_PARAMS * DTYPE_BYTES[s.text_encoder_dtype]
                         if s.text_encoder == "gpu" else 0.0),
        "vae": VAE_PARAMS * b if (s.encodes_video or s.decoder == "wan") else 0.0,
        "tae": TAE_PARAMS * b if s.decoder == "tae" else 0.0,
        "kv cache": cached_blocks * 2 * s.window_frames * s.tokens_per_frame * DIM * b,
        "text kv": text_blocks * 2 * TEXT_TOKENS * DIM * b,
        "activations": chunk_tokens * per_token
        + (VACE_LAYERS * chunk_tokens * DIM * b if s.vace else 0.0),
        "codec work": max(VAE_BYTES_PER_PIXEL * pixels * b if (s.encodes_video or s.decoder == "wan")
                          else 0.0, TAE_BYTES_PER_PIXEL * pixels * b if s.decoder == "tae" else 0.0),
        "annotators": s.annotator_gb * GB,
        "workspace": WORKSPACE,
    }
    parts["margin"] = MARGIN * sum(parts.values())
    return VramEstimate(s, parts)


REMEDIES: tuple[tuple[str, dict[str, object]], ...] = (
    ("text encoder on the CPU", {"text_encoder": "cpu"}),
    ("fp8 text encoder", {"text_encoder_dtype": "fp8"}),
    ("decoder tae", {"decoder": "tae"}),
    ("chunk_frames 1", {"chunk_frames": 1}),
    ("576×320", {"width": 576, "height": 320}),
)
"""Single changes a VJ can make, cheapest in quality first."""


def check(s: VramSettings, free_bytes: float, total_bytes: float, device: str) -> VramEstimate:
    """The estimate if it fits in `free_bytes`; otherwise ModelError with the changes that fit."""
    est = estimate(s)
    if est.total <= free_bytes:
        return est
    fixes = []
    for label, change in REMEDIES:
        alt = replace(s, **change)  # type: ignore[arg-type]
        if alt != s and estimate(alt).total <= free_bytes:
            fixes.append(f"{label} ({estimate(alt).total / GB:.1f} GB)")
    if fixes:
        hint = "it would fit with " + " or ".join(fixes)
    else:
        hint = _combined_hint(s, free_bytes)
    raise ModelError(
        f"not enough GPU memory: the vace pipeline needs about {est.total / GB:.1f} GB "
        f"({s.describe()}) but {device} has {free_bytes / GB:.1f} GB free of "
        f"{total_bytes / GB:.1f} GB; {hint} — or use --pipeline controlmap")


def _combined_hint(s: VramSettings, free_bytes: float) -> str:
    """Savings applied one after another, keeping those that help, until it fits."""
    used, current = [], s
    for label, change in REMEDIES:
        alt = replace(current, **change)  # type: ignore[arg-type]
        if estimate(alt).total < estimate(current).total:
            used.append(label)
            current = alt
            if estimate(current).total <= free_bytes:
                return f"it would fit with {' + '.join(used)} ({estimate(current).total / GB:.1f} GB)"
    return f"even with every saving it needs {estimate(current).total / GB:.1f} GB"


def gpu_memory(device_index: int | None = None) -> tuple[float, float, str] | None:
    """(free, total, name) of a CUDA device, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device() if device_index is None else device_index
    free, total = torch.cuda.mem_get_info(index)
    return float(free), float(total), f"GPU {index} ({torch.cuda.get_device_name(index)})"


def ensure_fits(s: VramSettings, device_index: int | None = None) -> VramEstimate:
    """Call before loading weights: refuses (ModelError) when the GPU is too small. Without
    CUDA there is nothing to check and the estimate is returned as is."""
    memory = gpu_memory(device_index)
    if memory is None:
        return estimate(s)
    free, total, name = memory
    return check(s, free, total, name)
