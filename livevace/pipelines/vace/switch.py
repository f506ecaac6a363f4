"""The live model switch: the vace pipeline as the node runs it, its generator replaced when the
`model` parameter changes.

    pipeline = ModelSwitch(first, load, check)   # load(name, running, params) -> a ready pipeline

A change is checked at once, without reading a byte of weights (`check`: an unknown model,
missing files, no GPU): a model that cannot load here is refused in one log line and the
current one keeps playing. Otherwise the new pipeline is loaded and prepared on the switch's
own thread, never the loop's; meanwhile every call returns no frames, so the pacer holds the
last picture, and the load logs its progress part by part. The running pipeline is closed
only once the new one is ready: a load that fails half-way is said in one line and the current
model plays on. The running pipeline is not called during a load, so the new one's
preparation (CUDA-graph captures, see `fast`) meets no other GPU work of the generator.

A model brings its own step list and latent frames per call (`own_params`, written into the
registry by `adopt`): LongLive's four steps mean nothing to a two-step StreamDiffusionV2,
whose stream batch takes one latent frame per call.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from livevace.errors import describe
from livevace.frames import Frame
from livevace.models.wan.recipe import Recipe
from livevace.params import ParamStore, param
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.stats import Stats

log = logging.getLogger("livevace.vace")

Load = Callable[[str, StreamingVace, dict[str, Any]], StreamingVace]
"""(model name, the running pipeline, the parameters) -> the new pipeline, prepared."""
Check = Callable[[str], None]
"""Raises a UserError (one line) when a model cannot load here."""


def own_params(recipe: Recipe) -> dict[str, Any]:
    """The live parameters a model brings: the step list it was distilled for and the latent
    frames per call it streams (a stream batch takes one, LongLive's family three)."""
    return {"denoising_steps": recipe.steps, "chunk_frames": recipe.chunk}


def adopt(store: ParamStore, recipe: Recipe, keep_changed: bool) -> None:
    """Set `recipe`'s own parameters in the store, said in one log line; `keep_changed`
    leaves those the user moved off the registry's default (at start: a preset or `--set`
    wins). A value the registry cannot hold as it is (outside its range) is left, and said."""
    values: dict[str, Any] = {}
    for name, value in own_params(recipe).items():
        held, clamped = param(name).coerce(value)
        if clamped:
            log.warning("model %s: its %s %s lie outside the parameter's range; keeping %s",
                        recipe.name, name, value, store.get(name))
        elif held != store.get(name) and not (keep_changed and
                                              store.get(name) != param(name).default):
            values[name] = held
    if values:
        store.update(values)
        log.info("model %s brings its own %s", recipe.name, ", ".join(
            f"{name} {' '.join(map(str, v)) if isinstance(v, tuple) else v}"
            for name, v in values.items()))


class ModelSwitch:
    """See the module doc. Everything but the calls (the model set, sizes, `prepare`, …) is
    the playing pipeline's."""

    name = "vace"

    def __init__(self, pipeline: StreamingVace, load: Load, check: Check) -> None:
        self.pipeline = pipeline
        self._load = load
        self._check = check
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="vace-load")
        self._loading: Future[StreamingVace] | None = None
        self._target = ""
        """The model being loaded."""
        self._refused: str | None = None
        """The model last refused: asked again only after the parameter changed meanwhile."""
        self.stats: Stats = pipeline.stats

    @property
    def model(self) -> str:
        """The model playing."""
        return self.pipeline.models.recipe.name

    @property
    def loading(self) -> bool:
        return self._loading is not None

    @property
    def frames_per_call(self) -> int:
        return self.pipeline.frames_per_call

    @property
    def steady_frames_per_call(self) -> int:
        return self.pipeline.steady_frames_per_call

    def early(self, frames: list[Frame]) -> None:
        """The playing pipeline's head start (`Foresight`); none while a load drops the
        frames."""
        if self._loading is None:
            self.pipeline.early(frames)

    def bind_stats(self, stats: Stats) -> None:
        self.stats = stats
        self.pipeline.bind_stats(stats)

    def __getattr__(self, name: str) -> Any:
        if name == "pipeline":  # not set yet: no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __call__(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]:
        if self._loading is not None:
            if not self._loading.done():
                self.stats.count("dropped_model_load", len(frames))
                return []
            self._land()
        wanted = params.get("model", self.model)
        if wanted == self.model:
            self._refused = None
        elif wanted != self._refused and self._start(wanted, params):
            self.stats.count("dropped_model_load", len(frames))
            return []
        return self.pipeline(frames, params)

    def _start(self, wanted: str, params: dict[str, Any]) -> bool:
        """Start loading `wanted`, or refuse it (False: the current model plays on)."""
        try:
            self._check(wanted)
        except Exception as exc:  # noqa: BLE001 - any refusal is said, and the show goes on
            self._refuse(wanted, describe(exc))
            return False
        log.info("model %s: loading; the picture holds until it is ready, then %s stops",
                 wanted, self.model)
        self._target = wanted
        self._loading = self._loader.submit(self._load, wanted, self.pipeline, dict(params))
        return True

    def _land(self) -> None:
        """The load is over: play the new pipeline, or say why not and play on."""
        assert self._loading is not None
        future, self._loading = self._loading, None
        try:
            new = future.result()
        except Exception as exc:  # noqa: BLE001 - a failed load must not end the show
            self._refuse(self._target, describe(exc))
            return
        old, self.pipeline = self.pipeline, new
        new.bind_stats(self.stats)
        old.close()
        log.info("model %s playing", self.model)

    def _refuse(self, wanted: str, why: str) -> None:
        self._refused = wanted
        log.error("model %s refused: %s; %s keeps playing", wanted, why, self.model)

    def close(self) -> None:
        """Close the playing pipeline, and one still loading once its load is over."""
        self._loader.shutdown(wait=True)
        if self._loading is not None and self._loading.exception() is None:
            self._loading.result().close()
        self._loading = None
        self.pipeline.close()
