"""A rank other than 0: joins the group, receives the DiT, then replays rank 0's calls on a
sampler of its own until told to stop (see `facade`)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Hashable

import torch
import torch.distributed as dist

from livevace.distributed.channel import Channel
from livevace.distributed.replica import receive_model
from livevace.distributed.splits import Split, make_split
from livevace.models.wan import zoo
from livevace.models.wan.dit import WanDiT
from livevace.models.wan.lora import read_lora
from livevace.models.wan.lora_live import LiveLoras
from livevace.models.wan.recipe import Recipe
from livevace.models.wan.sampler import StreamSampler

STEP_TIMEOUT = timedelta(seconds=120)
"""A forward's collectives wait this long for a peer (first compiles included) before rank 0
takes the peer for lost."""


@dataclass(frozen=True)
class WorkerArgs:
    """What a spawned rank is told (picklable: it crosses the spawn)."""

    rank: int
    world: int
    port: int
    device: str
    split: str
    threads: int
    parent: int
    timeout: timedelta


def join_group(rank: int, world: int, port: int, device: torch.device,
               timeout: timedelta = STEP_TIMEOUT) -> None:
    """Join the node's group through rank 0's TCP store: NCCL on a GPU, gloo on the CPU."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timeout)


def main(args: WorkerArgs, errors: mp.Queue) -> None:
    """The spawned process's entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        join_group(args.rank, args.world, args.port, device, args.timeout)
        Replica(args, device).serve()
    except BaseException as err:  # said to rank 0, which carries on without this rank
        errors.put((args.rank, f"{type(err).__name__}: {err}"))
        errors.close()
        errors.join_thread()
        traceback.print_exc()
        os._exit(1)


def _watch_parent(parent: int) -> None:
    """Rank 0 gone (killed): go too, whatever this rank is waiting for."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


class Replica:
    """This rank's model, split and sampler, driven by rank 0's calls."""

    def __init__(self, args: WorkerArgs, device: torch.device) -> None:
        self.args, self.device = args, device
        self.channel = Channel(device)
        self.model: WanDiT | None = None
        self.split: Split | None = None
        self.sampler: StreamSampler | None = None
        self.loras: LiveLoras | None = None

    @torch.no_grad()
    def serve(self) -> None:
        while True:
            target, name, args, kwargs = self.channel.receive()
            if target == "node":
                if name == "stop":
                    return
                getattr(self, name)(*args, **kwargs)
                continue
            assert self.sampler is not None
            obj: Any = self.sampler if target == "sampler" else self.sampler.cache
            if name == "__setattr__":
                setattr(obj, *args)
            else:
                getattr(obj, name)(*args, **kwargs)

    def model_arrives(self) -> None:
        self.model = receive_model(self.device, self.channel.headers)
        self.split = make_split(self.args.split, self.model, self.args.world)
        self.model.split = self.split
        self.loras = LiveLoras(self.model)

    def open(self, recipe: Recipe, height: int, width: int, chunk: int | None,
             steps: tuple[int, ...] | None, seed: int) -> None:
        assert self.model is not None and self.split is not None
        self.sampler = zoo.open_stream(recipe, self.model, height, width, chunk, steps, seed)
        self.split.adapt(self.sampler.cache)

    def lora_add(self, key: Hashable, path: str) -> None:
        """The file rank 0 added under `key`, read here (the same file: the same merge)."""
        assert self.loras is not None
        self.loras.add(key, read_lora(Path(path)))

    def lora_apply(self, scales: dict[Hashable, float]) -> None:
        assert self.loras is not None
        self.loras.apply(scales)

    def lora_remove(self, key: Hashable) -> None:
        assert self.loras is not None
        self.loras.remove(key)
