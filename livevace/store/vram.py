"""How much GPU memory the vace pipeline needs, and a refusal before loading when it won't fit.

Loading 14 GB of weights and then dying with "CUDA out of memory" mid-set is the worst way to
learn that a GPU is too small. `ensure_fits` estimates the peak from the settings, compares it
with what the GPU has free, and refuses with one line: the estimate, the GPU, and the changes
that would fit (the text encoder offloaded, FP8 weights, a smaller size).

The estimate is a model of the streaming pipeline, not a measurement. What differs between
the zoo's models is in `MODELS` (the recipes' facts as plain numbers — store/ sits below
models/; a test holds each entry to its recipe and to the cache it really allocates):
- weights: parameter counts of the model's DiT (Wan2.1-1.3B or 14B, DESIGN §4) and its VACE
  blocks (a LoRA is merged at load, so it adds nothing), the float32 time path included; with
  FP8 weights the blocks' matrices take one byte each plus a float32 scale per row
  (`models.wan.fp8_weights`); with FP8 compute over bf16 weights, the e4m3 copies beside
  them (`fp8_copies`); the Wan VAE, the tiny decoder, and UMT5-XXL when the text encoder
  sits on the GPU;
- the static self-attention KV cache: main blocks × cached frames × tokens per latent frame
  (H/16 · W/16) × width, where the frames count keys and values apart (a window of 12 is 24,
  plus the un-rotated sink keys a cache keeps beside them), times its rows (StreamDiffusionV2
  streams one row per denoising step); plus the cached text K/V (512 tokens per block);
- activations of one chunk's forward, assuming memory-efficient attention (SDPA flash /
  cuDNN, never the N×M matrix): per token roughly ten model-wide tensors and the FFN's two
  wide ones, fp32 modulation temporaries, and the VACE hints held until injected;
- the Wan VAE, weights and working set (its full-resolution feature maps and causal-conv
  caches, ≈2 GB at 832×480 in bf16, the figure streaming decoders show), whatever the mode and
  decoder: the model set always loads it, and `prepare` runs its encoder and decoder for every
  plan, so that a live switch of mode or decoder neither compiles nor autotunes mid-show (the
  TAE's far smaller working set never runs beside it);
- what the pipeline holds beside the networks (the depth annotator, the next chunk's
  context encoded beside the DiT, staging buffers) as one allowance, the same for every
  model: calibrated on measured peaks, where it is what the parts above leave unexplained;
- a fixed workspace for cuBLAS/cuDNN and CUDA graphs, and a margin for fragmentation.
`livevace bench pipeline --model NAME` sets this estimate beside each row's measured peak
(BENCHMARKS.md): the way to recalibrate these constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from livevace.errors import ModelError
from livevace.params import param

GB = 1e9
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}

TEXT_TOKENS, IN_CHANNELS, PATCH, VACE_IN = 512, 16, 4, 96
T5_VOCAB, T5_DIM, T5_FFN, T5_LAYERS, T5_BUCKETS, T5_HEADS = 256384, 4096, 10240, 24, 32, 64
VAE_PARAMS = 127e6            # Wan2.1_VAE.pth: 508 MB of fp32
TAE_PARAMS = 11.3e6           # taew2_1.pth: 22.7 MB of fp16
VAE_BYTES_PER_PIXEL = 2500    # working set / (H·W·dtype bytes): ≈2 GB at 832×480 bf16
WORKSPACE = 0.75 * GB
PIPELINE = 3.0 * GB
MARGIN = 0.10


@dataclass(frozen=True)
class DitShape:
    """The widths of a Wan2.1 DiT and how many main and VACE blocks it has."""

    dim: int
    ffn: int
    layers: int
    vace_layers: int
    text_dim: int = 4096
    freq_dim: int = 256


WAN_1_3B = DitShape(dim=1536, ffn=8960, layers=30, vace_layers=15)
WAN_14B = DitShape(dim=5120, ffn=13824, layers=40, vace_layers=8)


@dataclass(frozen=True)
class Params:
    """Parameter counts by how they are stored: the blocks' weight matrices (FP8 candidates,
    with their rows: one scale each), the float32 rest (time path, modulation tables) and
    everything else in the model's dtype."""

    matrices: int = 0
    rows: int = 0
    fp32: int = 0
    other: int = 0

    def __add__(self, o: "Params") -> "Params":
        return Params(self.matrices + o.matrices, self.rows + o.rows, self.fp32 + o.fp32,
                      self.other + o.other)

    def __mul__(self, n: int) -> "Params":
        return Params(self.matrices * n, self.rows * n, self.fp32 * n, self.other * n)

    @property
    def total(self) -> int:
        return self.matrices + self.fp32 + self.other

    def bytes(self, dtype_bytes: int, fp8: bool) -> float:
        if fp8:
            return self.matrices + 4 * self.rows + 4 * self.fp32 + dtype_bytes * self.other
        return dtype_bytes * (self.matrices + self.other) + 4 * self.fp32


def _linear(n_in: int, n_out: int) -> Params:
    """A block's Linear: an FP8 candidate matrix and its bias."""
    return Params(matrices=n_in * n_out, rows=n_out, other=n_out)


def _block(d: DitShape) -> Params:
    """One Wan block: self- and cross-attention (q,k,v,o + q/k RMSNorm), norm3, FFN; the
    norms and the modulation table in float32."""
    attention = _linear(d.dim, d.dim) * 4 + Params(fp32=2 * d.dim)
    return (attention * 2 + _linear(d.dim, d.ffn) + _linear(d.ffn, d.dim)
            + Params(fp32=2 * d.dim + 6 * d.dim))


def dit_params(d: DitShape) -> Params:
    """The main DiT: blocks, patch and text embeddings, float32 time path, head."""
    dim = d.dim
    return (_block(d) * d.layers
            + Params(other=IN_CHANNELS * PATCH * dim + dim                       # patch
                     + d.text_dim * dim + dim + dim * dim + dim                  # text
                     + dim * IN_CHANNELS * PATCH + IN_CHANNELS * PATCH,          # head
                     fp32=d.freq_dim * dim + dim + dim * dim + dim               # time
                     + dim * 6 * dim + 6 * dim + 2 * dim))                       # + head table


def vace_params(d: DitShape) -> Params:
    """The VACE blocks (each with its after_proj, the first with before_proj) and the
    96-channel patch embedding."""
    return ((_block(d) + _linear(d.dim, d.dim)) * d.vace_layers + _linear(d.dim, d.dim)
            + Params(other=VACE_IN * PATCH * d.dim + d.dim))


def fp8_copies(d: DitShape, vace: bool) -> Params:
    """What FP8 compute (`--precision fp8`) adds beside block weights stored in bf16: an e4m3
    copy of each block's FP8 candidates (`compiled.fp8_candidates`: the fused QKV, the cross
    query, the FFN; the two attention output projections stay bf16), one float32 scale per
    row, in every main block and VACE block. FP8-stored weights lend their rows instead and
    add nothing."""
    per_block = Params(matrices=4 * d.dim * d.dim + 2 * d.dim * d.ffn, rows=5 * d.dim + d.ffn)
    return per_block * (d.layers + (d.vace_layers if vace else 0))


DIT_PARAMS = dit_params(WAN_1_3B).total
VACE_PARAMS = vace_params(WAN_1_3B).total
T5_PARAMS = (T5_VOCAB * T5_DIM + T5_DIM
             + T5_LAYERS * (4 * T5_DIM * T5_DIM + 3 * T5_DIM * T5_FFN + 2 * T5_DIM
                            + T5_BUCKETS * T5_HEADS))


@dataclass(frozen=True)
class ModelMemory:
    """One zoo model's facts that decide its memory (its recipe's, as numbers)."""

    dit: DitShape
    cached_frames: int
    """Latent frames of keys or values its cache holds per main block and row: keys and
    values count apart, and so do keys kept un-rotated beside them (LongLive: a 12-frame
    window is 24, plus sink + chunk = 6 frames of un-rotated keys)."""
    stream_batch: bool = False
    """One cache row per denoising step, all denoised in one forward (StreamDiffusionV2)."""

    def rows(self, steps: int) -> int:
        return steps if self.stream_batch else 1


MODELS: dict[str, ModelMemory] = {
    "longlive": ModelMemory(WAN_1_3B, cached_frames=2 * 12 + (3 + 3)),  # + sink & chunk keys
    "self-forcing": ModelMemory(WAN_1_3B, cached_frames=2 * 12 + (3 + 3)),
    "reward-forcing": ModelMemory(WAN_1_3B, cached_frames=3 * 9),  # + every key un-rotated
    "streamdiffusionv2": ModelMemory(WAN_1_3B, cached_frames=2 * 6, stream_batch=True),
    "streamdiffusionv2-14b": ModelMemory(WAN_14B, cached_frames=2 * 6, stream_batch=True),
    # a 15-slot window (12 + a 3-frame bank), sink & chunk keys, bank keys, one staged frame
    "memflow": ModelMemory(WAN_1_3B, cached_frames=2 * 15 + (3 + 3) + 3 + 2),
    "krea-realtime": ModelMemory(WAN_14B, cached_frames=2 * 6),  # rebuilt each chunk: no sink
}
"""The zoo's models by name (`params.MODELS`); the default first."""


def cache_bytes(blocks: int, dim: int, cached_frames: int, rows: int, frame_tokens: int,
                dtype_bytes: int) -> int:
    """The self-attention cache of `rows` streams: per block, `cached_frames` latent frames
    of keys or values (see `ModelMemory`), each frame_tokens × dim."""
    return blocks * rows * cached_frames * frame_tokens * dim * dtype_bytes


@dataclass(frozen=True)
class VramSettings:
    """What decides the pipeline's memory. Defaults follow the registry and LongLive."""

    width: int = 832
    height: int = 480
    chunk_frames: int = int(param("chunk_frames").default)
    model: str = "longlive"
    """The zoo's model (`MODELS`): its DiT's size and its cache's geometry."""
    steps: int = len(param("denoising_steps").default)
    """Denoising steps: the rows of a stream batch (StreamDiffusionV2)."""
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    weights_dtype: Literal["bf16", "fp8"] = "bf16"
    """fp8: the DiT's block matrices stored in FP8 (quality-affecting option)."""
    precision: Literal["bf16", "fp8"] = "bf16"
    """fp8: the block GEMMs computed in FP8 (`--precision fp8`, `fp8_copies`)."""
    text_encoder: Literal["gpu", "cpu"] = "gpu"
    text_encoder_dtype: Literal["bf16", "fp8"] = "fp8"
    vace: bool = True
    """The VACE module is loaded (whatever the mode: it is a live parameter)."""
    vace_cache: bool = False
    """VACE blocks keep a KV cache of their own (else they attend within the chunk)."""
    annotator_gb: float = 0.0
    """GPU annotators (depth) running beside the generator."""

    @property
    def tokens_per_frame(self) -> int:
        return math.ceil(self.height / 16) * math.ceil(self.width / 16)

    @property
    def memory(self) -> ModelMemory:
        try:
            return MODELS[self.model]
        except KeyError:
            raise ModelError(f"no memory estimate for model {self.model!r}; known: "
                             f"{', '.join(MODELS)}") from None

    def describe(self) -> str:
        text = ("off" if self.text_encoder == "cpu"
                else f"on the GPU in {self.text_encoder_dtype}")
        weights = (", fp8 weights" if self.weights_dtype == "fp8" else "") + (
            ", fp8 compute" if self.precision == "fp8" else "")
        return (f"{self.model}, {self.width}×{self.height}, chunk {self.chunk_frames}, "
                f"{self.dtype}{weights}, text encoder {text}")


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
    fp8 = s.weights_dtype == "fp8"
    m = s.memory
    d, rows = m.dit, m.rows(s.steps)
    pixels = s.width * s.height
    chunk_tokens = rows * s.chunk_frames * s.tokens_per_frame
    cached_blocks = d.layers + (d.vace_layers if s.vace and s.vace_cache else 0)
    text_blocks = d.layers + (d.vace_layers if s.vace else 0)
    per_token = b * (10 * d.dim + 2 * d.ffn) + 4 * 4 * d.dim
    parts = {
        "dit": dit_params(d).bytes(b, fp8),
        "vace": vace_params(d).bytes(b, fp8) if s.vace else 0.0,
        "fp8 copies": (fp8_copies(d, s.vace).bytes(b, True)
                       if s.precision == "fp8" and not fp8 else 0.0),
        "text encoder": (T5_PARAMS * DTYPE_BYTES[s.text_encoder_dtype]
                         if s.text_encoder == "gpu" else 0.0),
        "vae": VAE_PARAMS * b,
        "tae": TAE_PARAMS * b,
        "kv cache": cache_bytes(cached_blocks, d.dim, m.cached_frames, rows, s.tokens_per_frame,
                                b),
        "text kv": text_blocks * rows * 2 * TEXT_TOKENS * d.dim * b,
        "activations": chunk_tokens * per_token
        + (d.vace_layers * chunk_tokens * d.dim * b if s.vace else 0.0),
        "codec work": VAE_BYTES_PER_PIXEL * pixels * b,
        "annotators": s.annotator_gb * GB,
        "pipeline": PIPELINE,
        "workspace": WORKSPACE,
    }
    parts["margin"] = MARGIN * sum(parts.values())
    return VramEstimate(s, parts)


REMEDIES: tuple[tuple[str, dict[str, object]], ...] = (
    ("text encoder on the CPU", {"text_encoder": "cpu"}),
    ("fp8 text encoder", {"text_encoder_dtype": "fp8"}),
    ("fp8 weights", {"weights_dtype": "fp8"}),
    ("bf16 compute", {"precision": "bf16"}),
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
