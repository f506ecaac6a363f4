"""NDI runtime and discovery shared by the NDI source and sink (ndi-python / NDIlib).

On Linux, NDI discovery uses mDNS through avahi; without it nothing is found on the
network. The finder therefore always also asks the addresses in `extra_ips` directly
(127.0.0.1 by default, so senders on this machine are always found), and a source may be
given as `HOST:PORT` to connect with no discovery at all.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from livevace.errors import UserError

DEFAULT_EXTRA_IPS = ("127.0.0.1",)

_lock = threading.Lock()
_ready = False


class NdiUnavailable(UserError):
    """The NDI library cannot run on this machine."""


def ndilib():
    """The NDIlib module, initialised once per process (NDIlib keeps its own threads;
    initialising again after a destroy is not reliable, so it lives until exit)."""
    global _ready
    try:
        import NDIlib as ndi
    except ImportError as exc:
        raise NdiUnavailable(f"NDI is not installed ({exc}); reinstall livevace "
                             "(`make run` does) to get ndi-python") from None
    with _lock:
        if not _ready:
            if not ndi.initialize():
                raise NdiUnavailable("NDI cannot start on this CPU (it needs SSE4.2); "
                                     "use spout, syphon, vcam or record instead")
            _ready = True
    return ndi


@dataclass(frozen=True)
class NdiSourceInfo:
    name: str  # "HOST (Name)", as NDI shows it
    url: str  # "IP:PORT"

    @property
    def short(self) -> str:
        """The part in parentheses: what the sending program called itself."""
        head, sep, tail = self.name.partition(" (")
        return tail[:-1] if sep and tail.endswith(")") else self.name


class Discovery:
    """One process-wide NDI finder (creating finders is slow; they learn over time)."""

    _instances: dict[tuple[str, ...], "Discovery"] = {}
    _class_lock = threading.Lock()

    def __init__(self, extra_ips: tuple[str, ...]) -> None:
        ndi = ndilib()
        settings = ndi.FindCreate()
        settings.show_local_sources = True
        if extra_ips:
            settings.extra_ips = ",".join(extra_ips)
        self._ndi = ndi
        self._finder = ndi.find_create_v2(settings)
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, extra_ips: tuple[str, ...] = DEFAULT_EXTRA_IPS) -> "Discovery":
        key = tuple(sorted(set(extra_ips)))
        with cls._class_lock:
            if key not in cls._instances:
                cls._instances[key] = cls(key)
            return cls._instances[key]

    def sources(self, wait: float = 0.0) -> list[NdiSourceInfo]:
        """Sources seen so far; waits up to `wait` seconds for the first to show up."""
        with self._lock:
            deadline = time.monotonic() + wait
            found = self._ndi.find_get_current_sources(self._finder)
            while not found and time.monotonic() < deadline:
                left = int(max(1, (deadline - time.monotonic()) * 1000))
                self._ndi.find_wait_for_sources(self._finder, min(left, 250))
                found = self._ndi.find_get_current_sources(self._finder)
            return [NdiSourceInfo(str(s.ndi_name), str(s.url_address or "")) for s in found]

    def resolve(self, name: str, wait: float = 0.0) -> NdiSourceInfo | None:
        """Find `name`: the full "HOST (Name)" or just "Name", case-insensitive."""
        deadline = time.monotonic() + wait
        while True:
            match = pick(self.sources(), name)
            if match is not None or time.monotonic() >= deadline:
                return match
            with self._lock:
                self._ndi.find_wait_for_sources(self._finder, 200)


def pick(sources: list[NdiSourceInfo], name: str) -> NdiSourceInfo | None:
    want = name.lower()
    for test in (lambda s: s.name.lower() == want, lambda s: s.short.lower() == want):
        hits = [s for s in sources if test(s)]
        if hits:
            return hits[0]
    return None
