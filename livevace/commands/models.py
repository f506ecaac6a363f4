"""`livevace models list | pull [NAMES] | verify [NAMES]`: the weights livevace can use.

A NAME is a catalogue entry (`vace_module`) or a zoo model (`krea-realtime`), which stands for
every file that model needs: its generator files, the VACE module that fits it, and the text
encoder, tokenizer, VAE and tiny decoder all models share. The recipes (and with them torch)
are imported only when a model is named or the models are listed; building the command line
reads the names from `params.MODELS`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from livevace.errors import ModelError
from livevace.params import MODELS
from livevace.store import catalog, download, paths
from livevace.store.catalog import format_size

if TYPE_CHECKING:
    from livevace.models.wan.recipe import Recipe

NAME_HELP = (f"a zoo model ({', '.join(MODELS)}: every file it needs) or an entry from "
             "`livevace models list`")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models", help="list, download and check model weights",
        description="Model files live in $LIVEVACE_MODELS_DIR (default ~/.cache/livevace/models); "
        "files Daydream Scope already downloaded (~/.daydream-scope/models, or "
        "$DAYDREAM_SCOPE_MODELS_DIR) are used in place, never downloaded twice.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="every model file, its size, licence and where it is; "
                           "the zoo models and what each still lacks")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"only these: {NAME_HELP}")
    p.add_argument("--markdown", action="store_true",
                   help="print the catalogue as Markdown tables (docs/models.md)")
    p.set_defaults(func=_list)
    p = actions.add_parser("pull", help="download what is missing (default: what the vace "
                           f"pipeline needs, {format_size(catalog.fresh_pull_bytes())} from "
                           "scratch); says each file's licence first")
    p.add_argument("names", nargs="*", metavar="NAME", help=NAME_HELP)
    p.add_argument("--all", action="store_true", help="every entry in the catalogue")
    p.set_defaults(func=_pull)
    p = actions.add_parser("verify", help="check sizes and tensor shapes of the files on disk")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"{NAME_HELP}; default: every "
                   "file present")
    p.set_defaults(func=_verify)


def recipe(name: str) -> Recipe:
    """The zoo recipe called `name` (imports the networks: only when a model is asked for)."""
    from livevace.models.wan import zoo

    return zoo.recipe(name)


def recipes() -> dict[str, Recipe]:
    """Every recipe the zoo has, by name, the default first."""
    from livevace.models.wan import zoo

    return dict(zoo.RECIPES)


def expand(names: list[str]) -> dict[str, str]:
    """Catalogue key → the NAME it was asked by, in order, without repeats: a zoo model stands
    for every file it needs. A name that is neither gets one line listing both kinds."""
    asked: dict[str, str] = {}
    for name in names:
        if name in MODELS:
            keys = catalog.model_keys(recipe(name))
        elif name in catalog.BY_KEY:
            keys = [name]
        else:
            raise ModelError(f"unknown model or file {name!r}; models: {', '.join(MODELS)}; "
                             f"files: {', '.join(catalog.BY_KEY)}")
        for key in keys:
            asked.setdefault(key, name)
    return asked


def licence_lines(keys: list[str]) -> list[str]:
    """One line per licence among these entries, the non-commercial ones first, with where
    their terms are stated."""
    groups: dict[str, list[catalog.ModelFile]] = {}
    for key in keys:
        entry = catalog.get(key)
        groups.setdefault(str(entry.licence), []).append(entry)
    lines = []
    for label, entries in sorted(groups.items(), key=lambda g: g[1][0].licence.commercial):
        where = ("" if entries[0].licence.commercial else " — as stated in " +
                 "; ".join(dict.fromkeys(e.licence.source for e in entries)))
        lines.append(f"licence  {label}: {', '.join(e.key for e in entries)}{where}")
    return lines


def model_licence(model: Recipe) -> str:
    """The terms of a model's own generator files (the shared files are all Apache-2.0/MIT)."""
    licences = dict.fromkeys(catalog.get(k).licence for k in model.checkpoints)
    return "; ".join(str(lic) for lic in licences)


def _status(entry: catalog.ModelFile) -> str:
    folder = entry.find()
    if folder is None:
        return "missing"
    return "scope" if not folder.is_relative_to(paths.models_dir()) else "ok"


def _list(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    print(f"models directory: {paths.models_dir()}")
    print(f"Scope's folder:   {paths.scope_models_dir()}")
    default = set(catalog.default_keys())
    keys = list(expand(args.names)) if args.names else [e.key for e in catalog.CATALOG]
    rows = []
    for key in keys:
        entry = catalog.get(key)
        mark = "*" if entry.key in default else " "
        rows.append((f"{mark}{entry.key}", format_size(entry.size_bytes), _status(entry),
                     str(entry.licence), entry.purpose))
    _print_columns(rows)
    print("* pulled by `livevace models pull`; status: ok (models directory), scope (used in "
          "place from Scope's folder), missing")
    if not args.names:
        print("\nzoo models (`livevace run --model NAME`; `livevace models pull NAME` fetches "
              "what one lacks):")
        _print_columns([_model_row(name, model) for name, model in recipes().items()], "  ")
    return 0


def _model_row(name: str, model: Recipe) -> tuple[str, ...]:
    missing = [catalog.get(k) for k in catalog.model_keys(model) if catalog.get(k).find() is None]
    status = (f"{len(missing)} files missing ({format_size(sum(m.size_bytes for m in missing))})"
              if missing else "ready")
    label = f"{name} (default)" if name == MODELS[0] else name
    return (label, status, model_licence(model))


def _print_columns(rows: list[tuple[str, ...]], indent: str = "") -> None:
    """Every column but the last padded to its widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


def markdown_table() -> str:
    """The catalogue and the zoo for docs/models.md (a test keeps the two equal)."""
    lines = ["| name | download from | in the models directory | in Scope's folder | size | "
             "licence | what for |", "|---|---|---|---|---:|---|---|"]
    for entry in catalog.CATALOG:
        w = entry.weights
        where = "<br>".join(f"`{w.folder}/{n}`" for n in entry.names)
        scope = "<br>".join(f"`{p}`" for p in entry.scope) or "–"
        source = f"[{w.repo_id}](https://huggingface.co/{w.repo_id})" if w.repo_id else w.url
        lines.append(f"| `{entry.key}` | {source} | {where} | {scope} | "
                     f"{format_size(entry.size_bytes)} | {entry.licence} | {entry.purpose}; for "
                     f"{', '.join(entry.features)} |")
    lines += ["", "| model | generator files | VACE module (any one) | with the shared files | "
              "licence of its generator |", "|---|---|---|---:|---|"]
    for name, model in recipes().items():
        size = sum(catalog.get(k).size_bytes for k in catalog.model_keys(model, on_disk=False))
        lines.append(f"| `{name}` | {', '.join(f'`{k}`' for k in model.checkpoints)} | "
                     f"{', '.join(f'`{k}`' for k in model.vace_checkpoints)} | "
                     f"{format_size(size)} | {model_licence(model)} |")
    return "\n".join(lines)


def _pull(args: argparse.Namespace) -> int:
    if args.all:
        keys = [e.key for e in catalog.CATALOG]
    else:
        keys = list(expand(args.names)) if args.names else catalog.default_keys()
    for line in licence_lines(keys):
        print(line)
    results = download.pull(keys)
    fetched = [r.key for r in results if r.action == "downloaded"]
    reused = [r.key for r in results if r.action == "scope"]
    print(f"{len(results)} ready: {len(fetched)} downloaded, {len(reused)} used from Scope's "
          f"folder, {len(results) - len(fetched) - len(reused)} already here")
    return 0


def _verify(args: argparse.Namespace) -> int:
    asked = expand(args.names) if args.names else {e.key: e.key for e in catalog.CATALOG}
    default = set(catalog.default_keys())
    bad = 0
    for key, name in asked.items():
        entry = catalog.get(key)
        folder = entry.find()
        if folder is None:
            if args.names or entry.key in default:
                print(f"missing  {entry.key}: run `{catalog.pull_command(name)}`")
                bad += 1
            continue
        problems = catalog.verify(entry, folder)
        print(f"{'BAD' if problems else 'ok':<8} {entry.key}: {'; '.join(problems) or folder}")
        bad += bool(problems)
    return 1 if bad else 0
