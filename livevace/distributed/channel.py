"""Rank 0's calls, replayed on every other rank: a header over a gloo group, tensors over the
device group (NCCL on GPUs).

The header travels on its own group whose timeout is long: a worker waits there while the
node is idle (paused, between shows) and must not take that for a failure. The forwards'
collectives run on the device group, whose short timeout turns a hung rank into an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

IDLE_TIMEOUT = timedelta(days=7)
"""How long a worker waits for rank 0's next call."""


@dataclass(frozen=True)
class TensorSlot:
    """Where a tensor argument was: it follows the header as a broadcast."""

    shape: tuple[int, ...]
    dtype: torch.dtype


Call = tuple[str, str, tuple[Any, ...], dict[str, Any]]
"""(target, method, args, kwargs)."""


class Channel:
    """Broadcasts calls from rank 0 (`send`) to every other rank (`receive`)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.headers = dist.new_group(backend="gloo", timeout=IDLE_TIMEOUT)

    def send(self, call: Call) -> None:
        target, name, args, kwargs = call
        tensors: list[torch.Tensor] = []

        def slot(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                tensors.append(value)
                return TensorSlot(tuple(value.shape), value.dtype)
            return value

        header = (target, name, tuple(slot(a) for a in args),
                  {k: slot(v) for k, v in kwargs.items()})
        dist.broadcast_object_list([header], src=0, group=self.headers)
        for t in tensors:
            dist.broadcast(t.to(self.device).contiguous(), src=0)

    def receive(self) -> Call:
        box: list[Any] = [None]
        dist.broadcast_object_list(box, src=0, group=self.headers)
        target, name, args, kwargs = box[0]

        def fill(value: Any) -> Any:
            if isinstance(value, TensorSlot):
                t = torch.empty(value.shape, dtype=value.dtype, device=self.device)
                dist.broadcast(t, src=0)
                return t
            return value

        args = tuple(fill(a) for a in args)  # in the order they were sent
        return target, name, args, {k: fill(v) for k, v in kwargs.items()}
