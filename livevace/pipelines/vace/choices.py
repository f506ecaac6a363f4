"""What a vace pipeline runs, by name: the model (a zoo recipe) and where its weights come from.
Light enough for the command line to list them without importing torch.

    add_arguments(parser)                     # --model NAME, --weights
    weights = from_args(args, store)          # --model sets the `model` parameter
"""

from __future__ import annotations

import argparse
import logging

from livevace.errors import UserError
from livevace.params import MODELS, ParamStore

log = logging.getLogger("livevace.vace")

MODEL_NAMES = MODELS
"""`--model`: the zoo's generators (the `model` parameter's choices)."""
AUTO = "auto"
"""The catalogue's files (`livevace models pull`)."""
TINY_RANDOM = "tiny-random"
"""Any recipe at toy size with random weights: every path runs on a CPU (tests, trying the node
without a GPU)."""
RANDOM = "random"
"""A recipe's real shapes with random weights on a CUDA GPU: the real speed, noise for pictures."""
WEIGHTS = (AUTO, TINY_RANDOM, RANDOM)
WEIGHTS_HELP = (f"where the vace pipeline's weights come from: {AUTO} (the files `livevace "
                f"models pull` fetches; default) | {TINY_RANDOM} (the model at toy size, random "
                f"weights, runs on a CPU: try the node without a GPU) | {RANDOM} (random weights "
                f"at the model's real shapes on a CUDA GPU: the real speed without the files)")
MODEL_HELP = (f"the vace pipeline's generator: {' | '.join(MODEL_NAMES)} (default "
              f"{MODEL_NAMES[0]}; the `model` parameter switches it live)")
WEIGHTS_DTYPES = ("bf16", "fp8")
"""How the DiT's block weights are stored: bf16, or fp8 (half the memory; QUALITY-AFFECTING)."""
WEIGHTS_DTYPE_HELP = ("how the generator's block weights are stored: bf16 (default) | fp8 (half "
                      "the memory, so a 14B model fits a 32 GB card; QUALITY-AFFECTING: "
                      "weights rounded to e4m3 per row)")
OLD_MODELS = {AUTO: AUTO, TINY_RANDOM: TINY_RANDOM, "random-1.3b": RANDOM}
"""`--model` once named the weights: those spellings still work, as `--weights`."""


def model_and_weights(model: str | None, weights: str | None) -> tuple[str | None, str | None]:
    """`--model` and `--weights` as given (None: not given); an old `--model` spelling of the
    weights is taken as `--weights`, with a one-line note."""
    if model in OLD_MODELS:
        new = OLD_MODELS[model]
        if weights not in (None, new):
            raise UserError(f"--model {model} (old spelling of --weights {new}) contradicts "
                            f"--weights {weights}")
        log.warning("--model %s is deprecated: use --weights %s (--model now names the "
                    "generator: %s)", model, new, ", ".join(MODEL_NAMES))
        return None, new
    if model is not None and model not in MODEL_NAMES:
        raise UserError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_NAMES)} "
                        f"(and --weights {' | '.join(WEIGHTS)})")
    return model, weights


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--model NAME`, `--weights` and `--weights-dtype`, as every command that runs the vace
    pipeline takes them."""
    parser.add_argument("--model", metavar="NAME", help=MODEL_HELP)
    parser.add_argument("--weights", choices=WEIGHTS, help=WEIGHTS_HELP)
    parser.add_argument("--weights-dtype", choices=WEIGHTS_DTYPES, help=WEIGHTS_DTYPE_HELP)


def from_args(args: argparse.Namespace, store: ParamStore) -> str | None:
    """`--model` into the `model` parameter (over a preset's); returns `--weights` (None: not
    given). An old `--model` spelling of the weights counts as `--weights`."""
    model, weights = model_and_weights(args.model, args.weights)
    if model is not None:
        store.set("model", model)
    return weights
