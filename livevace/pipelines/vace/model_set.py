"""What a vace pipeline runs on: the networks and the device, plus the prompt-embedding worker
made on first use; and the parts a set is made of, loaded one after another with progress
(`make_parts`), whether read from files or made with random weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from livevace.models.wan.dit import WanDiT
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.models.wan.tae import TinyAutoencoder
from livevace.models.wan.text import WanTextEncoder
from livevace.models.wan.vae import WanVAE
from livevace.models.wan.zoo import open_stream
from livevace.models.wan.lora_live import LiveLoras
from livevace.pipelines.vace.embeddings import PromptEmbeddings
from livevace.pipelines.vace.loras import LoraSlots


@dataclass
class ModelSet:
    """Everything the pipeline runs; one set can serve several sessions at once."""

    name: str
    dit: WanDiT
    vae: WanVAE
    tae: TinyAutoencoder
    text: WanTextEncoder
    device: torch.device
    recipe: Recipe = LONGLIVE
    """How the generator streams: schedule, cache policy and geometry (see `recipe`)."""
    weights: str = "auto"
    """Where the weights came from (`choices.WEIGHTS`)."""
    streams: Callable[..., Any] = field(default=open_stream, repr=False)
    """Opens a session's stream (`zoo.open_stream`'s signature): on several ranks with
    `livevace run --gpus` (`distributed.facade.RankedStreams`)."""
    _embeddings: PromptEmbeddings | None = field(default=None, repr=False)
    _loras: LoraSlots | None = field(default=None, repr=False)

    @property
    def embeddings(self) -> PromptEmbeddings:
        """Prompt embeddings, encoded off the loop thread and cached per text."""
        if self._embeddings is None:
            self._embeddings = PromptEmbeddings(self.text, output_device=self.device)
        return self._embeddings

    @property
    def loras(self) -> LoraSlots:
        """The live LoRA slots, merged into `dit` (one set of slots per DiT: every session of
        the set plays the same weights)."""
        if self._loras is None:  # on several ranks: merged on every rank
            live = getattr(self.streams, "live_loras", LiveLoras)
            self._loras = LoraSlots(live(self.dit))
        return self._loras

    def close(self) -> None:
        if self._loras is not None:
            self._loras.close()
            self._loras = None
        if self._embeddings is not None:
            self._embeddings.close()
            self._embeddings = None


Progress = Callable[[int, int, str], None]
"""Told (parts done, parts in all, the part starting now — "" once all are done) as a model set
loads; `models.progress_bar` and `models.progress_log` say it."""


def make_parts(parts: Sequence[tuple[str, Callable[[], Any]]],
               progress: Progress | None) -> list[Any]:
    """Make each (name, maker) in turn, telling `progress` before each and at the end: the
    one place a model set's loading reports how far it has got."""
    made = []
    for done, (name, make) in enumerate(parts):
        if progress is not None:
            progress(done, len(parts), name)
        made.append(make())
    if progress is not None:
        progress(len(parts), len(parts), "")
    return made
