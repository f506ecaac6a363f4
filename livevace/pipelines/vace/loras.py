"""The four live LoRA slots (`lora_1` … `lora_4`, `lora_N_scale`), faded chunk by chunk into
the DiT's weights.

At each chunk boundary, on the pipeline's thread, `LoraSlots.update` moves every slot one step
toward what the parameters ask and merges the result in place (`lora_live`): a scale change
glides over `transition_chunks` chunks (0: at once), a file swapped in a slot crossfades from
the old file to the new one over the same chunks; the beat quantisation happens before, where
the change arrives (the registry marks these parameters `transition`). A file is read on a
worker thread while the old one keeps playing; nothing here touches the KV cache (the cached
frames keep what they were made with, as with a prompt fade). A file that cannot be used (no
such file, truncated, unknown layout, another base) is said in one line and the slot keeps what
it was playing; the other slots go on.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from livevace.errors import ModelError, UserError
from livevace.models.wan.lora import SUFFIXES, read_lora
from livevace.models.wan.lora_live import LiveLoras, Ready
from livevace.store.paths import lora_dirs

log = logging.getLogger("livevace.lora")

SLOTS = 4

Key = tuple[int, Path]
"""A file in a slot: the same file in two slots merges twice, independently."""


def find_lora(ref: str, folders: Sequence[Path] | None = None) -> Path:
    """The file a slot names: a path, or a name (with or without its suffix) in the LoRA
    folders (`store.paths.lora_dirs`). ModelError saying where it looked."""
    path = Path(ref).expanduser()
    if path.is_file() or path.is_absolute() or len(path.parts) > 1:
        return path
    folders = lora_dirs() if folders is None else folders
    for folder in folders:
        for name in (ref, *(ref + s for s in SUFFIXES)):
            if (folder / name).is_file():
                return folder / name
    raise ModelError(f"no LoRA named {ref!r} in {', '.join(str(f) for f in folders)}")


@dataclass
class _Slot:
    """One slot: the file and scale asked for, what is merged, and the fade between."""

    asked: tuple[str, float] = ("", 0.0)
    playing: Key | None = None
    start: dict[Key, float] = field(default_factory=dict)
    end: dict[Key, float] = field(default_factory=dict)
    step: int = 0
    steps: int = 0
    loading: tuple[str, Future[tuple[Path, Ready]]] | None = None

    def now(self) -> dict[Key, float]:
        """The scales this slot's files merge at this chunk."""
        if self.steps == 0 or self.step >= self.steps:
            return dict(self.end)
        t = self.step / self.steps
        return {k: self.start.get(k, 0.0) * (1 - t) + self.end.get(k, 0.0) * t
                for k in {*self.start, *self.end}}

    def fade_to(self, key: Key | None, scale: float, chunks: int) -> None:
        self.start = self.now()
        self.end = {} if key is None else {key: scale}
        self.playing = key
        self.step, self.steps = 0, chunks


class LoraSlots:
    """The slots of one DiT (see module doc); `folders` default to `lora_dirs()`."""

    def __init__(self, live: LiveLoras, folders: Sequence[Path] | None = None) -> None:
        self.live = live
        self.folders = folders
        self.slots = [_Slot() for _ in range(SLOTS)]
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="lora")

    def update(self, asked: Sequence[tuple[str, float]], chunks: int, wait: bool = False) -> int:
        """One chunk boundary: follow what the parameters ask (file, scale per slot) with a
        fade of `chunks`; merge. `wait`: a file being read is waited for (tests, the first
        chunk). Returns the parameters written."""
        for i, (slot, (ref, scale)) in enumerate(zip(self.slots, asked)):
            self._follow(i, slot, ref, scale, chunks, wait)
            slot.step += 1
        scales = {k: s for slot in self.slots for k, s in slot.now().items()}
        written = self.live.apply(scales)
        kept = {*scales, *(slot.playing for slot in self.slots)}
        for key in [k for k in self.live.parts if k not in kept]:
            self.live.remove(key)  # at 0 already: forgets the file
        return written

    def _follow(self, i: int, slot: _Slot, ref: str, scale: float, chunks: int,
                wait: bool) -> None:
        if (ref, scale) != slot.asked:
            if ref != slot.asked[0]:
                slot.loading = self._load(ref) if ref else None
                if not ref:
                    slot.fade_to(None, 0.0, chunks)
            elif slot.loading is None and slot.playing is not None:
                slot.fade_to(slot.playing, scale, chunks)
            slot.asked = (ref, scale)
        if slot.loading is not None and (wait or slot.loading[1].done()):
            future = slot.loading[1]
            slot.loading = None
            try:
                path, ready = future.result()
            except Exception as e:  # (any reason: the show goes on with the other slots)
                why = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
                log.error("lora_%d: %s; the slot keeps what it was playing", i + 1, why)
                return
            key = (i, path)
            if key not in self.live.parts:
                self.live.add(key, ready)
            slot.fade_to(key, slot.asked[1], chunks)

    def _load(self, ref: str) -> tuple[str, Future[tuple[Path, Ready]]]:
        def read() -> tuple[Path, Ready]:
            path = find_lora(ref, self.folders)
            return path, self.live.prepare(read_lora(path))

        return ref, self._reader.submit(read)

    def close(self) -> None:
        self._reader.shutdown(wait=False)
