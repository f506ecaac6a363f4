"""What a vace pipeline runs on: the networks and the device, plus the prompt-embedding worker
made on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from livevace.models.wan.dit import WanDiT
from livevace.models.wan.recipe import LONGLIVE, Recipe
from livevace.models.wan.tae import TinyAutoencoder
from livevace.models.wan.text import WanTextEncoder
from livevace.models.wan.vae import WanVAE
from livevace.pipelines.vace.embeddings import PromptEmbeddings


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
    _embeddings: PromptEmbeddings | None = field(default=None, repr=False)

    @property
    def embeddings(self) -> PromptEmbeddings:
        """Prompt embeddings, encoded off the loop thread and cached per text."""
        if self._embeddings is None:
            self._embeddings = PromptEmbeddings(self.text, output_device=self.device)
        return self._embeddings

    def close(self) -> None:
        if self._embeddings is not None:
            self._embeddings.close()
            self._embeddings = None
