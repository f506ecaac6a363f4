"""Every streaming model livevace runs, by name, and opening a stream of one.

A model of the zoo is a `recipe.Recipe` (its facts as data) plus, where its cache or chunk
procedure differs from LongLive's, the `stream` factory of its own policy module. Names are
the ones a VJ types (`livevace run --model NAME`); `params.MODELS` lists them without
importing torch (the `model` parameter's choices), and a test keeps the two equal.

    recipe = zoo.recipe("longlive")
    sampler = zoo.open_stream(recipe, model, latent_h, latent_w, chunk, steps, seed)
"""

from __future__ import annotations

from typing import Sequence

from livevace.errors import UserError
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.ema_sink import REWARD_FORCING
from livevace.models.wan.memory_bank import MEMFLOW
from livevace.models.wan.rebuild import KREA_REALTIME
from livevace.models.wan.recipe import LONGLIVE, SELF_FORCING, Recipe
from livevace.models.wan.sampler import StreamSampler
from livevace.models.wan.stream_batch import STREAMDIFFUSIONV2, STREAMDIFFUSIONV2_14B

RECIPES: dict[str, Recipe] = {r.name: r for r in (LONGLIVE, SELF_FORCING, REWARD_FORCING,
                                                   STREAMDIFFUSIONV2, STREAMDIFFUSIONV2_14B,
                                                   MEMFLOW, KREA_REALTIME)}
"""The recipes by name, the default first."""


def recipe(name: str) -> Recipe:
    """The recipe called `name`; a UserError lists the known names otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(RECIPES)}") from None


def open_stream(recipe: Recipe, model: WanDiT, height: int, width: int, chunk: int | None,
                steps: Sequence[int] | None, seed: int) -> StreamSampler:
    """A new cache and sampler for one stream of `recipe` on `model` at latent size
    height×width (chunk, steps: default the recipe's)."""
    layout = recipe.layout(height, width, chunk)
    steps = recipe.steps if steps is None else steps
    if recipe.stream is not None:
        return recipe.stream(model, recipe, layout, steps, seed)
    return StreamSampler.from_recipe(model, model.new_cache(layout), recipe, steps, seed)
