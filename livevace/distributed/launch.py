"""Starting, watching and stopping the ranks of one node (rank 0 is the node itself).

    ranks = Ranks(devices("2"), split="ulysses")   # or devices("0,2"); CPUs: gloo ranks
    ranks.start()                                  # spawns ranks 1…P-1, joins the group
    sampler = ranks.open_stream(recipe, model, h, w, chunk, steps, seed)   # see `facade`
    ranks.close()                                  # every rank gone, no orphans

Each worker is a spawned process with the node's environment (NVLink multicast off:
`MULTICAST_OFF`) on its own GPU; on a machine without CUDA the ranks are CPU processes
talking gloo (tests, trying the node). A worker ignores Ctrl-C (the terminal sends it to the
whole process group; rank 0 decides), exits when rank 0 disappears (a watchdog on its parent
process), and reports its own error on a queue before it exits, so rank 0's log names the
rank, the device and the error. The device group's timeout turns a hung collective into an
error on rank 0 (see `facade` for what follows: the node goes on by itself).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import socket
from datetime import timedelta

import torch
import torch.distributed as dist

from livevace.distributed.channel import Channel
from livevace.distributed.worker import STEP_TIMEOUT, WorkerArgs, join_group, main
from livevace.errors import UserError

log = logging.getLogger("livevace.distributed")

MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                 "NVSHMEM_DISABLE_NVLS": "1"}
"""NVLink multicast stays off in every rank (rank 0 sets it before anything starts)."""

def devices(spec: str) -> list[torch.device]:
    """`--gpus`: "N" (GPUs 0…N-1; N gloo CPU ranks where there is no CUDA) or "0,2"."""
    try:
        ids = [int(p) for p in spec.split(",")] if "," in spec else None
        count = int(spec) if ids is None else len(ids)
    except ValueError:
        raise UserError(f"--gpus {spec!r}: give a count (2) or GPU numbers (0,2)") from None
    if count < 1 or (ids is not None and len(set(ids)) != len(ids)):
        raise UserError(f"--gpus {spec!r}: give a count ≥ 1 or distinct GPU numbers")
    if not torch.cuda.is_available():
        if ids is not None:
            raise UserError(f"--gpus {spec}: no CUDA GPU here (a count runs CPU ranks)")
        return [torch.device("cpu")] * count
    ids = list(range(count)) if ids is None else ids
    have = torch.cuda.device_count()
    if max(ids) >= have:
        raise UserError(f"--gpus {spec}: this machine has {have} GPU(s)")
    return [torch.device("cuda", i) for i in ids]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Ranks:
    """Rank 0's handle on the node's processes (see module doc)."""

    def __init__(self, devices: list[torch.device], split: str = "ulysses",
                 timeout: timedelta = STEP_TIMEOUT) -> None:
        self.devices, self.split, self.timeout = devices, split, timeout
        self.workers: list[mp.process.BaseProcess] = []
        self.errors: mp.Queue | None = None
        self.channel = None
        self.up = False

    @property
    def world(self) -> int:
        return len(self.devices)

    def start(self) -> None:

        os.environ.update(MULTICAST_OFF)
        ctx = mp.get_context("spawn")
        self.errors = ctx.Queue()
        port = free_port()
        for rank in range(1, self.world):
            args = WorkerArgs(rank, self.world, port, str(self.devices[rank]), self.split,
                              torch.get_num_threads(), os.getpid(), self.timeout)
            proc = ctx.Process(target=main, args=(args, self.errors), daemon=True,
                               name=f"livevace-rank{rank}")
            proc.start()
            self.workers.append(proc)
        join_group(0, self.world, port, self.devices[0], self.timeout)
        self.channel = Channel(self.devices[0])
        self.up = True
        log.info("%d ranks on %s, split %s", self.world,
                 ", ".join(str(d) for d in self.devices), self.split)

    def describe(self, rank: int) -> str:
        return f"rank {rank} ({self.devices[rank]})"

    def lost(self, timed_out: bool = False) -> list[str]:
        """What went wrong on the other ranks: their own reports, then silent exits, then
        (`timed_out`: a collective waited in vain) every rank still alive, as not answering."""
        said: dict[int, str] = {}
        while self.errors is not None:
            try:
                rank, error = self.errors.get(timeout=1.0)
            except queue.Empty:
                break
            said[rank] = error
        for rank, proc in enumerate(self.workers, start=1):
            if rank not in said and not proc.is_alive():
                said[rank] = f"exited with code {proc.exitcode}"
            elif rank not in said and timed_out:
                said[rank] = f"did not answer within {self.timeout.total_seconds():g} s"
        return [f"{self.describe(r)}: {e}" for r, e in sorted(said.items())]

    def close(self, polite: bool = True) -> None:
        """Stop every rank: a stop call if the group still works (`polite`), then SIGTERM,
        then SIGKILL for any that lingers; leave the group."""
        if self.up and polite and self.channel is not None:
            try:
                self.channel.send(("node", "stop", (), {}))
            except Exception:  # a broken group: the signals below do it
                pass
        for proc in self.workers:
            proc.join(timeout=5 if polite else 0.1)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.workers = []
        if dist.is_initialized():
            dist.destroy_process_group()
        if self.errors is not None:
            self.errors.close()
            self.errors.join_thread()
            self.errors = None
        self.up = False
