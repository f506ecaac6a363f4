"""The parameter registry: the single declaration of every live parameter.

OSC, OSCQuery, presets, scenes, the CLI, the host patches and the pipelines all read
`REGISTRY`; nothing else declares a name, a range or a default. `ParamStore` holds the
live values, coerces everything written to it through the declaration and tells
subscribers what changed.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, get_args

from livevace.errors import UserError

Kind = Literal[
    "float", "int", "bool", "str", "enum", "trigger", "floats", "ints", "strs", "prompts"
]
Apply = Literal["chunk", "transition", "reset", "reload", "immediate"]
"""When a change takes effect: at the next chunk; through a prompt transition (cross-attn
rebuild / recache); only after a KV-cache reset (the pipeline resets and logs it); after
reloading a model part; or at once (node-level, no GPU work)."""


class ParamError(UserError, ValueError):
    """A value that cannot be coerced into a parameter (wrong type, NaN, unknown name)."""


@dataclass(frozen=True)
class Prompt:
    """One weighted prompt of a (possibly multi-prompt) list."""

    text: str
    weight: float = 1.0


@dataclass(frozen=True)
class Param:
    """The one declaration of a live parameter."""

    name: str
    kind: Kind
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    slew: float = 0.0
    """Default smoothing time in seconds for continuous values (0: jump)."""
    apply: Apply = "chunk"
    max_len: int = 1
    """Most elements in a list-valued parameter; the longest accepted string otherwise."""
    live: bool = True
    """Meant for live control: every host patch exposes it."""
    readonly: bool = False
    group: str = "generation"

    @property
    def address(self) -> str:
        return f"/livevace/{self.name}"

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("float", "int", "floats", "ints")

    def denormalise(self, x: float) -> float:
        """Map 0..1 from a controller into this parameter's range."""
        assert self.min is not None and self.max is not None
        return self.min + float(x) * (self.max - self.min)

    def coerce(self, value: Any) -> tuple[Any, bool]:
        """Return (value as this parameter holds it, whether it was clamped).

        Raises ParamError for wrong types and NaN/inf. Numbers out of range are clamped,
        strings longer than `max_len` characters rejected (a prompt is never cut silently).
        """
        k = self.kind
        if k == "trigger":
            return True, False
        if k == "bool":
            return _to_bool(self.name, value), False
        if k in ("float", "int"):
            return self._clamp(_to_number(self.name, value, k == "int"))
        if k in ("floats", "ints"):
            items = _as_list(value)
            if not 1 <= len(items) <= self.max_len:
                raise ParamError(f"{self.name}: expects 1..{self.max_len} numbers, got {len(items)}")
            out, clamped = [], False
            for item in items:
                v, c = self._clamp(_to_number(self.name, item, k == "ints"))
                out.append(v)
                clamped |= c
            return tuple(out), clamped
        if k == "enum":
            text = _to_str(self.name, value, 64)
            if text.isdigit() and int(text) < len(self.choices):
                return self.choices[int(text)], False
            if text not in self.choices:
                raise ParamError(f"{self.name}: {text!r} is not one of {', '.join(self.choices)}")
            return text, False
        if k == "str":
            return _to_str(self.name, value, self.max_len), False
        if k == "strs":
            items = [_to_str(self.name, v, 4096) for v in _as_list(value) if str(v) != ""]
            if len(items) > self.max_len:
                raise ParamError(f"{self.name}: at most {self.max_len} entries, got {len(items)}")
            return tuple(items), False
        if k == "prompts":
            return parse_prompts(value, self.name), False
        raise AssertionError(k)

    def coerce_noted(self, value: Any, note: Callable[[str], None]) -> Any:
        """`coerce`, telling `note` in one line when a number was clamped into range.

        The one rule for every way a value arrives (OSC, scenes, presets, `--set`): an
        out-of-range number is clamped, so the show goes on, and said, so nothing the user
        gave changes silently. Wrong types still raise ParamError.
        """
        coerced, clamped = self.coerce(value)
        if clamped:
            lo, hi = (f"{v:g}" if self.kind in ("float", "floats") else f"{int(v)}"
                      for v in (self.min, self.max))
            note(f"{self.name}: {str(value)[:40]} clamped to {coerced} (range {lo}..{hi})")
        return coerced

    def _clamp(self, v: float | int) -> tuple[float | int, bool]:
        lo = self.min if self.min is not None else -math.inf
        hi = self.max if self.max is not None else math.inf
        c = min(max(v, lo), hi)
        if self.kind in ("int", "ints"):
            c = int(c)
        return c, c != v


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value >= 0.5
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "on", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "off", "no"):
        return False
    raise ParamError(f"{name}: {value!r} is not a boolean")


def _to_number(name: str, value: Any, integer: bool) -> float | int:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ParamError(f"{name}: {value[:40]!r} is not a number") from None
    if not isinstance(value, (int, float)):
        raise ParamError(f"{name}: {type(value).__name__} is not a number")
    if not math.isfinite(value):
        raise ParamError(f"{name}: {value} is not a finite number")
    return int(round(value)) if integer else float(value)


def _to_str(name: str, value: Any, max_len: int) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ParamError(f"{name}: not UTF-8 text") from None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ParamError(f"{name}: {type(value).__name__} is not text")
    text = str(value)
    if len(text) > max_len:
        raise ParamError(f"{name}: text of {len(text)} characters (at most {max_len})")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in text):
        raise ParamError(f"{name}: text holds control characters")
    return text


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


PROMPT_MAX_CHARS = 2000
PROMPT_MAX_COUNT = 8


def parse_prompts(value: Any, name: str = "prompt") -> tuple[Prompt, ...]:
    """Parse a prompt list from any of the forms users send.

    - `"a neon city"`                              one prompt, weight 1
    - `"a neon city :: 0.7 | a forest :: 0.3"`     weighted list in one string
    - `["a neon city", 0.7, "a forest", 0.3]`      OSC arguments, text then optional weight
    - `[{"text": ..., "weight": ...}, ...]`        TOML / JSON
    Weights are kept as given (the blender normalises); they must be finite and >= 0 with
    a positive sum.
    """
    items: list[Prompt] = []
    if isinstance(value, (str, bytes)):
        text = _to_str(name, value, PROMPT_MAX_CHARS * PROMPT_MAX_COUNT)
        for part in text.split("|"):
            body, sep, weight = part.rpartition("::")
            if not sep:
                body, weight = weight, "1"
            items.append(Prompt(body.strip(), float(_to_number(name, weight, False))))
    elif isinstance(value, Prompt):
        items.append(value)
    elif isinstance(value, (list, tuple)):
        pending: str | None = None
        for v in value:
            if isinstance(v, Prompt):
                items.append(v)
            elif isinstance(v, dict):
                items.append(Prompt(_to_str(name, v.get("text", ""), PROMPT_MAX_CHARS),
                                    float(_to_number(name, v.get("weight", 1.0), False))))
            elif isinstance(v, (str, bytes)):
                if pending is not None:
                    items.append(Prompt(pending, 1.0))
                pending = _to_str(name, v, PROMPT_MAX_CHARS)
            else:
                if pending is None:
                    raise ParamError(f"{name}: a weight must follow a prompt text")
                items.append(Prompt(pending, float(_to_number(name, v, False))))
                pending = None
        if pending is not None:
            items.append(Prompt(pending, 1.0))
    else:
        raise ParamError(f"{name}: {type(value).__name__} is not a prompt")
    items = [p for p in items if p.text]
    if not items:
        raise ParamError(f"{name}: empty prompt")
    if len(items) > PROMPT_MAX_COUNT:
        raise ParamError(f"{name}: at most {PROMPT_MAX_COUNT} prompts, got {len(items)}")
    for p in items:
        if len(p.text) > PROMPT_MAX_CHARS:
            raise ParamError(f"{name}: a prompt of {len(p.text)} characters (at most {PROMPT_MAX_CHARS})")
        if p.weight < 0:
            raise ParamError(f"{name}: negative weight {p.weight}")
    if sum(p.weight for p in items) <= 0:
        raise ParamError(f"{name}: weights sum to zero")
    return tuple(items)


def format_prompts(prompts: Iterable[Prompt]) -> str:
    """The one-string form of a prompt list (inverse of `parse_prompts`)."""
    parts = [p.text if p.weight == 1.0 else f"{p.text} :: {p.weight:g}" for p in prompts]
    return " | ".join(parts)


CONTROLS = ("depth", "pose", "edges", "scribble", "gray", "flow", "none")
MASK_MODES = ("none", "person", "person_inverse", "image", "outpaint")
MODELS = ("longlive", "self-forcing", "reward-forcing", "streamdiffusionv2",
          "streamdiffusionv2-14b", "memflow", "krea-realtime")
"""The zoo's streaming generators by the names a VJ types, the default first (each is a
recipe in `livevace.models.wan.zoo`, in the same order; a test keeps the two equal)."""
LORA_SLOTS = 4
"""LoRA slots of the live parameters (`lora_1` …)."""
VACE_LAYER_PROFILE_MAX = 40  # the 14B model has 8 VACE layers, 1.3B has 15; a profile is resampled

REGISTRY: tuple[Param, ...] = (
    # --- text conditioning
    Param("prompt", "prompts", (Prompt("a neon-lit dancer in a dark club, volumetric light, cinematic"),),
          "What to generate: one text, or a weighted list 'a :: 0.7 | b :: 0.3' "
          "(OSC: text, weight, text, weight …).", apply="transition", max_len=PROMPT_MAX_COUNT,
          group="prompt"),
    Param("prompt_blend", "enum", "linear", "How weighted prompts and transitions mix: "
          "linear (norm-preserving) or slerp.", choices=("linear", "slerp"), apply="transition",
          group="prompt"),
    Param("transition_chunks", "int", 2, "Chunks over which a new prompt or scene fades in "
          "(0: cut, with a cache recache).", min=0, max=32, unit="chunks", group="prompt"),
    # --- VACE and cache-stratified VACE
    Param("vace_enabled", "bool", True, "Use the control video through VACE (off: plain "
          "text/video-to-video).", group="vace"),
    Param("vace_context_scale", "float", 1.0, "Overall strength of the VACE hints.", min=0.0,
          max=2.0, slew=0.1, group="vace"),
    Param("vace_refinement_scale", "float", 1.0, "VACE strength while a chunk's clean K/V are "
          "written into the cache (refinement passes): how much the past stays anchored to "
          "the control. At 0 those passes skip the VACE blocks (less work per chunk).",
          min=0.0, max=2.0, slew=0.1, group="vace"),
    Param("vace_generation_scale", "float", 1.0, "VACE strength while a chunk is being "
          "denoised (generation passes): how hard new frames follow the control.", min=0.0,
          max=2.0, slew=0.1, group="vace"),
    Param("vace_layer_profile", "floats", (1.0,), "Per-VACE-layer multipliers, shallow to deep, "
          "resampled to the model's VACE layer count (one value: uniform).", min=0.0, max=2.0,
          max_len=VACE_LAYER_PROFILE_MAX, group="vace"),
    # --- the generator
    Param("model", "enum", "longlive", "Streaming generator of the vace pipeline (the zoo's "
          "recipes). A change loads it while the picture holds; one whose files are missing "
          "is refused and the current one keeps playing.", choices=MODELS, apply="reload",
          group="model"),
    # --- LoRAs: merged into the generator's weights, faded like prompts
    *(param for n in range(1, LORA_SLOTS + 1) for param in (
        Param(f"lora_{n}", "str", "", f"LoRA slot {n}: a file, or a name in the LoRA "
              "folders; empty: none. A new file crossfades in, without a cache reset.",
              max_len=4096, apply="transition", group="lora"),
        Param(f"lora_{n}_scale", "float", 1.0, f"Strength of LoRA slot {n} (negative: "
              "away from its style).", min=-2.0, max=2.0, apply="transition", group="lora"))),
    # --- sampling
    Param("noise_scale", "float", 0.7, "Video-to-video: how much noise replaces the input "
          "video (1: ignore the input, 0: copy it).", min=0.0, max=1.0, slew=0.1,
          group="sampling"),
    Param("noise_controller", "bool", False, "Lower noise_scale automatically when the input "
          "moves fast (motion-aware).", group="sampling"),
    Param("denoising_steps", "ints", (1000, 750, 500, 250), "Timesteps of the few-step "
          "sampler, descending (changing the count re-initialises the cache).", min=1,
          max=1000, max_len=8, apply="reset", group="sampling"),
    Param("seed", "int", 42, "Noise seed.", min=0, max=2**31 - 1, group="sampling"),
    Param("chunk_frames", "int", 3, "Latent frames per chunk: 1 = lowest latency (4 video "
          "frames), 3 = throughput (12 video frames).", min=1, max=3, unit="latent frames",
          apply="reset", group="sampling"),
    Param("ema_sink_alpha", "float", 0.999, "Reward Forcing: how much of its attention sink "
          "stays each time the oldest frames leave the window and are mixed into it (1: the "
          "sink never changes). Other models ignore it.", min=0.0, max=1.0, group="sampling"),
    # --- control video
    Param("control", "enum", "depth", "Control signal made from the input for VACE.",
          choices=CONTROLS, group="control"),
    Param("depth_model", "enum", "depth_anything_v2_small", "Depth estimator.",
          choices=("depth_anything_v2_small", "midas_small", "dpt_hybrid"), apply="reload",
          group="control"),
    Param("reference_images", "strs", (), "Up to 3 reference image paths (style/subject); "
          "encoded once when they change.", max_len=3, group="control"),
    Param("mask", "enum", "none", "Inpainting/outpainting mask: person (regenerate the "
          "person), person_inverse (regenerate the background), image, outpaint.",
          choices=MASK_MODES, group="control"),
    Param("mask_image", "str", "", "Path of a static mask image (white = regenerate) for "
          "mask=image.", max_len=4096, group="control"),
    Param("outpaint", "floats", (0.0, 0.0, 0.0, 0.0), "Outpaint ratio per side: left, top, "
          "right, bottom (fraction of the frame to generate).", min=0.0, max=0.45, max_len=4,
          group="control"),
    Param("first_frame_image", "str", "", "Image the stream extends from (first-frame "
          "extension).", max_len=4096, group="control"),
    Param("last_frame_image", "str", "", "Image the stream extends toward (last-frame "
          "extension).", max_len=4096, group="control"),
    # --- output and transport
    Param("decoder", "enum", "tae", "Latent decoder: tae (fast) or wan (full VAE).",
          choices=("tae", "wan"), group="output"),
    Param("pause", "bool", False, "Hold the current picture; generation stops.", apply="immediate",
          group="output"),
    Param("reset_cache", "trigger", False, "Start the stream afresh (keeps the current "
          "prompt).", apply="reset", group="output"),
    Param("output_fps", "int", 0, "Output frame rate made by motion interpolation (RIFE): "
          "in-between frames instead of repeats; 0: off. Sinks keep the rate they opened at.",
          min=0, max=120, unit="fps", apply="immediate", group="output"),
    Param("output_size", "ints", (0, 0), "Output width, height made by upscaling (one value: "
          "the width, the height following the picture); 0: off. Sinks keep the size they "
          "opened at.", min=0, max=7680, max_len=2, unit="px", apply="immediate",
          group="output"),
    Param("upscale_model", "str", "span_2x", "Upscaling network: a catalogue key (span_2x, "
          "compact_4x), a model file spandrel reads, or lanczos (plain resize).",
          max_len=4096, apply="immediate", group="output"),
    # --- scenes and tempo
    Param("scene", "str", "", "Recall a scene by name or index (crossfades over "
          "transition_chunks).", max_len=128, apply="immediate", group="scene"),
    Param("quantize", "enum", "off", "Quantise scene and prompt changes to the next beat or "
          "bar (needs --link or --midi-clock).", choices=("off", "beat", "bar"), apply="immediate",
          group="scene"),
    Param("beat_phase", "float", 0.0, "Beat phase within the bar, from Ableton Link or MIDI "
          "clock (read only).", min=0.0, max=1.0, readonly=True, live=False, apply="immediate",
          group="scene"),
    Param("tempo", "float", 120.0, "Tempo of the Link session or the MIDI clock (needs --link "
          "or --midi-clock); follows it, and sets Link's.", min=20.0, max=999.0, unit="bpm",
          live=False, apply="immediate", group="scene"),
)

BY_NAME: dict[str, Param] = {p.name: p for p in REGISTRY}


def param(name: str) -> Param:
    """Look a parameter up; ParamError names the closest candidates when unknown."""
    try:
        return BY_NAME[name]
    except KeyError:
        import difflib

        near = difflib.get_close_matches(name, BY_NAME, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise ParamError(f"unknown parameter {name!r}{hint}") from None


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[Apply, frozenset[str]]:
    """What changed from one snapshot to the next, grouped by when it takes effect
    (`Param.apply`; every kind present): a value that differs, or a trigger fired in `after`.
    A consumer acts per kind, so a new parameter needs no consumer edit to take effect."""
    groups: dict[Apply, set[str]] = {kind: set() for kind in get_args(Apply)}
    for name, value in after.items():
        p = param(name)
        changed = bool(value) if p.kind == "trigger" else before.get(name) != value
        if changed:
            groups[p.apply].add(name)
    return {kind: frozenset(names) for kind, names in groups.items()}


Listener = Callable[[str, Any], None]


@dataclass
class ParamStore:
    """Thread-safe live values, always inside their declared ranges.

    Writers (OSC, scenes, the CLI) call `set`; the loop reads `snapshot()` once per chunk so
    one chunk never sees half of a change. Listeners hear every accepted change (feedback,
    OSCQuery). Triggers are latched until `take_trigger` consumes them.
    """

    values: dict[str, Any] = field(default_factory=lambda: {p.name: p.default for p in REGISTRY})
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _listeners: list[Listener] = field(default_factory=list, repr=False)
    _triggers: set[str] = field(default_factory=set, repr=False)
    version: int = 0

    def set(self, name: str, value: Any, *, force: bool = False) -> tuple[Any, bool]:
        """Coerce and store a value; returns (stored value, clamped). Raises ParamError.

        `force` lets the node itself write read-only parameters (beat phase).
        """
        p = param(name)
        if p.readonly and not force:
            raise ParamError(f"{name} is read only")
        coerced, clamped = p.coerce(value)
        with self._lock:
            if p.kind == "trigger":
                self._triggers.add(name)
            elif self.values.get(name) == coerced:
                return coerced, clamped
            else:
                self.values[name] = coerced
            self.version += 1
            listeners = list(self._listeners)
        for fn in listeners:
            fn(name, coerced)
        return coerced, clamped

    def update(self, values: dict[str, Any]) -> None:
        """Set several values; all are checked before any is stored."""
        coerced = {k: param(k).coerce(v)[0] for k, v in values.items()}
        for k, v in coerced.items():
            self.set(k, v)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the store while several values change (an OSC bundle, a scene, a ramp step):
        a `snapshot()` taken meanwhile by another thread waits and sees all of them or none."""
        with self._lock:
            yield

    def get(self, name: str) -> Any:
        with self._lock:
            return self.values[param(name).name]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.values)

    def take_trigger(self, name: str) -> bool:
        """True once per press of a trigger parameter."""
        with self._lock:
            if name in self._triggers:
                self._triggers.discard(name)
                return True
            return False

    def subscribe(self, fn: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return unsubscribe
