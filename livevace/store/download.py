"""`livevace models pull`: fetch catalogue entries that are not already on disk.

Hub files go through `huggingface_hub.hf_hub_download` into `<models dir>/<folder>/`: it
resumes interrupted downloads (its `.incomplete` files under `<folder>/.cache`) and draws a
tqdm bar per file. The few files hosted elsewhere (mediapipe tasks) use a small resumable
HTTP GET with its own bar. Files already present and sound — in our folder or in Scope's —
are never fetched again. Any failure becomes one ModelError that says which file, from where,
and where to put it by hand.

Before the first byte, `pull` knows every file it needs: offline (`HF_HUB_OFFLINE=1`), or when a
host cannot be reached (no DNS, connection refused, no answer within `CONNECT_TIMEOUT_S`: one
TCP connect each, through the proxy when one is set), it stops at once with every missing file
of every requested entry, each with its URL and its place — instead of the hub's retries
(many seconds per file) ending in a message about the first file only.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from livevace.errors import ModelError, describe
from livevace.store import catalog, paths
from livevace.store.catalog import ModelFile, format_size

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
HTTP_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
"""How long `pull` waits for a host to accept a connection before saying it cannot reach it."""
DISK_MARGIN = 1.05
HTTP_LOGGERS = ("httpx", "httpx2")
"""huggingface_hub's HTTP clients (by version), which log every request at INFO."""


@dataclass(frozen=True)
class Pulled:
    """What `pull` did for one entry."""

    key: str
    folder: Path
    action: str
    """"present" (ours), "scope" (used in place from Scope's folder) or "downloaded"."""


def offline_variable() -> str | None:
    """The variable that makes downloads stop, as huggingface_hub reads them (HF_HUB_OFFLINE,
    else TRANSFORMERS_OFFLINE), looked up at call time; None when online."""
    name = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    on = os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return name if on else None


def offline() -> bool:
    """No downloads in this run (`offline_variable`)."""
    return offline_variable() is not None


@dataclass(frozen=True)
class Download:
    """One entry `pull` must fetch into `target` (`force`: over a broken copy there)."""

    prefix: str
    entry: ModelFile
    target: Path
    force: bool

    def files(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(URL, name in `target`, alternatives) of each file it lacks; of a set of
        alternatives (`any_of`) the first, with the others, unless a required file is one."""
        w, target, force = self.entry.weights, self.target, self.force
        names = [(n, ()) for n in w.files if force or not (target / n).is_file()]
        if w.any_of and not any(n in w.files or (not force and (target / n).is_file())
                                for n in w.any_of):
            names.append((w.any_of[0], w.any_of[1:]))
        return [(w.url or _hub_url(w.repo_id, n), n, alt) for n, alt in names]


def pull(keys: list[str]) -> list[Pulled]:
    """Make every entry present and sound; download only what is missing or broken."""
    entries = [catalog.get(k) for k in dict.fromkeys(keys)]
    results, downloads = [], []
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
        downloads.append(Download(prefix, entry, target, force=folder == target))
    if downloads:
        ensure_reachable(downloads)
        _hub_logs_once()
    for d in downloads:
        entry, target = d.entry, d.target
        log.info("%s: %s, %s from %s", d.prefix, entry.weights.description,
                 format_size(entry.size_bytes), entry.source)
        _check_disk(entry, target)
        fetch(entry, target, force=d.force)
        problems = catalog.verify(entry, target)
        if problems:
            raise ModelError(f"{entry.key} downloaded to {target} but looks wrong: "
                             f"{'; '.join(problems)}")
        results.append(Pulled(entry.key, target, "downloaded"))
    return results


def ensure_reachable(downloads: list[Download]) -> None:
    """One ModelError listing every file of `downloads` that cannot be fetched now — all of
    them when offline, else those on a host that cannot be reached — each with its URL and
    its place, so they can be put there by hand."""
    files = [(url, d.target / name, alt) for d in downloads for url, name, alt in d.files()]
    if offline():
        blocked, why = files, f"{offline_variable()} is set; unset it"
    else:
        down = {}
        for origin in dict.fromkeys(_origin(url) for url, _, _ in files):
            problem = unreachable(origin)
            if problem is not None:
                down[origin] = problem
        if not down:
            return
        blocked = [f for f in files if _origin(f[0]) in down]
        why = "; ".join(f"cannot reach {o} ({p})" for o, p in down.items())
        why += ": check the network" + (" (or HF_ENDPOINT)" if _hub_endpoint() in down else "")
    lines = "\n".join(f"  {url}\n    -> {dest}" + (f" (or {', '.join(alt)})" if alt else "")
                      for url, dest, alt in blocked)
    raise ModelError(f"cannot download {len(blocked)} file{'s' if len(blocked) > 1 else ''}: "
                     f"{why}, or put each in place by hand:\n{lines}")


def unreachable(url: str) -> str | None:
    """Why a TCP connection to `url`'s host (or to the proxy that would carry it) cannot be
    made within CONNECT_TIMEOUT_S, or None when one can."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    via = ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        hop = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = hop.hostname or "", hop.port or 80
        via = f"through the proxy {host}:{port}: "
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except socket.gaierror:
        return f"{via}DNS has no address for {host}"
    except ConnectionRefusedError:
        return f"{via}connection refused"
    except TimeoutError:
        return f"{via}no answer within {CONNECT_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"{via}{exc.strerror or exc}"
    return None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _hub_endpoint() -> str:
    """The hub's origin as huggingface_hub uses it (HF_ENDPOINT, else huggingface.co)."""
    from huggingface_hub import constants

    return _origin(constants.ENDPOINT)


def _hub_url(repo_id: str, name: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo_id, name)


def _hub_logs_once() -> None:
    """huggingface_hub gives its logger a stderr handler of its own and lets it propagate
    too: under the CLI's logging every retry warning came out twice. Where the root logger
    prints, the library's own handler is dropped (and its HTTP client's per-request lines
    are kept for -v)."""
    import huggingface_hub  # noqa: F401 - its logger and handler are set up on import

    hub = logging.getLogger("huggingface_hub")
    root = logging.getLogger()
    if root.handlers and hub.propagate:
        for handler in list(hub.handlers):
            hub.removeHandler(handler)
    if root.level > logging.DEBUG:  # a line per HTTP request is for -v only
        for name in HTTP_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


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
    except LocalEntryNotFoundError as exc:
        if offline():
            raise ModelError(f"cannot download {entry.key}: {offline_variable()} is set; unset "
                             f"it, {by_hand}") from None
        why = f" ({describe(exc.__cause__)})" if exc.__cause__ is not None else ""
        raise ModelError(f"cannot download {entry.key} from {_hub_endpoint()}{why}: check the "
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
        raise ModelError(f"cannot download {dest.name}: {offline_variable()} is set; unset it, "
                         f"or save {url} as {dest}")
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
