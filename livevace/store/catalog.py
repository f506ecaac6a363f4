"""Every model file livevace can use, in one place: where it comes from, where it lives,
what it is for, and how to tell a right file from a wrong one without loading it.

Layout. A file lives at `<models dir>/<folder>/<path in repo>`, where `folder` is the last
part of the Hugging Face repo id — exactly where Daydream Scope's downloader puts the same
file under `~/.daydream-scope/models` (Scope: `local_dir = models_root / repo_id.split("/")[-1]`,
e.g. `LongLive-1.3B/models/longlive_base.pt`, `WanVideo_comfy/Wan2_1-VACE_module_1_3B_bf16.safetensors`).
The annotators' files (depth models, mediapipe tasks) are declared in
`livevace.store.annotator_files` and listed here too; they keep their own folders.

Scope reuse: files found in Scope's folder are used *in place* (`paths.search_dirs()` looks
in our models directory first, then Scope's). Nothing is copied or symlinked: a copy would
cost a VJ another 20 GB, and symlinks need developer mode on Windows. If Scope is later
uninstalled, `livevace models verify` reports the files missing and `pull` fetches them.

Sizes are approximate (as Hugging Face lists them, or estimated from parameter counts where
the hub page could not be read); `verify` uses them only as a floor (`MIN_SIZE_FRACTION`)
to catch placeholders and partial copies. The real checks are the format's own integrity
(safetensors data offsets, the zip directory of torch checkpoints) and the shapes of a few
tensors that identify the model.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from livevace.store.annotator_files import ALL as ANNOTATOR_WEIGHTS
from livevace.store.annotator_files import WeightFiles
from livevace.errors import ModelError
from livevace.store import headers, paths
from livevace.params import param

MIN_SIZE_FRACTION = 0.4
"""A file smaller than this fraction of its listed size is not the real thing."""

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
"""Files whose tensors `verify` reads (others are only checked for presence and size)."""


@dataclass(frozen=True)
class Tensor:
    """One tensor that identifies a checkpoint. `pattern` is an fnmatch pattern over the
    (dot-flattened) key names, so `*blocks.0.self_attn.q.weight` matches with or without a
    `generator.model.` prefix; every match must have `shape` (and `dtype`, when given)."""

    pattern: str
    shape: tuple[int, ...]
    dtype: str = ""


@dataclass(frozen=True)
class Licence:
    """The terms a file comes under, as its authors state them. `pull` and `list` say it in
    plain words, so a VJ knows before a paid show that a model is non-commercial."""

    name: str
    commercial: bool
    source: str
    """Where the terms are stated (a model card, a repository's licence or its file headers)."""

    def __str__(self) -> str:
        return self.name if self.commercial else f"{self.name}, NON-COMMERCIAL use only"


@dataclass(frozen=True)
class ModelFile:
    """A catalogue entry: the download (`weights`) plus what livevace needs to know about it."""

    weights: WeightFiles
    purpose: str
    features: tuple[str, ...]
    """Pipeline features that need it (as a VJ would name them)."""
    licence: Licence
    tensors: tuple[Tensor, ...] = ()
    scope: tuple[str, ...] = ()
    """Where Daydream Scope keeps the same file(s), relative to its models folder."""

    @property
    def key(self) -> str:
        return self.weights.key

    @property
    def source(self) -> str:
        w = self.weights
        return f"hf:{w.repo_id}" if w.repo_id else w.url

    @property
    def size_bytes(self) -> int:
        return int(self.weights.size_mb * 1e6)

    @property
    def names(self) -> tuple[str, ...]:
        """Every file the entry may have, relative to its folder, without repeats."""
        return tuple(dict.fromkeys((*self.weights.files, *self.weights.any_of)))

    def find(self) -> Path | None:
        """The folder holding the files (ours first, then Scope's), or None."""
        return self.weights.find()

    def weights_path(self, folder: Path) -> Path | None:
        """The file whose tensors identify the model, inside a found folder."""
        for name in (*self.weights.any_of, *self.weights.files):
            if name.endswith(WEIGHT_SUFFIXES) and (folder / name).is_file():
                return folder / name
        return None

    def path(self, folder: Path) -> Path:
        """What a loader opens: the weights file or the single file, else the folder holding
        all the files (e.g. `…/Wan2.1-T2V-1.3B/google/umt5-xxl` for the tokenizer)."""
        weights = self.weights_path(folder)
        if weights is not None:
            return weights
        if len(self.names) == 1:
            return folder / self.names[0]
        return folder / os.path.commonpath([str(Path(n).parent) for n in self.names])

    def present_files(self, folder: Path) -> list[Path]:
        return [folder / n for n in self.names if (folder / n).is_file()]


def _hf(key: str, description: str, repo_id: str, file: str, size_mb: float, purpose: str,
        features: tuple[str, ...], licence: Licence, tensors: tuple[Tensor, ...],
        in_scope: bool) -> ModelFile:
    """A single file from a Hugging Face repo, in Scope's `<repo name>/<path>` layout."""
    folder = repo_id.split("/")[-1]
    return ModelFile(
        WeightFiles(key=key, description=description, folder=folder, files=(file,),
                    repo_id=repo_id, size_mb=size_mb),
        purpose, features, licence, tensors, scope=(f"{folder}/{file}",) if in_scope else ())


def _wan_dit(dim: int, ffn: int, layers: int) -> tuple[Tensor, ...]:
    """Tensors that tell a Wan2.1 DiT of this size from another (with or without a prefix)."""
    return (Tensor("*patch_embedding.weight", (dim, 16, 1, 2, 2)),
            Tensor("*blocks.0.self_attn.q.weight", (dim, dim)),
            Tensor(f"*blocks.{layers - 1}.ffn.0.weight", (ffn, dim)),
            Tensor("*head.head.weight", (64, dim)))


def _vace(dim: int, blocks: int) -> tuple[Tensor, ...]:
    """Tensors that tell a VACE module of this size from another."""
    return (Tensor("vace_patch_embedding.weight", (dim, 96, 1, 2, 2)),
            Tensor("vace_blocks.0.before_proj.weight", (dim, dim)),
            Tensor(f"vace_blocks.{blocks - 1}.after_proj.weight", (dim, dim)))


def _lora(dim: int, ffn: int, rank: int = 256) -> tuple[Tensor, ...]:
    """Tensors of a PEFT LoRA on every Linear of the main blocks (LongLive's, MemFlow's)."""
    return (Tensor("*blocks.0.self_attn.q.lora_A*", (rank, dim)),
            Tensor("*blocks.0.ffn.2.lora_A*", (rank, ffn)))


_DIM, _FFN = 1536, 8960  # Wan2.1-1.3B (DESIGN §4)
_DIM_14B, _FFN_14B = 5120, 13824  # Wan2.1-14B: 40 heads, 40 layers, VACE after 0, 5, …, 35
_WAN_DIT = _wan_dit(_DIM, _FFN, 30)
_WAN_DIT_14B = _wan_dit(_DIM_14B, _FFN_14B, 40)
_VACE = _vace(_DIM, 15)
_UMT5 = (
    Tensor("token_embedding.weight", (256384, 4096)),
    Tensor("blocks.0.attn.q.weight", (4096, 4096)),
    Tensor("blocks.23.ffn.fc2.weight", (4096, 10240)),
    Tensor("blocks.0.pos_embedding.embedding.weight", (32, 64)),
)
_TOKENIZER = "google/umt5-xxl"
_GENERATOR = ("text-to-video", "video-to-video", "VACE control", "every vace mode")
_VACE_FEATURES = ("VACE control", "inpainting/outpainting", "reference images", "extension")
_ENCODE = ("video-to-video", "VACE control/inpainting/outpainting", "reference images",
           "first/last-frame extension")

_WAN = Licence("Apache-2.0", True, "the Wan2.1 model cards (Wan-AI)")
_REPACKED_WAN = Licence("Apache-2.0", True, "Wan2.1's licence; repackaged by Kijai")
_LONGLIVE = Licence("Apache-2.0", True, "the LongLive repository (NVlabs/LongLive)")
_SELF_FORCING = Licence("Apache-2.0", True, "the Self-Forcing repository (guandeh17)")
_REWARD_FORCING = Licence("Apache-2.0", True, "the Reward-Forcing repository; its model card "
                          "states none")
_SDV2 = Licence("Apache-2.0", True, "the StreamDiffusionV2 model card")
_MEMFLOW = Licence("CC BY-NC-SA 4.0", False, "the SPDX headers of MemFlow's model sources "
                   "(its LICENSE file says Apache-2.0; the stricter terms are assumed)")
_KREA = Licence("CC BY-NC-SA 4.0", False, "the krea-ai/realtime-video repository")
_TAEHV = Licence("MIT", True, "madebyollin/taehv")

GENERATOR_FILES: tuple[ModelFile, ...] = (
    _hf("longlive_base", "LongLive-1.3B causal generator", "Efficient-Large-Model/LongLive-1.3B",
        "models/longlive_base.pt", 5680, "Causal Wan2.1-1.3B DiT (dict with `generator`), the "
        "streaming base; fp32", _GENERATOR, _LONGLIVE, _WAN_DIT, in_scope=True),
    _hf("longlive_lora", "LongLive-1.3B LoRA", "Efficient-Large-Model/LongLive-1.3B",
        "models/lora.pt", 1400, "PEFT LoRA (rank 256, alpha 256) on the main blocks' Linear "
        "layers, merged into longlive_base at load", _GENERATOR, _LONGLIVE, _lora(_DIM, _FFN),
        in_scope=True),
    _hf("self_forcing", "Self-Forcing DMD generator", "gdhe17/Self-Forcing",
        "checkpoints/self_forcing_dmd.pt", 5700, "Alternative causal generator "
        "(`generator` / `generator_ema`, bf16); no LoRA", _GENERATOR, _SELF_FORCING, _WAN_DIT,
        in_scope=False),
    _hf("reward_forcing", "Reward Forcing generator", "JaydenLu666/Reward-Forcing-T2V-1.3B",
        "rewardforcing.pt", 5680, "Causal Wan2.1-1.3B DiT distilled with rewarded DMD (flat "
        "state dict, `model.` prefix)", _GENERATOR, _REWARD_FORCING, _WAN_DIT, in_scope=True),
    _hf("sdv2_1_3b", "StreamDiffusionV2 1.3B generator", "jerryfeng/StreamDiffusionV2",
        "wan_causal_dmd_v2v/model.pt", 5680, "Causal Wan2.1-1.3B DiT for video-to-video "
        "(`generator`, `generator_ema`, `state_dict` or flat)", _GENERATOR, _SDV2, _WAN_DIT,
        in_scope=True),
    _hf("sdv2_14b", "StreamDiffusionV2 14B generator", "jerryfeng/StreamDiffusionV2",
        "wan_causal_dmd_v2v_14b/model.pt", 28600, "Causal Wan2.1-14B DiT for video-to-video "
        "(same layouts as the 1.3B)", _GENERATOR, _SDV2, _WAN_DIT_14B, in_scope=False),
    _hf("memflow_base", "MemFlow base generator", "KlingTeam/MemFlow", "base.pt", 5680,
        "Causal Wan2.1-1.3B DiT (`generator`, `generator_ema` or `model`), MemFlow's base",
        _GENERATOR, _MEMFLOW, _WAN_DIT, in_scope=True),
    _hf("memflow_lora", "MemFlow LoRA", "KlingTeam/MemFlow", "lora.pt", 1400, "PEFT LoRA "
        "(`generator_lora`, rank 256, alpha 256) on the main blocks' Linear layers, merged "
        "into memflow_base at load", _GENERATOR, _MEMFLOW, _lora(_DIM, _FFN), in_scope=True),
    _hf("krea_realtime_14b", "Krea Realtime 14B generator", "krea/krea-realtime-video",
        "krea-realtime-video-14b.safetensors", 28600, "Causal Wan2.1-14B DiT (flat, `model.` "
        "prefix, bf16)", _GENERATOR, _KREA, _WAN_DIT_14B, in_scope=True),
    _hf("wan_t2v_dit", "Wan2.1-T2V-1.3B DiT", "Wan-AI/Wan2.1-T2V-1.3B",
        "diffusion_pytorch_model.safetensors", 5680, "The bidirectional base model (fp32); "
        "reference for tests and benchmarks, not needed to perform",
        ("benchmarks at real weights",), _WAN,
        tuple(Tensor(t.pattern.lstrip("*"), t.shape, "F32") for t in _WAN_DIT), in_scope=True),
    _hf("vace_module", "Wan2.1 VACE-1.3B module", "Kijai/WanVideo_comfy",
        "Wan2_1-VACE_module_1_3B_bf16.safetensors", 1470, "VACE blocks and "
        "vace_patch_embedding only (bf16), added to a 1.3B causal generator", _VACE_FEATURES,
        _REPACKED_WAN, tuple(Tensor(t.pattern, t.shape, "BF16") for t in _VACE), in_scope=True),
    _hf("vace_full", "Wan2.1-VACE-1.3B (full)", "Wan-AI/Wan2.1-VACE-1.3B",
        "diffusion_pytorch_model.safetensors", 7150, "Full VACE model; livevace takes its "
        "vace_* tensors (an alternative to vace_module, kept by older Scope installs)",
        _VACE_FEATURES, _WAN, (*_VACE, Tensor("blocks.29.ffn.2.weight", (_DIM, _FFN))),
        in_scope=True),
    _hf("vace_module_14b", "Wan2.1 VACE-14B module", "Kijai/WanVideo_comfy",
        "Wan2_1-VACE_module_14B_bf16.safetensors", 6100, "VACE blocks (8, after main layers "
        "0, 5, …, 35) and vace_patch_embedding only (bf16), added to a 14B causal generator",
        _VACE_FEATURES, _REPACKED_WAN,
        tuple(Tensor(t.pattern, t.shape, "BF16") for t in _vace(_DIM_14B, 8)), in_scope=True),
    _hf("wan_vae", "Wan2.1 VAE", "Wan-AI/Wan2.1-T2V-1.3B", "Wan2.1_VAE.pth", 508,
        "Causal 3-D VAE (fp32 state dict): encodes input/control/references, decodes with "
        "decoder=wan", (*_ENCODE, "decoder=wan"), _WAN,
        (Tensor("encoder.conv1.weight", (96, 3, 3, 3, 3)), Tensor("conv1.weight", (32, 32, 1, 1, 1)),
         Tensor("conv2.weight", (16, 16, 1, 1, 1)), Tensor("decoder.conv1.weight", (384, 16, 3, 3, 3))),
        in_scope=True),
    _hf("taew2_1", "TAEW2.1 tiny autoencoder", "lightx2v/Autoencoders", "taew2_1.pth", 22.7,
        "madebyollin/taehv tiny decoder for the Wan latent space (fp16), ~25x cheaper than "
        "the VAE", ("decoder=tae (the default)",), _TAEHV,
        (Tensor("encoder.0.weight", (64, 3, 3, 3)), Tensor("decoder.1.weight", (256, 16, 3, 3))),
        in_scope=True),
    _hf("umt5_fp8", "UMT5-XXL encoder (fp8)", "Kijai/WanVideo_comfy",
        "umt5-xxl-enc-fp8_e4m3fn.safetensors", 6730, "Text encoder, fp8 e4m3fn weights in "
        "Wan's layout: half the memory of bf16; what Scope uses", ("prompts",), _REPACKED_WAN,
        _UMT5, in_scope=True),
    _hf("umt5_bf16", "UMT5-XXL encoder (bf16)", "Wan-AI/Wan2.1-T2V-1.3B",
        "models_t5_umt5-xxl-enc-bf16.pth", 11400, "Text encoder, Wan's original bf16 "
        "checkpoint", ("prompts",), _WAN, _UMT5, in_scope=False),
    ModelFile(
        WeightFiles(key="umt5_tokenizer", description="UMT5 tokenizer", folder="Wan2.1-T2V-1.3B",
                    files=tuple(f"{_TOKENIZER}/{n}" for n in
                                ("spiece.model", "special_tokens_map.json", "tokenizer_config.json")),
                    any_of=(f"{_TOKENIZER}/tokenizer.json", f"{_TOKENIZER}/spiece.model"),
                    repo_id="Wan-AI/Wan2.1-T2V-1.3B", size_mb=21.5),
        "Tokenizer google/umt5-xxl as Wan ships it (512 tokens)", ("prompts",), _WAN,
        scope=(f"Wan2.1-T2V-1.3B/{_TOKENIZER}",)),
)

_APACHE_CARD = Licence("Apache-2.0", True, "the model card")
_ANNOTATOR_INFO: dict[str, tuple[str, tuple[str, ...], Licence, tuple[Tensor, ...]]] = {
    "depth_anything_v2_small": (
        "Depth-Anything-V2-Small (transformers), the default depth estimator",
        ("control=depth, depth_model=depth_anything_v2_small",), _APACHE_CARD,
        (Tensor("backbone.embeddings.patch_embeddings.projection.weight", (384, 3, 14, 14)),)),
    "dpt_hybrid": ("DPT-Hybrid / MiDaS 3.0 (transformers)",
                   ("control=depth, depth_model=dpt_hybrid",), _APACHE_CARD, ()),
    "midas_small": ("MiDaS v2.1 small (ONNX, OpenCV DNN), the lightest depth estimator",
                    ("control=depth, depth_model=midas_small",),
                    Licence("MIT", True, "isl-org/MiDaS"), ()),
}
_MEDIAPIPE_INFO = ("MediaPipe Tasks model, used only where the installed mediapipe lacks the "
                   "bundled solutions", ("control=pose", "mask=person"),
                   Licence("Apache-2.0", True, "the MediaPipe model cards (Google)"), ())


def _annotator_entry(w: WeightFiles) -> ModelFile:
    purpose, features, licence, tensors = _ANNOTATOR_INFO.get(w.key, _MEDIAPIPE_INFO)
    return ModelFile(w, purpose, features, licence, tensors)


OUTPUT_FILES: tuple[ModelFile, ...] = (
    _hf("rife_v4_25", "RIFE v4.25 flownet", "Upsampler/rife-4-25", "flownet.pkl", 22.7,
        "IFNet of Practical-RIFE v4.25 (fp32 state dict, `module.` keys), mirrored unchanged: "
        "the in-between frames of output_fps", ("output_fps (motion interpolation)",),
        Licence("MIT", True, "hzwer/Practical-RIFE"), (), in_scope=False),
    _hf("span_2x", "2xNomosUni SPAN upscaler", "Phips/2xNomosUni_span_multijpg",
        "2xNomosUni_span_multijpg.safetensors", 4.46, "SPAN 2x super-resolution (spandrel), "
        "trained on photos with JPEG degradations: fast enough for 1080p60",
        ("output_size (upscaling)",), Licence("CC-BY-4.0", True, "the model card (Phips)"),
        (), in_scope=False),
    ModelFile(WeightFiles(key="compact_4x", description="Real-ESRGAN general x4v3 upscaler",
                          folder="Real-ESRGAN", files=("realesr-general-x4v3.pth",),
                          url="https://github.com/xinntao/Real-ESRGAN/releases/download/"
                              "v0.2.5.0/realesr-general-x4v3.pth", size_mb=4.9),
              "Real-ESRGAN's compact SRVGGNet, 4x (spandrel)", ("output_size (upscaling)",),
              Licence("BSD-3-Clause", True, "the Real-ESRGAN repository (xinntao)")),
)
"""The output path's networks (`livevace.output`): interpolation and upscaling."""

CATALOG: tuple[ModelFile, ...] = (
    *GENERATOR_FILES, *(_annotator_entry(w) for w in ANNOTATOR_WEIGHTS), *OUTPUT_FILES)
BY_KEY: dict[str, ModelFile] = {m.key: m for m in CATALOG}


@dataclass(frozen=True)
class Role:
    """A part the vace pipeline needs; any one option (a set of entries) fills it."""

    name: str
    options: tuple[tuple[str, ...], ...]
    """In order of preference: `pull` fetches the first unless another is already present."""


ROLES: tuple[Role, ...] = (
    Role("generator", (("longlive_base", "longlive_lora"), ("self_forcing",))),
    Role("vace", (("vace_module",), ("vace_full",))),
    Role("text encoder", (("umt5_fp8",), ("umt5_bf16",))),
    Role("tokenizer", (("umt5_tokenizer",),)),
    Role("vae", (("wan_vae",),)),
    Role("tiny decoder", (("taew2_1",),)),
    Role("depth", ((str(param("depth_model").default),),)),
)
"""What `livevace models pull` with no names makes sure of (`fresh_pull_bytes`)."""


def fresh_pull_bytes() -> int:
    """Download size of the default set on a machine that has none of it."""
    return sum(BY_KEY[k].size_bytes for role in ROLES for k in role.options[0])


def get(key: str) -> ModelFile:
    """The entry called `key`; ModelError lists the known keys otherwise."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise ModelError(f"unknown model {key!r}; known: {', '.join(BY_KEY)}") from None


def role_choice(role: Role) -> tuple[str, ...]:
    """The option `pull` should make present: the first one already complete, else the first."""
    for option in role.options:
        if all(BY_KEY[k].find() is not None for k in option):
            return option
    return role.options[0]


def default_keys() -> list[str]:
    """Entries the vace pipeline needs, preferring what is already on disk (ours or Scope's)."""
    return [k for role in ROLES for k in role_choice(role)]


def require(*keys: str, fetch: str | None = None) -> dict[str, Path]:
    """The weights file (or folder) of each entry; one ModelError naming every missing file,
    where it looked and the command that fetches them (`fetch`, default: pull those keys)."""
    found: dict[str, Path] = {}
    missing: list[ModelFile] = []
    for key in keys:
        entry = get(key)
        folder = entry.find()
        if folder is None:
            missing.append(entry)
        else:
            found[key] = entry.path(folder)
    if missing:
        names = "; ".join(f"{m.weights.description} ({', '.join(m.weights.files)})"
                          for m in missing)
        looked = " and ".join(str(d) for d in paths.search_dirs())
        command = fetch or pull_command(*(m.key for m in missing))
        raise ModelError(f"missing model files: {names} — looked in {looked}; fetch them with "
                         f"`{command}`")
    return found


def pull_command(*names: str) -> str:
    """The command that fetches these catalogue entries or zoo models."""
    return f"livevace models pull {' '.join(names)}"


class ZooModel(Protocol):
    """What the catalogue reads of a zoo model (`models.wan.recipe.Recipe` is one); the store
    sits below the models, so it is handed the recipe instead of looking it up by name."""

    @property
    def name(self) -> str: ...
    @property
    def checkpoints(self) -> tuple[str, ...]: ...
    @property
    def vace_checkpoints(self) -> tuple[str, ...]: ...


SHARED_ROLES = ("text encoder", "tokenizer", "vae", "tiny decoder")
"""The parts every zoo model shares: all of them live in Wan2.1's latent and text spaces."""


def model_keys(model: ZooModel, on_disk: bool = True) -> list[str]:
    """Every entry a zoo model needs: its generator files, one VACE module that fits it and the
    shared text encoder, tokenizer, VAE and decoder; of each set of alternatives the one on disk
    (else the first), or with `on_disk=False` always the first."""
    def choose(role: Role) -> tuple[str, ...]:
        return role_choice(role) if on_disk else role.options[0]

    vace = Role("vace", tuple((k,) for k in model.vace_checkpoints))
    fitting = choose(vace) if vace.options else ()
    shared = [k for role in ROLES if role.name in SHARED_ROLES for k in choose(role)]
    return [*model.checkpoints, *fitting, *shared]


def require_model(model: ZooModel) -> dict[str, Path]:
    """`require` for every file of a zoo model; the message names `livevace models pull NAME`."""
    return require(*model_keys(model), fetch=pull_command(model.name))


def resolve_roles() -> dict[str, dict[str, Path]]:
    """What the vace pipeline loads: for each role, the entries of the option on disk and
    their paths, e.g. `{"generator": {"longlive_base": …, "longlive_lora": …}, "vace": …}`.
    ModelError naming every missing file (and the pull command) when something is absent."""
    found = require(*default_keys())
    return {role.name: {k: found[k] for k in role_choice(role)} for role in ROLES}


def verify(entry: ModelFile, folder: Path) -> list[str]:
    """Problems with an entry's files in `folder` (empty when it looks right). Cheap: reads
    sizes and headers only, never the tensors."""
    problems = [f"{n} is missing" for n in entry.weights.files if not (folder / n).is_file()]
    if entry.weights.any_of and not any((folder / n).is_file() for n in entry.weights.any_of):
        problems.append(f"none of {', '.join(entry.weights.any_of)} is present")
    total = sum(p.stat().st_size for p in entry.present_files(folder))
    if total < MIN_SIZE_FRACTION * entry.size_bytes:
        problems.append(f"{format_size(total)} on disk, expected about {format_size(entry.size_bytes)} "
                        "(partial copy or placeholder)")
    weights = entry.weights_path(folder)
    if weights is None or problems:
        return problems
    try:
        tensors = headers.read_tensors(weights)
    except headers.HeaderError as exc:
        return [str(exc)]
    return _tensor_problems(entry.tensors, tensors)


def _tensor_problems(expected: tuple[Tensor, ...], found: dict[str, headers.TensorInfo]) -> list[str]:
    problems = []
    for spec in expected:
        matches = {k: t for k, t in found.items() if fnmatch.fnmatchcase(k, spec.pattern)}
        if not matches:
            problems.append(f"no tensor {spec.pattern} (not this model)")
            continue
        for name, info in matches.items():
            if info.shape != spec.shape:
                problems.append(f"{name} has shape {list(info.shape)}, expected {list(spec.shape)}")
            elif spec.dtype and info.dtype != spec.dtype:
                problems.append(f"{name} is {info.dtype}, expected {spec.dtype}")
    return problems


def format_size(n: float) -> str:
    """Decimal units, as Hugging Face lists file sizes."""
    units = ("B", "KB", "MB", "GB", "TB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"
