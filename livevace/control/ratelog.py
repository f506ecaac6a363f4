"""Rate-limited logging: a flood of bad packets must not flood the VJ's terminal.

The first event of a kind (key) is logged at once; repeats within `window` seconds are
counted and the count is reported with the next line of that kind ("… (37 more like
this)"). Across all kinds at most `budget` lines go out per window, so a fuzzer sending
ever-new garbage costs a few lines, not thousands. No line is longer than MAX_LINE: the
strings a sender sends end up in messages, and `shorten` cuts them.
"""

from __future__ import annotations

import logging
import threading
import time


MAX_LINE = 400
"""Characters of one logged line (more is cut by `shorten`)."""


class BurstLog:
    """Log at most one line per key per window (a "burst"), and `budget` lines per window."""

    MAX_KEYS = 512
    """Distinct keys remembered (unknown addresses are keys: a fuzzer must not grow this)."""

    def __init__(self, logger: logging.Logger, window: float = 2.0, budget: int = 20) -> None:
        self._log = logger
        self._window = window
        self._budget = budget
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._window_start = 0.0
        self._lines = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def __call__(self, level: int, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self._window:
                self._window_start, self._lines = now, 0
            last = self._last.get(key)
            if last is not None and now - last < self._window:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            if self._lines >= self._budget:
                self._dropped += 1
                return
            if len(self._last) >= self.MAX_KEYS:
                self._last.clear()
                self._suppressed.clear()
            self._last[key] = now
            self._lines += 1
            more = self._suppressed.pop(key, 0)
            dropped, self._dropped = self._dropped, 0
        notes = [f"{more} more like this"] if more else []
        notes += [f"{dropped} other messages suppressed"] if dropped else []
        self._log.log(level, "%s%s", shorten(message, MAX_LINE),
                      f" ({'; '.join(notes)})" if notes else "")

    def warning(self, key: str, message: str) -> None:
        self(logging.WARNING, key, message)

    def info(self, key: str, message: str) -> None:
        self(logging.INFO, key, message)


def shorten(text: str, limit: int = 64) -> str:
    """`text` cut to `limit` characters, saying how long it was: a sender's 60 KB string
    must not become a 60 KB log line."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
