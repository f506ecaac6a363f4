"""Waiting for a frame's due time inside a source's bounded `read(timeout)`."""

from __future__ import annotations

import time

from livevace.frames import now


def sleep_until(due: float, timeout: float) -> float | None:
    """Sleep until `due` when that is within `timeout` and return how late we are then
    (0 when on time); when `due` is further away, sleep `timeout` and return None (the
    caller's read returns no frame, so the capture thread stays responsive)."""
    wait = due - now()
    if wait > timeout:
        time.sleep(max(timeout, 0.0))
        return None
    if wait > 0:
        time.sleep(wait)
        return 0.0
    return -wait
