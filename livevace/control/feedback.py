"""Feedback to controllers: every accepted change echoed, stats sent at a steady rate.

Motor faders, LEDs and TouchDesigner panels stay in sync because every value the store
accepts (from OSC, a scene, a slew step or the node itself) goes out to each target as
`/livevace/<name> value…`, plus whatever controller addresses the mappings derive from it.
Stats (fps, latency, GPU memory…) go out as `/livevace/stats/<key> f` every interval.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import sys
import threading
from typing import Any, Callable, Iterable, Protocol

from livevace.control.ratelog import BurstLog
from livevace.control.router import encode
from livevace.control.values import osc_args
from livevace.errors import UserError
from livevace.params import ParamStore, param

log = logging.getLogger("livevace.osc")

Extra = Callable[[str, Any], list[tuple[str, list[Any]]]]
"""More messages derived from a change (controller addresses of mappings)."""


class Stats(Protocol):
    def snapshot(self) -> dict[str, float]: ...


def parse_target(spec: str) -> tuple[str, int]:
    """'HOST:PORT' (or just 'PORT' for this machine) → (host, port)."""
    host, _, port = spec.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise UserError(f"--feedback {spec!r}: expected HOST:PORT, e.g. 192.168.1.30:9001")
    return host or "127.0.0.1", number


def gpu_memory() -> dict[str, float]:
    """GPU memory in use, when this process already uses CUDA (never initialises it)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return {}
    return {"gpu_memory_mb": torch.cuda.memory_allocated() / 2**20,
            "gpu_memory_reserved_mb": torch.cuda.memory_reserved() / 2**20}


def stats_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


class Feedback:
    """Sends value changes and stats to the configured OSC targets over UDP."""

    def __init__(self, store: ParamStore, targets: Iterable[tuple[str, int]],
                 stats: Stats | None = None, interval: float = 1.0,
                 extra: Extra | None = None) -> None:
        self.targets = list(targets)
        self.extra = extra
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._burst = BurstLog(log, window=10.0)
        self._stats = stats
        self._stop = threading.Event()
        self._unsubscribe = store.subscribe(self._changed)
        self._thread: threading.Thread | None = None
        if self.targets and stats is not None and interval > 0:
            self._thread = threading.Thread(target=self._stats_loop, args=(interval,),
                                            name="osc-feedback-stats", daemon=True)
            self._thread.start()

    def send(self, address: str, args: list[Any]) -> None:
        if not self.targets:
            return
        data = encode(address, args)
        for target in self.targets:
            try:
                self._sock.sendto(data, target)
            except OSError as exc:
                self._burst.warning(f"{target}", f"feedback to {target[0]}:{target[1]} failed ({exc})")

    def _changed(self, name: str, value: Any) -> None:
        if not self.targets:
            return
        p = param(name)
        self.send(p.address, osc_args(p, value))
        for address, args in self.extra(name, value) if self.extra else ():
            self.send(address, args)

    def send_stats(self) -> None:
        try:
            snap = self._stats.snapshot() if self._stats else {}
        except Exception as exc:  # the stats owner's bug must not stop feedback
            self._burst.warning("stats", f"stats unavailable ({type(exc).__name__}: {exc})")
            return
        for key, value in {**gpu_memory(), **snap}.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.send(f"/livevace/stats/{stats_key(key)}", [float(value)])

    def _stats_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.send_stats()

    def close(self) -> None:
        self._unsubscribe()
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self._sock.close()
