"""`OutputStage`: the generator's bursts → interpolated, upscaled bursts → the pacer.

The loop hands every burst to `submit` and goes back to generating. With `output_fps` and
`output_size` off (the defaults) a burst goes straight on to the pacer on the loop's thread,
as before. Otherwise the stage's own thread takes it: uploads the chunk's frames, runs the
interpolation (`interpolate`) and the upscaling (`upscale`) in one batch each on the stage's
own CUDA stream — beside the generator's work on its streams — and downloads the result for
the pacer. A burst waits only for the one before it; when the stage falls `MAX_WAITING` bursts
behind, the oldest waiting one is dropped (`dropped_output`), so latency cannot build up.

Order (`order="auto"`): with an upscaling network the frames are upscaled first and then
interpolated at the output size; with the plain Lanczos resize, interpolated first at the
generated size. The network is by far the dearer step (a 2x network costs many times one
IFNet in-between at the generated size, and still several times one at 1080p), so it should
see the fewest frames: the generated ones, not the in-betweens too; without it IFNet is the
dear step and works best small. `livevace bench output` measures both orders
(BENCHMARKS.md, docs/output.md).

Weights: RIFE's come from the catalogue (`livevace models pull rife_v4_25`), the upscaler's
are `upscale_model` (a catalogue key, a file, or `lanczos`). A missing or unreadable file, or
a network slower than `BUDGET_SHARE` of an output frame's period, falls back — to repeating
frames at the output rate, to a Lanczos resize — with one log line. So does a fault mid-show
(the GPU out of memory beside a large generator): that burst goes out as generated, and the
networks are dropped for the fallbacks.

Stats: `stage_output_ms` (a burst's time in the stage), `interpolation_latency_ms` (how much
later the newest generated frame goes out than it would without interpolation: under one
generated frame), counters `frames_interpolated`, `output_cuts`, `dropped_output`,
`output_errors`.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from collections import deque
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import cv2
import numpy as np
import torch
from torch import Tensor

from livevace.errors import UserError, describe
from livevace.frames import Frame
from livevace.models.rife import IFNet, load_ifnet
from livevace.output.interpolate import Interpolator, Schedule, Slot
from livevace.output.settings import OutputSettings
from livevace.output.upscale import LANCZOS, Network, Upscaler, load_network
from livevace.stats import Stats

log = logging.getLogger("livevace.output")

Order = Literal["auto", "interpolate_first", "upscale_first"]
MAX_WAITING = 3
BUDGET_SHARE = 0.25
"""The most of an output frame's period an upscaling network may take per frame."""
RIFE_KEY = "rife_v4_25"

Emit = Callable[[list[Frame]], None]
RifeLoader = Callable[[torch.device, torch.dtype], IFNet]
NetworkLoader = Callable[[str, torch.device, torch.dtype], Network]


def load_rife(device: torch.device, dtype: torch.dtype) -> IFNet:
    """IFNet with the catalogue's weights (ModelError naming the pull command if absent)."""
    from livevace.store import catalog

    return load_ifnet(catalog.require(RIFE_KEY)[RIFE_KEY]).to(device, dtype)


def load_upscaler(model: str, device: torch.device, dtype: torch.dtype) -> Network:
    """The network `upscale_model` names: a catalogue key or a file path."""
    from livevace.store import catalog

    path = catalog.require(model)[model] if model in catalog.BY_KEY else Path(model).expanduser()
    return load_network(path, device, dtype)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class OutputStage:
    """See the module doc. `emit` receives each finished burst (the pacer's `push`)."""

    def __init__(self, emit: Emit, stats: Stats | None = None, *,
                 device: torch.device | None = None, order: Order = "auto",
                 rife: RifeLoader = load_rife, upscaler: NetworkLoader = load_upscaler) -> None:
        self.emit = emit
        self.stats = stats or Stats()
        self.device = device or default_device()
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.order = order
        self._load_rife = rife
        self._load_upscaler = upscaler
        self.schedule = Schedule()
        self._interpolator: Interpolator | None = None
        self._upscaler: tuple[str, Upscaler] | None = None
        self._prev: Tensor | None = None
        self._params: Mapping[str, Any] = {}
        self._queue: deque[tuple[list[Frame], Mapping[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._cuda_stream: torch.cuda.Stream | None = None
        self._faults: set[str] = set()

    # --- the loop's side
    def submit(self, frames: list[Frame], params: Mapping[str, Any] | None = None) -> None:
        """Hand a burst on (never blocks); `params`: the call's registry snapshot (None: the
        last one, for slates)."""
        if not frames:
            return
        if params is not None:
            self._params = params
        settings = self.settings(frames[0])
        with self._cond:
            if not settings.active and not self._queue and not self._busy:
                self.schedule.reset()
                self._prev = None
                direct = True
            else:
                direct = False
                self._queue.append((frames, self._params))
                while len(self._queue) > MAX_WAITING:
                    self._queue.popleft()
                    self.stats.count("dropped_output")
                self._cond.notify()
        if direct:
            self.emit(frames)
        elif self._thread is None:
            self._start()

    def settings(self, frame: Frame, params: Mapping[str, Any] | None = None) -> OutputSettings:
        return OutputSettings.of(self._params if params is None else params, frame.width,
                                 frame.height)

    @property
    def stream(self) -> torch.cuda.Stream | None:
        """The stage's own CUDA stream (made at first use: a node that never turns the
        output path on never touches the GPU for it); None on a CPU."""
        if self._cuda_stream is None and self.device.type == "cuda":
            self._cuda_stream = torch.cuda.Stream(self.device)
        return self._cuda_stream

    @property
    def upscaling(self) -> str:
        """What upscales now (after any fallback), for logs and benchmarks."""
        return self._upscaler[1].describe if self._upscaler else "none"

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every submitted burst has been emitted; False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # --- the stage's thread
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="livevace-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                frames, params = self._queue.popleft()
                self._busy = True
            try:
                t0 = time.perf_counter()
                out = self.process(frames, params)
                self.stats.timing("output", (time.perf_counter() - t0) * 1e3)
            except Exception as exc:  # the show goes on: the frames as they came
                self._failed(exc)
                out = frames
            self.emit(out)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _failed(self, exc: Exception) -> None:
        """A fault mid-show (the GPU out of memory beside a large generator, say): the
        networks are dropped for repeats and Lanczos, which need next to no memory, so the
        fault does not come back every burst; said once per kind of fault."""
        self._interpolator = Interpolator(None)
        self._upscaler = (self._upscaler[0], Upscaler(None)) if self._upscaler else None
        self._prev = None
        key = f"{type(exc).__name__}: {exc}"
        if key not in self._faults:
            self._faults.add(key)
            log.error("output stage failed (%s); this burst goes out as generated, and from "
                      "now on frames are repeated and resized by Lanczos", describe(exc))
        self.stats.count("output_errors")

    def process(self, frames: list[Frame], params: Mapping[str, Any]) -> list[Frame]:
        """One burst through interpolation and upscaling (on the stage's stream)."""
        settings = self.settings(frames[0], params)
        if not settings.active:
            self.schedule.reset()
            self._prev = None
            return frames
        size = (frames[0].height, frames[0].width)
        upscaler = self._upscaling(settings, size) if settings.size else None
        if self._on_host(settings, upscaler):
            return self._host(frames, settings)
        stream = self.stream
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            images = self._upload(frames)
            first = upscaler is not None and self._order(upscaler) == "upscale_first"
            if upscaler is not None and first:
                images = upscaler(images, settings.size)  # type: ignore[arg-type]
            metas: list[Frame] = frames
            if settings.rate:
                images, metas = self._interpolate(frames, images, settings.rate)
            else:
                self.schedule.reset()
                self._prev = None
            if upscaler is not None and not first:
                images = upscaler(images, settings.size)  # type: ignore[arg-type]
            pixels = _download(images)
        return [Frame(p, m.t_capture, m.index, m.meta) for p, m in zip(pixels, metas)]

    def _upload(self, frames: list[Frame]) -> Tensor:
        batch = torch.from_numpy(np.stack([f.image for f in frames]))
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        return batch.permute(0, 3, 1, 2).to(self.dtype) / 255.0

    def _interpolate(self, frames: list[Frame], images: Tensor, rate: float
                     ) -> tuple[Tensor, list[Frame]]:
        if self._prev is None or self._prev.shape[1:] != images.shape[1:]:
            self.schedule.reset()  # nothing to morph from (a size change is a cut too)
            self._prev = images[:1]
        slots = self.schedule.plan(frames, rate)
        out = self._interpolation().render(torch.cat((self._prev, images)), slots)
        self._prev = images[-1:]
        self._report(slots)
        return out, [s.frame for s in slots]

    def _on_host(self, settings: OutputSettings, upscaler: Upscaler | None) -> bool:
        """No network to run: repeats and a plain resize need no GPU round trip (and on a
        CPU, OpenCV's Lanczos is far cheaper than the matrix form)."""
        no_net = not settings.rate or self._interpolation().net is None
        plain = upscaler is None or (upscaler.network is None and self.device.type == "cpu")
        return no_net and plain

    def _host(self, frames: list[Frame], settings: OutputSettings) -> list[Frame]:
        """Repeats to the output rate (each slot shows its own picture) and OpenCV's Lanczos
        resize, on the host frames."""
        out = frames
        if settings.rate:
            before, self._prev = self.schedule.prev, None  # the GPU path starts afresh after
            pictures = [(before or frames[0]).image, *(f.image for f in frames)]
            slots = self.schedule.plan(frames, settings.rate)
            self._report(slots)
            out = [Frame(pictures[s.a], s.frame.t_capture, s.frame.index,
                         {"repeat": True} if s.between else s.frame.meta) for s in slots]
        if settings.size is None:
            return out
        return [Frame(cv2.resize(f.image, settings.size, interpolation=cv2.INTER_LANCZOS4),
                      f.t_capture, f.index, f.meta) for f in out]

    def _report(self, slots: list[Slot]) -> None:
        made = sum(s.between for s in slots)
        if made and self._interpolation().net is not None:
            self.stats.count("frames_interpolated", made)
        if any(s.frame.meta.get("held") for s in slots):
            self.stats.count("output_cuts")
        self.stats.gauge("interpolation_latency_ms", self.schedule.latency_ms)

    def _interpolation(self) -> Interpolator:
        if self._interpolator is None:
            try:
                net: IFNet | None = self._load_rife(self.device, self.dtype)
            except UserError as exc:
                log.warning("motion interpolation off, frames are repeated to the output rate: "
                            "%s", exc)
                net = None
            self._interpolator = Interpolator(net)
        return self._interpolator

    def _order(self, upscaler: Upscaler) -> Order:
        if self.order != "auto":
            return self.order
        return "upscale_first" if upscaler.network is not None else "interpolate_first"

    def _upscaling(self, settings: OutputSettings, size: tuple[int, int]) -> Upscaler:
        model = settings.model
        if self._upscaler is None or self._upscaler[0] != model:
            self._upscaler = (model, Upscaler(self._network(model, settings, size)))
            log.info("upscaling to %dx%d: %s", *settings.size or (0, 0),
                     self._upscaler[1].describe)
        return self._upscaler[1]

    def _network(self, model: str, settings: OutputSettings, size: tuple[int, int]
                 ) -> Network | None:
        if model == LANCZOS:
            return None
        try:
            network = self._load_upscaler(model, self.device, self.dtype)
        except UserError as exc:
            log.warning("upscaling by Lanczos resize: %s", exc)
            return None
        rate = settings.rate or 30.0
        budget = BUDGET_SHARE * 1e3 / rate
        if self.device.type == "cuda":
            ms = Upscaler(network).per_frame_ms(size[0], size[1], self.device, self.dtype)
            if ms > budget:
                log.warning("upscaling by Lanczos resize: %s takes %.1f ms a frame, over the "
                            "%.1f ms budget at %g fps", network.name, ms, budget, rate)
                return None
        return network


def _download(images: Tensor) -> np.ndarray:
    pixels = (images.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()
