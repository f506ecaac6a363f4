"""A switch that is on only inside `opened()`: what must never happen live (compiling an
encoder shape, capturing a CUDA graph) is allowed only while the node prepares."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class PrepareOnly:
    def __init__(self) -> None:
        self.open = False

    @contextmanager
    def opened(self) -> Iterator[None]:
        self.open = True
        try:
            yield
        finally:
            self.open = False
