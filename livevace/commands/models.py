"""`livevace models list | pull [NAMES] | verify [NAMES]`: the weights livevace can use."""

from __future__ import annotations

import argparse

from livevace.store import catalog, download, paths
from livevace.store.catalog import format_size


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models", help="list, download and check model weights",
        description="Model files live in $LIVEVACE_MODELS_DIR (default ~/.cache/livevace/models); "
        "files Daydream Scope already downloaded (~/.daydream-scope/models, or "
        "$DAYDREAM_SCOPE_MODELS_DIR) are used in place, never downloaded twice.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="every model file, its size and where it is")
    p.add_argument("--markdown", action="store_true",
                   help="print the catalogue as a Markdown table (docs/models.md)")
    p.set_defaults(func=_list)
    p = actions.add_parser("pull", help="download what is missing (default: what the vace "
                           f"pipeline needs, {format_size(catalog.fresh_pull_bytes())} from "
                           "scratch)")
    p.add_argument("names", nargs="*", metavar="NAME", help="entries from `livevace models list`")
    p.add_argument("--all", action="store_true", help="every entry in the catalogue")
    p.set_defaults(func=_pull)
    p = actions.add_parser("verify", help="check sizes and tensor shapes of the files on disk")
    p.add_argument("names", nargs="*", metavar="NAME", help="default: every file present")
    p.set_defaults(func=_verify)


def _list(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    print(f"models directory: {paths.models_dir()}")
    print(f"Scope's folder:   {paths.scope_models_dir()}")
    default = set(catalog.default_keys())
    rows = []
    for entry in catalog.CATALOG:
        folder = entry.find()
        where = ("missing" if folder is None else
                 "scope" if not folder.is_relative_to(paths.models_dir()) else "ok")
        mark = "*" if entry.key in default else " "
        rows.append((f"{mark}{entry.key}", format_size(entry.size_bytes), where, entry.purpose))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
    print("* pulled by `livevace models pull`; status: ok (models directory), scope (used in "
          "place from Scope's folder), missing")
    return 0


def markdown_table() -> str:
    """The catalogue for docs/models.md (a test keeps the two equal)."""
    lines = ["| name | download from | in the models directory | in Scope's folder | size | "
             "what for |", "|---|---|---|---|---:|---|"]
    for entry in catalog.CATALOG:
        w = entry.weights
        where = "<br>".join(f"`{w.folder}/{n}`" for n in entry.names)
        scope = "<br>".join(f"`{p}`" for p in entry.scope) or "–"
        source = f"[{w.repo_id}](https://huggingface.co/{w.repo_id})" if w.repo_id else w.url
        lines.append(f"| `{entry.key}` | {source} | {where} | {scope} | "
                     f"{format_size(entry.size_bytes)} | {entry.purpose}; for "
                     f"{', '.join(entry.features)} |")
    return "\n".join(lines)


def _pull(args: argparse.Namespace) -> int:
    keys = [e.key for e in catalog.CATALOG] if args.all else args.names or catalog.default_keys()
    results = download.pull(keys)
    fetched = [r.key for r in results if r.action == "downloaded"]
    reused = [r.key for r in results if r.action == "scope"]
    print(f"{len(results)} ready: {len(fetched)} downloaded, {len(reused)} used from Scope's "
          f"folder, {len(results) - len(fetched) - len(reused)} already here")
    return 0


def _verify(args: argparse.Namespace) -> int:
    entries = [catalog.get(n) for n in args.names] or list(catalog.CATALOG)
    default = set(catalog.default_keys())
    bad = 0
    for entry in entries:
        folder = entry.find()
        if folder is None:
            if args.names or entry.key in default:
                print(f"missing  {entry.key}: run `livevace models pull {entry.key}`")
                bad += 1
            continue
        problems = catalog.verify(entry, folder)
        print(f"{'BAD' if problems else 'ok':<8} {entry.key}: {'; '.join(problems) or folder}")
        bad += bool(problems)
    return 1 if bad else 0
