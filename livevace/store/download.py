"""`livevace models pull`: fetch catalogue entries that are not already on disk.

Hub files go through `huggingface_hub.hf_hub_download` into `<models dir>/<folder>/`: it
resumes interrupted downloads (its `.incomplete` files under `<folder>/.cache`) and draws a
tqdm bar per file. The few files hosted elsewhere (mediapipe tasks) use a small resumable
HTTP GET with its own bar. Files already present and sound — in our folder or in Scope's —
are never fetched again. `HF_HUB_OFFLINE=1` stops every download, and any failure becomes one
ModelError that says which file, from where, and where to put it by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from livevace.errors import ModelError
from livevace.store import catalog, paths
from livevace.store.catalog import ModelFile, format_size

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
HTTP_TIMEOUT_S = 30.0
DISK_MARGIN = 1.05


@dataclass(frozen=True)
class Pulled:
    """What `pull` did for one entry."""

    key: str
    folder: Path
    action: str
    """"present" (ours), "scope" (used in place from Scope's folder) or "downloaded"."""


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, looked up at call time."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def pull(keys: list[str]) -> list[Pulled]:
    """Make every entry present and sound; download only what is missing or broken."""
    entries = [catalog.get(k) for k in dict.fromkeys(keys)]
    results = []
    for i, entry in enumerate(entries, 1):
        prefix = f"[{i}/{len(entries)}] {entry.key}"
        folder = entry.find()
        problems = catalog.verify(entry, folder) if folder is not None else ["missing"]
        if not problems:
            in_scope = folder.is_relative_to(paths.scope_models_dir()) and not folder.is_relative_to(
                paths.models_dir())
            log.info("%s: %s at %s", prefix, "using Scope's copy" if in_scope else "present", folder)
            results.append(Pulled(entry.key, folder, "scope" if in_scope else "present"))
            continue
        if folder is not None:
            log.warning("%s: %s is not usable (%s); fetching a fresh copy", prefix, folder,
                        "; ".join(problems))
        target = paths.models_dir() / entry.weights.folder
        log.info("%s: %s, %s from %s", prefix, entry.weights.description,
                 format_size(entry.size_bytes), entry.source)
        _check_disk(entry, target)
        fetch(entry, target, force=folder == target)
        problems = catalog.verify(entry, target)
        if problems:
            raise ModelError(f"{entry.key} downloaded to {target} but looks wrong: "
                             f"{'; '.join(problems)}")
        results.append(Pulled(entry.key, target, "downloaded"))
    return results


def fetch(entry: ModelFile, target: Path, force: bool = False) -> None:
    """Download the entry's files into `target` (its folder in our models directory)."""
    w = entry.weights
    if w.url:
        for name in w.files:
            fetch_url(w.url, target / name)
        return
    for name in w.files:
        _hub_file(entry, name, target, force)
    if w.any_of and (force or not any((target / n).is_file() for n in w.any_of)):
        for name in w.any_of:
            if _hub_file(entry, name, target, force, optional=True):
                break
        else:
            raise ModelError(f"{w.repo_id} has none of {', '.join(w.any_of)} ({entry.key})")


def _hub_file(entry: ModelFile, name: str, target: Path, force: bool,
              optional: bool = False) -> bool:
    """One file from the hub; False when `optional` and the repo does not have it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError)

    if (target / name).is_file() and not force:
        return True
    repo = entry.weights.repo_id
    by_hand = f"or copy {name} from https://huggingface.co/{repo} to {target / name}"
    try:
        hf_hub_download(repo, name, local_dir=target, force_download=force,
                        local_files_only=offline())
    except LocalEntryNotFoundError:
        if offline():
            raise ModelError(f"cannot download {entry.key}: HF_HUB_OFFLINE is set; unset it, "
                             f"{by_hand}") from None
        raise ModelError(f"cannot reach huggingface.co to download {entry.key}: check the "
                         f"network, {by_hand}") from None
    except EntryNotFoundError:  # after LocalEntryNotFoundError, its subclass
        if optional:
            return False
        raise ModelError(f"{repo} has no file {name} ({entry.key}); the repository changed: "
                         "please report it") from None
    except GatedRepoError:
        raise ModelError(f"{repo} needs a Hugging Face login: run `hf auth login` after "
                         f"accepting its terms, {by_hand}") from None
    except RepositoryNotFoundError:
        raise ModelError(f"repository {repo} not found on huggingface.co ({entry.key})") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelError(f"download of {entry.key} failed ({exc}); run the command again to "
                         f"resume, {by_hand}") from None
    return True


def fetch_url(url: str, dest: Path) -> None:
    """Resumable HTTP GET into `dest` via `dest.part`, with a progress bar."""
    if dest.is_file():
        return
    if offline():
        raise ModelError(f"cannot download {dest.name}: HF_HUB_OFFLINE is set; unset it, or "
                         f"save {url} as {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            if have and response.status != 206:  # the server ignored Range: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if have else "wb") as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is complete
            part.replace(dest)
            return
        raise ModelError(f"download of {url} failed (HTTP {exc.code}); save it as {dest} "
                         "by hand") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"download of {url} failed ({exc}); run the command again to resume, "
                         f"or save it as {dest}") from None
    part.replace(dest)


def _check_disk(entry: ModelFile, target: Path) -> None:
    """Refuse before a 11 GB download that cannot fit."""
    base = target
    while not base.exists():
        base = base.parent
    free = shutil.disk_usage(base).free
    if free < DISK_MARGIN * entry.size_bytes:
        raise ModelError(f"{entry.key} needs about {format_size(entry.size_bytes)} but "
                         f"{base} has {format_size(free)} free; free space or set "
                         "LIVEVACE_MODELS_DIR to a bigger disk")
