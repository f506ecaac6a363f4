"""NDI runtime and discovery shared by the NDI source and sink (ndi-python / NDIlib).

On Linux, NDI discovery uses mDNS through avahi; without it nothing is found on the
network. The finder therefore always also asks the addresses in `extra_ips` directly
(127.0.0.1 by default, so senders on this machine are found), and a source may be given as
`HOST:PORT` to connect with no discovery at all.

Asking an address directly reaches one NDI program there, not all of them: every NDI
program on a host listens on the same discovery port (5960, shared), the kernel hands each
connection to one of them at random, and that one answers for its own senders only. A
finder keeps its connection, so a long-lived finder that reconnected while a sender was
away (say, to the node's own NDI output) never sees that sender again. Lookups therefore
also sweep with several fresh finders, each a new random draw; they answer within
milliseconds. The long-lived finder stays for what mDNS teaches over time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from livevace.config import DEFAULT_NDI_EXTRA_IPS as DEFAULT_EXTRA_IPS
from livevace.errors import UserError

SWEEP_FINDERS = 8
"""Fresh finders per sweep: with two NDI programs on a host, all eight miss the one sought
once in 256 sweeps."""
SWEEP_WAIT = 0.1
"""How long a sweep waits for answers (loopback answers in a few milliseconds)."""

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
    """One process-wide NDI finder (it learns mDNS answers over time), plus sweeps."""

    _instances: dict[tuple[str, ...], "Discovery"] = {}
    _class_lock = threading.Lock()

    def __init__(self, extra_ips: tuple[str, ...]) -> None:
        ndi = ndilib()
        settings = ndi.FindCreate()
        settings.show_local_sources = True
        if extra_ips:
            settings.extra_ips = ",".join(extra_ips)
        self._ndi = ndi
        self._settings = settings
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
        """Sources seen now; sweeps again for up to `wait` seconds until one shows up."""
        return self._look(None, wait)

    def resolve(self, name: str, wait: float = 0.0) -> NdiSourceInfo | None:
        """Find `name`: the full "HOST (Name)" or just "Name", case-insensitive."""
        return pick(self._look(name, wait), name)

    def _look(self, name: str | None, wait: float) -> list[NdiSourceInfo]:
        """Sweep (at least once) until `name` (or, with no name, anything) is seen or
        `wait` is over; the sweep's answers first: they are live, the finder's may be old."""
        deadline = time.monotonic() + wait
        while True:
            seen = _unique(self._sweep(name) + self._current())
            found = pick(seen, name) is not None if name else bool(seen)
            if found or time.monotonic() >= deadline:
                return seen

    def _current(self) -> list[NdiSourceInfo]:
        with self._lock:
            return _infos(self._ndi.find_get_current_sources(self._finder))

    def _sweep(self, name: str | None) -> list[NdiSourceInfo]:
        """Ask with fresh finders (see the module doc) until `name` answers or SWEEP_WAIT."""
        finders = [self._ndi.find_create_v2(self._settings) for _ in range(SWEEP_FINDERS)]
        try:
            deadline = time.monotonic() + SWEEP_WAIT
            while True:
                found = _unique([info for finder in finders
                                 for info in _infos(self._ndi.find_get_current_sources(finder))])
                if (name and pick(found, name)) or time.monotonic() >= deadline:
                    return found
                time.sleep(0.005)
        finally:
            for finder in finders:
                self._ndi.find_destroy(finder)


def _infos(found) -> list[NdiSourceInfo]:
    return [NdiSourceInfo(str(s.ndi_name), str(s.url_address or "")) for s in found]


def _unique(infos: list[NdiSourceInfo]) -> list[NdiSourceInfo]:
    """The first answer for each name."""
    seen: dict[str, NdiSourceInfo] = {}
    for info in infos:
        seen.setdefault(info.name, info)
    return list(seen.values())


def pick(sources: list[NdiSourceInfo], name: str) -> NdiSourceInfo | None:
    want = name.lower()
    for test in (lambda s: s.name.lower() == want, lambda s: s.short.lower() == want):
        hits = [s for s in sources if test(s)]
        if hits:
            return hits[0]
    return None
