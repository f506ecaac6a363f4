"""Helpers for tests (no tests here): wait until something has happened, never for a fixed
time. A loaded machine only takes longer, so the deadline is generous; only a broken part
reaches it."""

from __future__ import annotations

import time
from typing import Callable


def until(done: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll `done()` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)
