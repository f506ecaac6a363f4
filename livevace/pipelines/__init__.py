"""Pipeline registry: name → factory `(config, store) -> Pipeline`, and the `auto` choice.

A factory raises a UserError whose message says why it cannot run here (no annotator, no
weights, no CUDA GPU); `auto` tries the registered pipelines from the most capable down and
logs one line naming the one it took and why the better ones were passed over. The
generator registers here too (`vace`, rank 100: it needs weights and a CUDA GPU).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from livevace.errors import UserError
from livevace.frames import Pipeline
from livevace.params import ParamStore

if TYPE_CHECKING:
    from livevace.config import RunConfig

log = logging.getLogger("livevace.pipeline")

Factory = Callable[["RunConfig", ParamStore], Pipeline]


@dataclass(frozen=True)
class PipelineEntry:
    name: str
    target: str
    """`module:function` of the factory, imported only when the pipeline is made."""
    summary: str
    rank: int
    """`auto` tries higher ranks first."""
    options: tuple[str, ...] = ()
    """Keyword options its factory takes besides (config, store), e.g. `model`."""

    def factory(self) -> Factory:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


REGISTRY: dict[str, PipelineEntry] = {}


def register(entry: PipelineEntry) -> None:
    REGISTRY[entry.name] = entry


register(PipelineEntry("passthrough", "livevace.pipelines.passthrough:create",
                       "the input, unchanged (checks the path to the host)", rank=0))
register(PipelineEntry("controlmap", "livevace.pipelines.controlmap:create",
                       "the control signal of the chosen annotator (what VACE will follow)",
                       rank=10))
register(PipelineEntry("vace", "livevace.pipelines.vace:create",
                       "causal VACE generation by a streaming Wan2.1 model (needs its weights "
                       "and a CUDA GPU; --weights tiny-random runs anywhere)", rank=100,
                       options=("weights", "weights_dtype", "compile", "tae_context",
                                "gpus", "split", "precision", "lookahead")))


def pipeline_names() -> list[str]:
    return sorted(REGISTRY, key=lambda n: -REGISTRY[n].rank)


def _make(entry: PipelineEntry, config: "RunConfig", store: ParamStore,
          options: dict[str, object]) -> Pipeline:
    """Call the factory with the options it takes (unset ones left out)."""
    given = {k: v for k, v in options.items() if k in entry.options and v is not None}
    return entry.factory()(config, store, **given)


def create(name: str, config: "RunConfig", store: ParamStore, **options: object) -> Pipeline:
    """Make pipeline `name`, or for `auto` the most capable one that can run here.
    `options` (e.g. weights="tiny-random") reach the pipelines that take them."""
    if name != "auto":
        if name not in REGISTRY:
            raise UserError(f"no pipeline {name!r}; choose auto, {', '.join(pipeline_names())}")
        return _make(REGISTRY[name], config, store, options)
    passed: list[str] = []
    for candidate in pipeline_names():
        try:
            pipeline = _make(REGISTRY[candidate], config, store, options)
        except UserError as exc:
            passed.append(f"{candidate}: {exc}")
            continue
        why = f"passed over {'; '.join(passed)}" if passed else "the most capable available"
        log.info("pipeline auto -> %s (%s)", candidate, why)
        return pipeline
    raise UserError("no pipeline can run here: " + "; ".join(passed))
