"""`OutputStage`: the generator's bursts → interpolated, upscaled bursts → the pacer.

The loop hands every burst to `submit`. With `output_fps` and `output_size` off (the
defaults) a burst goes straight on to the pacer on the loop's thread, as before. Otherwise the
stage uploads the chunk's frames, runs the interpolation (`interpolate`) and the upscaling
(`upscale`) in one batch each on its own CUDA stream, and downloads the result for the pacer.
Repeated slots (no in-between made) share their picture, resized once.

Where (`inline`):
- On a GPU, in line: the upload and the kernels on the loop's thread, between the
  generator's calls, which wait for the kernels to end; the copy of the result to the host
  (a copy engine's work, no SM's) and the frames made of it on the stage's own thread,
  beside the next call (`_Made`), in the order the bursts came. The generator keeps the GPU
  busy with kernels that each fill every SM until they end, so a stage whose kernels run
  beside it waits behind one of them for each of its own hundreds of small kernels,
  whatever its stream's priority: on one H100 beside 832×480 VACE, the 2x network took
  twelve times its time alone, and a burst's in-betweens took seconds instead of
  milliseconds (BENCHMARKS.md, "Output path"). In line, the stage costs the generator its
  kernels' time and the upload, no more, and that time is what the budget holds it to.
- Elsewhere (a CPU), on the stage's own thread beside the generator. A burst waits only for
  the one in work: a newer one replaces a waiting one (`dropped_output`), so neither latency
  nor memory builds up however slow the stage is.

Size: in a node every frame leaves at the size the sinks opened at (`size`); a live
`output_size` they cannot take is said once and not made (making it only for each sink to
shrink it back would cost the most work for nothing).

Budget: the stage times each burst against the time its frames play (n generated frames:
n / fps); a burst that loaded a network or met a new shape (its kernels tuned, its batches
sized) is not held to it. `OVERRUNS` bursts in a row over a share of it (`INLINE_SHARE` in
line, where the stage's time is the generator's; `LOAD_SHARE` on its own thread) take it one
step down, with one log line each (`STEPS`): the upscaling network off (Lanczos),
interpolation off (repeats), a linear resize on the host, a nearest-pixel one.
`output_degraded` in the stats is the step (0: the full path); a change of `output_size`
(without sinks) or `upscale_model` tries the full path again, a change of `output_fps` does
not. A change of path (a step, another network or output size) is no cut: the in-between
across it is made from the last generated frame remade along the new path (`_bridge`).

Order (`order="auto"`): with an upscaling network the frames are upscaled first and then
interpolated at the output size; with the plain Lanczos resize, interpolated first at the
generated size. The network is by far the dearer step (a 2x network costs many times one
IFNet in-between at the generated size, and still several times one at 1080p), so it should
see the fewest frames: the generated ones, not the in-betweens too; without it IFNet is the
dear step and works best small. `livevace bench output` measures both orders
(BENCHMARKS.md, docs/output.md).

Prepared (`prepare`, which the node calls before its loop): the networks the parameters
ask are loaded before the show, and on a GPU compiled and captured as CUDA graphs
(`graphed`) for the bursts the pipeline makes: the upscaler for them, IFNet's features and
in-betweens at the generated size (its size once the network steps down, and always with
Lanczos). The upscaler is then measured against its budget as a graph. Anything met later
(a live change of `upscale_model`, an unforeseen shape) runs the plain network.

Weights: RIFE's come from the catalogue (`livevace models pull rife_v4_25`), the upscaler's
are `upscale_model` (a catalogue key, a file, or `lanczos`). A missing or unreadable file, or
a network slower than `BUDGET_SHARE` of an output frame's period, falls back — to repeating
frames at the output rate, to a Lanczos resize — with one log line. So does a fault mid-show
(the GPU out of memory beside a large generator): that burst goes out as generated, and the
networks are dropped for the fallbacks.

Stats: `stage_output_ms` (a burst's time in the stage; with IFNet, its parts too:
`stage_output_upload_ms`, `stage_output_render_ms`, `stage_output_download_ms`),
`output_slots` (output frames the last burst planned), `output_bypassed` (bursts sent round
a stuck stage, `STALL`), `interpolation_latency_ms` (how much later the newest generated
frame goes out than it would without interpolation: under one generated frame),
`output_degraded`, `output_prepare_s` (what `prepare` took), counters
`frames_interpolated`, `output_cuts`, `dropped_output`, `output_errors`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import nullcontext
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, NamedTuple, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from livevace.errors import UserError, describe
from livevace.frames import Frame
from livevace.models.rife import MULTIPLE, PACKED, IFNet, load_ifnet
from livevace.output.graphed import Graphed
from livevace.output.interpolate import BATCH_STEP, Interpolator, Schedule, Slot
from livevace.output.settings import OutputSettings
from livevace.output.upscale import LANCZOS, Network, Upscaler, load_network
from livevace.stats import Stats

log = logging.getLogger("livevace.output")

Order = Literal["auto", "interpolate_first", "upscale_first"]
MAX_WAITING = 1
"""Bursts waiting for the stage; a newer one replaces a stale one (newest wins)."""
BUDGET_SHARE = 0.25
"""The most of an output frame's period an upscaling network may take per frame."""
LOAD_SHARE = 0.8
"""The most of a burst's play time the stage on its own thread may spend on it (headroom for
jitter)."""
INLINE_SHARE = 0.25
"""The most of a burst's play time the stage in line may spend on it: the generator's time."""
OVERRUNS = 3
"""Bursts over that in a row before the stage steps down: one late burst is no trend."""
STALL = 4.0
"""How many bursts' play time one burst may hold the stage before the next bursts go round
it (resized on the host, the pacer repeating to the output rate), so a stuck stage never
starves the show; the stuck burst, once done, is dropped (it is older than what went out)."""
STREAM_PRIORITY = -1
"""The stage's CUDA stream priority (lower is sooner; the generator's streams have 0)."""


class Level(IntEnum):
    """How far the stage has stepped down to keep up (`output_degraded` in the stats). The
    upscaling network goes first: the rate the venue asked is kept in motion, and a Lanczos
    resize is the issue's own fallback for the size. Dropping the network also saves the
    most: with it the stage upscales first and so interpolates at the output size, where an
    in-between has several times the pixels of one at the generated size."""

    FULL = 0
    LANCZOS = 1
    REPEATS = 2
    LINEAR = 3
    NEAREST = 4


STEPS = {Level.LANCZOS: "the upscaling network off, a Lanczos resize",
         Level.REPEATS: "motion interpolation off, frames are repeated",
         Level.LINEAR: "a linear resize instead of Lanczos",
         Level.NEAREST: "the nearest-pixel resize, the cheapest"}
"""What each step down does, as its log line says it."""
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
                 size: tuple[int, int] | None = None, fps: float = 30.0,
                 device: torch.device | None = None, order: Order = "auto",
                 rife: RifeLoader = load_rife, upscaler: NetworkLoader = load_upscaler,
                 inline: bool | None = None) -> None:
        self.emit = emit
        self.stats = stats or Stats()
        self.size = size
        """(width, height) the sinks opened at: every frame leaves at it (None: at
        `output_size`, for a stage without sinks)."""
        self.fps = fps
        """The generated frame rate: a burst of n frames plays n / fps seconds."""
        self.device = device or default_device()
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.order = order
        self.inline = self.device.type == "cuda" if inline is None else inline
        """Bursts are made on the caller's thread (module doc: "Where")."""
        self._load_rife = rife
        self._load_upscaler = upscaler
        self.schedule = Schedule()
        self._interpolator: Interpolator | None = None
        self._upscaler: tuple[str, Upscaler] | None = None
        self._prev: Tensor | None = None
        self._last: np.ndarray | None = None
        """The generated frame `_prev` was made from (to remake it along another path)."""
        self._params: Mapping[str, Any] = {}
        self._queue: deque[tuple[list[Frame], Mapping[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._since = 0.0
        """When the burst in work was taken (monotonic seconds)."""
        self._bypassed = False
        """Whether bursts went round the one in work (`STALL`)."""
        self._warming = False
        """Whether the burst in work loaded a network or met a new shape (its time is not
        held to the budget)."""
        self._shapes: set[tuple[Any, ...]] = set()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._finisher = ThreadPoolExecutor(1, "livevace-output") if self.inline else None
        """In line: makes each burst's frames once its copy to the host is done, and emits
        them in order (module doc: "Where")."""
        self._finishing: Future[None] | None = None
        self._cuda_stream: torch.cuda.Stream | None = None
        self._faults: set[str] = set()
        self.level = Level.FULL
        self._overruns = 0
        self._current: OutputSettings | None = None
        self._asked: tuple[int, int] | None = None
        self._learning: tuple[tuple[int, ...], tuple[int, int], float] | None = None
        """While `prepare` runs: (burst sizes, largest first; generated size; output rate)."""
        self.stats.gauge("output_degraded", 0)

    # --- the loop's side
    def submit(self, frames: list[Frame], params: Mapping[str, Any] | None = None) -> None:
        """Hand a burst on; `params`: the call's registry snapshot (None: the last one, for
        slates). In line it returns once the burst's kernels are done, otherwise at once."""
        if not frames:
            return
        if params is not None:
            self._params = params
        settings = self.settings(frames[0])
        self._say_size(frames[0])
        if self.inline:
            if settings.active:
                self._finish_later(self._work(frames, self._params, finish=False))
            else:  # both off: straight on (in order), nothing to morph from afterwards
                self.schedule.reset()
                self._prev = None
                self._finish_later(frames)
            return
        with self._cond:
            stalled = settings.active and self._stalled(len(frames))
            if not settings.active and not self._queue and not self._busy:
                self.schedule.reset()
                self._prev = None
                direct = True
            elif stalled:
                direct = True
                self._bypassed = True
                while self._queue:
                    self._queue.popleft()
                    self.stats.count("dropped_output")
            else:
                direct = False
                self._queue.append((frames, self._params))
                while len(self._queue) > MAX_WAITING:
                    self._queue.popleft()
                    self.stats.count("dropped_output")
                self._cond.notify()
        if stalled:
            frames = self._round(frames, settings)
        if direct:
            self.emit(frames)
        elif self._thread is None:
            self._start()

    def _stalled(self, generated: int) -> bool:
        """Whether the burst in work has held the stage over `STALL` bursts' play time (said
        once per stall); call with the lock held."""
        held = time.monotonic() - self._since if self._busy else 0.0
        if held <= STALL * generated / self.fps:
            return False
        if not self._bypassed:
            log.warning("output stage stuck on one burst for %.1f s: bursts go round it "
                        "(resized on the host, repeated to the output rate) until it is done",
                        held)
        self.stats.count("output_bypassed")
        return True

    def _round(self, frames: list[Frame], settings: OutputSettings) -> list[Frame]:
        """A burst sent round a stuck stage: at the output size by a linear resize on the
        host; the pacer repeats frames to the output rate."""
        if settings.size is None:
            return frames
        return [Frame(cv2.resize(f.image, settings.size, interpolation=cv2.INTER_LINEAR),
                      f.t_capture, f.index, f.meta) for f in frames]

    def settings(self, frame: Frame, params: Mapping[str, Any] | None = None) -> OutputSettings:
        """What the stage does to bursts like `frame`: the parameters' rate and model, at the
        size the sinks opened at where it knows it."""
        asked = OutputSettings.of(self._params if params is None else params, frame.width,
                                  frame.height)
        if self.size is None:
            return asked
        return replace(asked, size=None if self.size == (frame.width, frame.height)
                       else self.size)

    @property
    def stream(self) -> torch.cuda.Stream | None:
        """The stage's own CUDA stream (made at first use: a node that never turns the
        output path on never touches the GPU for it); None on a CPU. Its priority is above
        the generator's: the stage's few small kernels must not queue behind a step's
        long ones, while the generator loses only the stage's own GPU time."""
        if self._cuda_stream is None and self.device.type == "cuda":
            self._cuda_stream = torch.cuda.Stream(self.device, priority=STREAM_PRIORITY)
        return self._cuda_stream

    @property
    def upscaling(self) -> str:
        """What upscales now (after any fallback), for logs and benchmarks."""
        return self._upscaler[1].describe if self._upscaler else "none"

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._finisher is not None:
            self._finisher.shutdown(wait=True)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every submitted burst has been emitted; False on timeout."""
        end = time.monotonic() + timeout
        if self._finishing is not None:
            try:
                self._finishing.result(timeout)
            except FutureTimeout:
                return False
        with self._cond:
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def prepare(self, bursts: Sequence[int], size: tuple[int, int],
                params: Mapping[str, Any]) -> float:
        """Before the show, with `output_fps` or `output_size` on: load the networks of
        `params` and compile them into CUDA graphs for bursts of `bursts` generated frames at
        `size` (width, height), the shapes a steady show meets (`graphed`); on a CPU, load
        only. Seconds spent (0 with the path off)."""
        frame = Frame(np.zeros((size[1], size[0], 3), np.uint8), 0.0, 0)
        settings = self.settings(frame, params)
        if not settings.active:
            return 0.0
        start = time.perf_counter()
        if self.device.type == "cuda":
            log.info("preparing the output path: its networks compiled for bursts of %s frames "
                     "(the first time about a minute; later runs reuse the compile cache)",
                     " and ".join(map(str, sorted(set(bursts)))))
        self._params = params
        self._learning = (tuple(sorted(set(bursts), reverse=True)), size,
                          settings.rate or self.fps)
        try:
            with self._on_stream():
                self._follow(settings)
                if settings.size:
                    self._upscaling(settings, (size[1], size[0]))
                if settings.rate:
                    self._interpolation()
        except Exception as exc:  # noqa: BLE001 - the show goes on with the fallbacks
            self._failed(exc)
        finally:
            self._learning = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.stats.gauge("output_prepare_s", seconds)
        return seconds

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
                self._busy, self._since, self._bypassed = True, time.monotonic(), False
            out = self._work(frames, params)
            with self._cond:
                late = self._bypassed  # newer bursts went round it: too old to show now
            if late:
                self.stats.count("dropped_output")
            else:
                self.emit(out)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _finish_later(self, made: "list[Frame] | _Made") -> None:
        """In line: the burst's frames made and emitted on the finisher, after those before."""
        assert self._finisher is not None
        if not self._stopped:  # a loop that outlived `stop` (a hung call) sends nothing more
            self._finishing = self._finisher.submit(self._finish_and_emit, made)

    def _finish_and_emit(self, made: "list[Frame] | _Made") -> None:
        try:
            frames = made if isinstance(made, list) else made.frames(self.stats)
        except Exception as exc:  # a failed copy: the burst is lost, the show goes on
            self._failed(exc)
            return
        self.emit(frames)

    def _work(self, frames: list[Frame], params: Mapping[str, Any], finish: bool = True
              ) -> "list[Frame] | _Made":
        """One burst made, timed and held to the budget; the frames as they came on a fault
        (the show goes on). With `finish` off, the burst's copy to the host may still be
        under way (`_Made`): its time is not the generator's."""
        try:
            t0 = time.perf_counter()
            self._warming = False
            out = self._process(frames, params) if not finish else self.process(frames, params)
            ms = (time.perf_counter() - t0) * 1e3
            self.stats.timing("output", ms)
            if not self._warming:  # a load or a first shape is no trend
                self._budget(ms, len(frames))
            return out
        except Exception as exc:
            self._failed(exc)
            return frames

    def _on_stream(self) -> Any:
        """All the stage's GPU work on its own stream, loading and measuring included: none
        of it on the default stream, where it would wait for the generator's work."""
        stream = self.stream
        return torch.cuda.stream(stream) if stream is not None else nullcontext()

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
        """One burst through interpolation and upscaling, at the stage's present level."""
        made = self._process(frames, params)
        return made if isinstance(made, list) else made.frames(self.stats)

    def _process(self, frames: list[Frame], params: Mapping[str, Any]
                 ) -> "list[Frame] | _Made":
        with self._on_stream():
            return self._process_on_stream(frames, params)

    def _process_on_stream(self, frames: list[Frame], params: Mapping[str, Any]
                           ) -> "list[Frame] | _Made":
        settings = self.settings(frames[0], params)
        self._follow(settings)
        shape = (len(frames), frames[0].width, frames[0].height, settings, self.level)
        if shape not in self._shapes:
            self._shapes.add(shape)
            self._warming = True
        if not settings.active:
            self.schedule.reset()
            self._prev = None
            return frames
        if settings.rate and self.level < Level.REPEATS and self._interpolation().net is not None:
            return self._morph(frames, settings)
        return self._repeat(frames, settings)

    def _morph(self, frames: list[Frame], settings: OutputSettings) -> "_Made":
        """IFNet's in-betweens and the upscaling (on the stage's stream: `process`)."""
        size = (frames[0].height, frames[0].width)
        upscaler = self._upscaler_now(settings, size) if settings.size else None
        clock = _PartClock(self.stats, self.stream)
        images = self._upload([f.image for f in frames])
        clock.lap("upload")
        first = upscaler is not None and self._order(upscaler) == "upscale_first"
        if upscaler is not None and first:
            images = upscaler(images, settings.size)  # type: ignore[arg-type]
        self._bridge(frames, images, upscaler if first else None, settings)
        images, metas = self._interpolate(frames, images, settings.rate)
        self._last = frames[-1].image
        if upscaler is not None and not first:
            images = upscaler(images, settings.size)  # type: ignore[arg-type]
        pixels = _uint8(images)
        clock.lap("render")  # the kernels are done: the generator may go on
        return _to_host(pixels)._replace(metas=metas)

    def _bridge(self, frames: list[Frame], images: Tensor, upscaler: Upscaler | None,
                settings: OutputSettings) -> None:
        """The previous picture remade along this burst's path when the path changed but the
        generated picture did not (the network stepped down or swapped, another output
        size): a change of path is no cut, and nothing is lost at it."""
        prev, last = self._prev, self._last
        if (prev is None or last is None or prev.shape[1:] == images.shape[1:]
                or last.shape != frames[0].image.shape):
            return
        again = self._upload([last])
        if upscaler is not None:
            again = upscaler(again, settings.size)  # type: ignore[arg-type]
        self._prev = again

    def _repeat(self, frames: list[Frame], settings: OutputSettings) -> list[Frame]:
        """Each output slot shows a picture of its own (the frame, or the one before on a
        repeat or a hold), and each picture shown is resized once however many slots show
        it: repeats cost neither work nor memory."""
        self._prev = None  # the IFNet path starts afresh after
        pictures = [f.image for f in frames]
        if settings.rate:
            before = self.schedule.prev
            slots = self.schedule.plan(frames, settings.rate)
            self._report(slots, False)
            pictures.insert(0, (before or frames[0]).image)
            picks = [(s.a, s.frame.t_capture, s.frame.index,
                      {"repeat": True} if s.between else s.frame.meta) for s in slots]
        else:
            self.schedule.reset()
            picks = [(k, f.t_capture, f.index, f.meta) for k, f in enumerate(frames)]
        shown = sorted({k for k, *_ in picks})
        if settings.size:
            images = dict(zip(shown, self._resize([pictures[k] for k in shown], settings)))
        else:
            images = {k: pictures[k] for k in shown}
        return [Frame(images[k], t, index, meta) for k, t, index, meta in picks]

    def _resize(self, images: list[np.ndarray], settings: OutputSettings) -> list[np.ndarray]:
        """To the output size: the network (and Lanczos) on the stage's device, or on the
        host by OpenCV, Lanczos or, once degraded, cheaper."""
        size = settings.size
        assert size is not None
        network = self._upscaler_now(settings, images[0].shape[:2]).network
        if network is None and (self.level >= Level.LINEAR or self.device.type == "cpu"):
            return [cv2.resize(image, size, interpolation=self._host_filter(image, size))
                    for image in images]
        return list(_download(Upscaler(network)(self._upload(images), size)))

    def _host_filter(self, image: np.ndarray, size: tuple[int, int]) -> int:
        if self.level >= Level.NEAREST:
            return cv2.INTER_NEAREST
        if self.level >= Level.LINEAR:
            return cv2.INTER_AREA if size[0] < image.shape[1] else cv2.INTER_LINEAR
        return cv2.INTER_LANCZOS4

    def _upload(self, images: list[np.ndarray]) -> Tensor:
        batch = torch.from_numpy(np.stack(images))
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
        self._report(slots, True)
        return out, [s.frame for s in slots]

    # --- the budget
    def _follow(self, settings: OutputSettings) -> None:
        """A new size or upscaling model is tried on the full path again; a new rate is not
        (a controller that keeps changing it must not keep the stage on a path it cannot
        afford)."""
        before, self._current = self._current, settings
        if before is None or (before.size, before.model) == (settings.size, settings.model):
            return
        if self.level:
            log.info("output_size or upscale_model changed: the output stage tries its full "
                     "path again")
        self.level, self._overruns = Level.FULL, 0
        self.stats.gauge("output_degraded", 0)

    def _say_size(self, frame: Frame) -> None:
        """A live `output_size` the sinks cannot take is said once (on the loop's thread,
        which sees every burst, the ones that pass straight through too)."""
        if self.size is None:
            return
        asked = OutputSettings.of(self._params, frame.width, frame.height).size or (
            frame.width, frame.height)
        if asked != self._asked:
            self._asked = asked
            if asked != self.size:
                log.warning("output_size %dx%d: the sinks opened at %dx%d keep that size (set "
                            "output_size before the start to open them at another)", *asked,
                            *self.size)

    def _budget(self, ms: float, generated: int) -> None:
        """A burst's cost against the time its frames play: `OVERRUNS` bursts in a row over
        `LOAD_SHARE` of it take the stage one step down (module doc)."""
        play_ms = generated / self.fps * 1e3
        if ms <= (INLINE_SHARE if self.inline else LOAD_SHARE) * play_ms:
            self._overruns = 0
            return
        self._overruns += 1
        step = self._next_step() if self._overruns >= OVERRUNS else None
        if step is None:
            return
        self.level, self._overruns = step, 0
        self.stats.gauge("output_degraded", int(step))
        log.warning("output stage over its budget (%.0f ms for %.0f ms of output): %s", ms,
                    play_ms, STEPS[step])

    def _next_step(self) -> Level | None:
        """The next level that makes this burst's work cheaper (None: none is left)."""
        s = self._current
        if s is None:
            return None
        interpolating = (bool(s.rate) and self._interpolator is not None
                         and self._interpolator.net is not None)
        network = (s.size is not None and self._upscaler is not None
                   and self._upscaler[1].network is not None)
        cuts = {Level.LANCZOS: network, Level.REPEATS: interpolating,
                Level.LINEAR: s.size is not None, Level.NEAREST: s.size is not None}
        return next((level for level, cut in cuts.items() if level > self.level and cut), None)

    def _report(self, slots: list[Slot], interpolated: bool) -> None:
        made = sum(s.between for s in slots)
        self.stats.gauge("output_slots", len(slots))
        if made and interpolated:
            self.stats.count("frames_interpolated", made)
        if any(s.frame.meta.get("held") for s in slots):
            self.stats.count("output_cuts")
        self.stats.gauge("interpolation_latency_ms", self.schedule.latency_ms)

    def _interpolation(self) -> Interpolator:
        if self._interpolator is None:
            self._warming = True
            try:
                net: IFNet | None = self._load_rife(self.device, self.dtype)
            except UserError as exc:
                log.warning("motion interpolation off, frames are repeated to the output rate: "
                            "%s", exc)
                net = None
            self._interpolator = (self._learned_interpolator(net) if net is not None and
                                  self._learning is not None else Interpolator(net))
        return self._interpolator

    def _learned_interpolator(self, net: IFNet) -> Interpolator:
        """IFNet's two parts as graphs for the bursts `prepare` names, at the generated size
        (where the in-betweens are made once the network upscaling steps down, and always
        without one): the features of a burst and the previous frame, and every batch of
        in-betweens up to twice the burst's share at the output rate."""
        bursts, (width, height), rate = self._learning  # type: ignore[misc]
        h, w = height + -height % MULTIPLE, width + -width % MULTIPLE
        features = Graphed(net.encode, "IFNet features")
        pairs = Graphed(net.pairs, "IFNet in-betweens")
        most = 2 * max(bursts) * max(1.0, rate / self.fps - 1.0)
        batches = range(BATCH_STEP, BATCH_STEP * math.ceil(most / BATCH_STEP) + 1, BATCH_STEP)
        features.learn([(n + 1, 3, h, w) for n in bursts], self.device, self.dtype)
        pairs.learn([(b, PACKED, h, w) for b in batches], self.device, self.dtype)
        return Interpolator(net, features, pairs)

    def _order(self, upscaler: Upscaler) -> Order:
        if self.order != "auto":
            return self.order
        return "upscale_first" if upscaler.network is not None else "interpolate_first"

    def _upscaler_now(self, settings: OutputSettings, size: tuple[int, int]) -> Upscaler:
        """The upscaler at the present level: Lanczos alone once the network is stepped
        down (nothing loaded for it then)."""
        return self._upscaling(settings, size) if self.level < Level.LANCZOS else Upscaler(None)

    def _upscaling(self, settings: OutputSettings, size: tuple[int, int]) -> Upscaler:
        model = settings.model
        if self._upscaler is None or self._upscaler[0] != model:
            self._warming = True
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
        rate = settings.rate or self.fps
        budget = BUDGET_SHARE * 1e3 / rate
        batch = 4
        if self._learning is not None:  # before the show: as a graph for its bursts
            bursts = self._learning[0]
            run = Graphed(network.run, f"upscaler {network.name}")
            run.learn([(n, 3, *size) for n in bursts], self.device, self.dtype)
            network, batch = replace(network, run=run), max(bursts)
        if self.device.type == "cuda":
            ms = Upscaler(network).per_frame_ms(size[0], size[1], self.device, self.dtype, batch)
            if ms > budget:
                log.warning("upscaling by Lanczos resize: %s takes %.1f ms a frame, over the "
                            "%.1f ms budget at %g fps", network.name, ms, budget, rate)
                return None
        return network


class _PartClock:
    """Wall-clock laps of a burst's parts on the stage's stream (`stage_output_<part>_ms`):
    each lap waits for that stream alone, which the burst's download does anyway."""

    def __init__(self, stats: Stats, stream: torch.cuda.Stream | None) -> None:
        self.stats, self.stream = stats, stream
        self.t = time.perf_counter()

    def lap(self, part: str) -> None:
        if self.stream is not None:
            self.stream.synchronize()
        t = time.perf_counter()
        self.stats.timing(f"output_{part}", (t - self.t) * 1e3)
        self.t = t


class _Made(NamedTuple):
    """A burst's pictures on their way to the host: `pixels` [n, H, W, 3] uint8 (pinned
    memory on a GPU, filled by the copy that `done` marks), and the frames they become."""

    pixels: Tensor
    done: torch.cuda.Event | None
    metas: list[Frame]

    def frames(self, stats: Stats) -> list[Frame]:
        t0 = time.perf_counter()
        if self.done is not None:
            self.done.synchronize()
        stats.timing("output_download", (time.perf_counter() - t0) * 1e3)
        return [Frame(p, m.t_capture, m.index, m.meta)
                for p, m in zip(self.pixels.numpy(), self.metas)]


def _uint8(images: Tensor) -> Tensor:
    """[n, 3, H, W] in [0, 1] → [n, H, W, 3] uint8, on the images' device."""
    pixels = (images.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous()


def _to_host(pixels: Tensor) -> _Made:
    """`_Made` of `_uint8` pictures (without frames yet): on a GPU their copy into pinned
    memory is queued on the current stream, behind the kernels that made them."""
    if not pixels.is_cuda:
        return _Made(pixels, None, [])
    host = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
    host.copy_(pixels, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return _Made(host, done, [])


def _download(images: Tensor) -> np.ndarray:
    return _uint8(images).cpu().numpy()
