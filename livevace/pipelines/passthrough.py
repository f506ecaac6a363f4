"""The input, unchanged: proves the path source → node → host before any model loads, and
is the baseline the node benchmark measures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livevace.frames import Frame
from livevace.params import ParamStore

if TYPE_CHECKING:
    from livevace.config import RunConfig


class Passthrough:
    name = "passthrough"
    frames_per_call = 1

    def __call__(self, frames: list[Frame], params: dict[str, Any]) -> list[Frame]:
        return frames

    def close(self) -> None:
        pass


def create(config: "RunConfig", store: ParamStore) -> Passthrough:
    return Passthrough()
