"""From OSC packets to parameter writes: decoding, bundles, wildcards, and the write rules.

Every address the node answers is a route: one per registry parameter (`/livevace/<name>`),
the control commands (scenes, learn, dump) and the addresses of the loaded controller
mappings. A message whose address pattern holds OSC wildcards reaches every route it
matches (livevace.control.patterns: no backtracking, so no pattern can stall the node). A
bundle is applied under the store's lock, so a chunk sees all of it or none; bundles
time-tagged in the future wait in a queue that `tick` drains. What a packet asks is
answered in one message or bundle (livevace.control.replies).

Nothing a sender does can stop the node: malformed packets, wrong types, NaN and unknown
addresses each cost at most one log line per burst.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import time
from typing import Any, Callable

from pythonosc.osc_packet import OscPacket

from livevace.control.patterns import Pattern, PatternError, has_wildcards
from livevace.control.ramps import Ramps
from livevace.control.ratelog import BurstLog, shorten
from livevace.control.replies import Replies
from livevace.control.transport import Reply, encode
from livevace.control.values import osc_args, value_from_args
from livevace.errors import UserError
from livevace.params import REGISTRY, Param, ParamError, ParamStore, param

log = logging.getLogger("livevace.osc")

Route = Callable[[str, list[Any], Replies], None]
"""A route's handler: (address as received, arguments, the replies to the sender)."""

MAX_SCHEDULED = 1024
"""Future-dated bundle messages held at once (beyond: applied at once, logged)."""
MAX_AHEAD = 60.0
"""A time tag further ahead than this many seconds is treated as "now" (clock mix-ups)."""


class _QuietPythonOsc(logging.Filter):
    """python-osc logs a root-logger warning for every odd packet it parses; a flood of them
    would bury the show's log. Our own rate-limited lines report bad packets instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pythonosc" not in record.pathname


def _quiet_python_osc() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, _QuietPythonOsc) for f in root.filters):
        root.addFilter(_QuietPythonOsc())


def well_formed_bundle(data: bytes, depth: int = 0) -> bool:
    """Check a bundle's element framing before python-osc parses it: python-osc 1.10 loops
    forever on an element with a negative size (one 40-byte packet would hang the server)."""
    if not data.startswith(b"#bundle\0"):
        return True
    if depth > 8 or len(data) < 16:
        return False
    i = 16
    while i < len(data):
        if i + 4 > len(data):
            return False
        size = int.from_bytes(data[i:i + 4], "big", signed=True)
        i += 4
        if size <= 0 or i + size > len(data) or not well_formed_bundle(data[i:i + size], depth + 1):
            return False
        i += size
    return True


class Router:
    """Routes messages to handlers and applies parameter writes by the registry's rules."""

    def __init__(self, store: ParamStore, ramps: Ramps) -> None:
        self.store = store
        self.ramps = ramps
        self.burst = BurstLog(log)
        _quiet_python_osc()
        self._routes: dict[str, Route] = {}
        self._controller_routes: dict[str, Route] = {}
        self._scheduled: list[tuple[float, int, str, list[Any], Replies]] = []
        self._order = itertools.count()
        self.intercept: Callable[[str, list[Any], str | None], bool] | None = None
        """Sees every message to a non-/livevace address first, with its MIDI port (None:
        OSC); True consumes it (learn mode)."""
        self.defer: Callable[[str, Callable[[], None]], None] = lambda name, apply: apply()
        """Runs a prompt or scene change now or later (tempo quantisation replaces it)."""
        self.special: dict[str, Callable[[Any], None]] = {}
        """Parameters whose writes do more than store a value (scene → recall)."""
        for p in REGISTRY:
            self._routes[p.address] = self._param_route(p)

    # --- routes -------------------------------------------------------------------------
    def add(self, address: str, route: Route) -> None:
        """Add a control command (e.g. /livevace/scene/save)."""
        self._routes[address] = route

    def set_controller_routes(self, routes: dict[str, Route]) -> None:
        """Replace the routes of the loaded controller mappings (all at once)."""
        self._controller_routes = dict(routes)

    def knows(self, address: str) -> bool:
        """Whether a message to `address` (no wildcards) reaches a route."""
        return address in self._routes or address in self._controller_routes

    def _matching(self, address: str) -> list[Route]:
        """The routes an address (pattern) reaches; PatternError when it is malformed."""
        if not has_wildcards(address):
            route = self._routes.get(address) or self._controller_routes.get(address)
            return [route] if route else []
        pattern = Pattern(address)
        routes = {**self._controller_routes, **self._routes}
        return [route for a, route in routes.items() if pattern.matches(a)]

    def _param_route(self, p: Param) -> Route:
        def route(address: str, args: list[Any], reply: Replies) -> None:
            if not args and p.kind != "trigger":
                reply(encode(p.address, osc_args(p, self.store.get(p.name))))  # a query
                return
            self.write(p.name, value_from_args(p, args))

        return route

    # --- writes -------------------------------------------------------------------------
    def write(self, name: str, raw: Any, slew: float | None = None) -> None:
        """Write a value as a sender asked: coerced and clamped by the registry, then set,
        glided (the parameter's slew unless `slew` says otherwise) or deferred to the beat."""
        p = param(name)
        if p.readonly:
            raise ParamError(f"{name} is read only")
        value = p.coerce_noted(raw, lambda line: self.burst.info(f"clamp {name}", line))
        if name in self.special:
            self.special[name](value)
        elif p.apply == "transition":
            self.defer(name, lambda: self.ramps.slew(name, value, 0.0))
        elif p.kind == "trigger":
            self.store.set(name, True)
        else:
            self.ramps.slew(name, value, p.slew if slew is None else slew)

    # --- packets ------------------------------------------------------------------------
    def handle_packet(self, data: bytes, sender: tuple[str, int], reply: Reply) -> None:
        """Decode one packet (message or bundle), apply it and send what it asked for in
        one answer; never raises."""
        try:
            if not well_formed_bundle(data):
                raise ValueError("bad bundle framing")
            messages = OscPacket(data).messages
        except Exception:  # python-osc raises several types for malformed input
            self.burst.warning(f"malformed {sender[0]}", f"malformed OSC packet from "
                               f"{sender[0]} ({len(data)} bytes) ignored")
            return
        now = time.time()
        replies = Replies(reply)
        # a bundle holds the store so a chunk sees all of it or none; a lone message need not
        with self.store.batch() if len(messages) > 1 else contextlib.nullcontext():
            for timed in messages:
                msg = timed.message
                if now + 0.001 < timed.time < now + MAX_AHEAD and len(self._scheduled) < MAX_SCHEDULED:
                    heapq.heappush(self._scheduled, (timed.time, next(self._order), msg.address,
                                                     list(msg.params), replies))
                    continue
                self.dispatch(msg.address, list(msg.params), replies)
        replies.send()

    def run_due(self, now: float | None = None) -> None:
        """Apply the future-dated bundle messages whose time has come."""
        now = time.time() if now is None else now
        due: dict[int, Replies] = {}
        with self.store.batch():
            while self._scheduled and self._scheduled[0][0] <= now:
                _, _, address, args, replies = heapq.heappop(self._scheduled)
                due[id(replies)] = replies
                self.dispatch(address, args, replies)
        for replies in due.values():
            replies.send()

    def dispatch(self, address: str, args: list[Any], reply: Replies) -> None:
        """Apply one message; every failure is one log line, never an exception."""
        try:
            if self.intercept and not address.startswith("/livevace") \
                    and self.intercept(address, args, reply.source):
                return
            try:
                routes = self._matching(address)
            except PatternError as exc:
                self.burst.warning(f"pattern {address[:64]}", f"OSC address pattern: {exc}")
                return
            if not routes:
                self.burst.warning(f"unknown {address[:64]}", f"unknown OSC address "
                                   f"{shorten(address)!r} ignored (`livevace osc --list` shows "
                                   "them all)")
            for route in routes:
                try:
                    route(address, args, reply)
                except UserError as exc:
                    self.burst.warning(f"reject {address[:64]} {str(exc)[:64]}", str(exc))
        except Exception as exc:  # a bug must not take the show down: log it and go on
            self.burst.warning(f"error {address[:64]}", f"error handling {shorten(address)!r}: "
                               f"{type(exc).__name__}: {exc}")
            log.debug("traceback", exc_info=True)
