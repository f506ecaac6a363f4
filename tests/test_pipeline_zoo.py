"""Choosing the model: every recipe of the zoo streams through the node on its tiny random
set (`--model NAME --weights tiny-random`), the `model` parameter switches it live — the
picture holds while the new one loads, with progress in the log — and a model that cannot
load is refused in one line while the current one keeps playing; `--weights auto` refuses
before reading a byte when the recipe's files are missing, naming the pull command."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import av
import pytest

from livevace.config import RunConfig
from livevace.errors import ModelError, UserError
from livevace.frames import Frame
from livevace.io.capture import is_slate
from livevace.io.pattern import PatternSource
from livevace.loop import Node
from livevace.models.wan import zoo
from livevace.params import MODELS, ParamStore, param
from livevace.pipelines import create
from livevace.pipelines.vace import choices
from livevace.pipelines.vace import models as loading
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.session import pixel_frames
from livevace.pipelines.vace.switch import ModelSwitch, own_params
from livevace.pipelines.vace.tiny import tiny_random
from livevace.stats import Stats
from livevace.store import catalog, vram
from pipeline_support import SIZE, SOURCE_FPS, Recorded, Script, one_thread  # noqa: F401
from polling import until

T2V = dict(vace_enabled=False, noise_scale=1.0, transition_chunks=0, prompt="a red fox")
CONFIG = RunConfig(width=SIZE, height=SIZE, fps=60.0, sinks=(), preview="off")


@pytest.fixture
def no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty models folder, no Scope folder, and a GPU with room (as the refusal needs)."""
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "scope"))
    monkeypatch.setattr(vram, "gpu_memory",
                        lambda index=None: (78 * vram.GB, 80 * vram.GB, "GPU 0 (test)"))


class Every:
    """A sink that keeps every frame it is given, held repeats included."""

    name = "every"
    queue_size = 256

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def open(self, width: int, height: int, fps: float) -> None:
        pass

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        pass


def node_for(pipeline: Any, store: ParamStore, changes: dict[int, dict[str, Any]]
             ) -> tuple[Node, Recorded, Every, Stats]:
    sink, stats, recorded = Every(), Stats(), Recorded(pipeline)
    pipeline.bind_stats(stats)
    node = Node(CONFIG, store, recorded, PatternSource(SIZE, SIZE, SOURCE_FPS), [sink], stats,
                control=Script(store, changes))
    return node, recorded, sink, stats


def store_with(**values: Any) -> ParamStore:
    store = ParamStore()
    store.update({**T2V, **values})
    return store


def test_the_model_parameter_names_every_recipe() -> None:
    assert tuple(zoo.RECIPES) == MODELS == param("model").choices == choices.MODEL_NAMES
    assert param("model").apply == "reload" and param("model").default == "longlive"


def test_old_model_spellings_are_weights_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert choices.model_and_weights("tiny-random", None) == (None, "tiny-random")
    assert choices.model_and_weights("random-1.3b", "random") == (None, "random")
    assert "--model random-1.3b is deprecated: use --weights random" in caplog.text
    assert choices.model_and_weights("self-forcing", "tiny-random") == ("self-forcing",
                                                                        "tiny-random")
    with pytest.raises(UserError, match="unknown model 'huge'"):
        choices.model_and_weights("huge", None)
    with pytest.raises(UserError, match="contradicts --weights auto"):
        choices.model_and_weights("tiny-random", "auto")


@pytest.mark.parametrize("name", list(zoo.RECIPES))
def test_every_model_streams_through_the_node_on_tiny_random(name: str) -> None:
    store = store_with(model=name)
    pipeline = create("vace", CONFIG, store, weights="tiny-random")
    recipe = zoo.recipe(name)
    assert pipeline.model == name and pipeline.models.recipe is recipe
    assert pipeline.models.dit.cfg == recipe.tiny_config
    for name, value in own_params(recipe).items():  # the model's own, where the range holds it
        held, clamped = param(name).coerce(value)
        assert store.get(name) == (param(name).default if clamped else held)
    node, recorded, sink, stats = node_for(pipeline, store, {})
    node.start()
    try:
        until(lambda: len(recorded.bursts) >= 2, f"{name}: two chunks", timeout=300)
    finally:
        node.close()
    sizes = [pixel_frames(recipe.chunk, first) for first in (True, False)]
    assert [len(b) for b in recorded.bursts[:2]] == sizes
    assert stats.snapshot().get("pipeline_errors", 0) == 0


def test_fp8_weights_reach_the_loaded_dit_and_it_streams() -> None:
    """`--weights-dtype fp8` (`create(weights_dtype=...)`): every block's linear weights are
    stored in e4m3 by the loader, the rest stays as it was, and the node still streams."""
    from livevace.models.wan.fp8_weights import stored_fp8

    store = store_with(model="krea-realtime")
    pipeline = create("vace", CONFIG, store, weights="tiny-random", weights_dtype="fp8")
    dit = pipeline.models.dit
    assert all(stored_fp8(block.ffn[0].weight) is not None for block in dit.blocks)
    assert stored_fp8(dit.head.head.weight) is None
    node, recorded, _, stats = node_for(pipeline, store, {})
    node.start()
    try:
        until(lambda: len(recorded.bursts) >= 2, "two chunks on fp8 weights", timeout=300)
    finally:
        node.close()
    assert stats.snapshot().get("pipeline_errors", 0) == 0


@pytest.mark.parametrize("name", ["krea-realtime", "streamdiffusionv2"])
def test_reference_images_on_a_model_without_a_sink_are_said_once_and_the_show_goes_on(
        name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import cv2
    import numpy as np

    image = tmp_path / "ref.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 200, np.uint8))
    store = store_with(model=name, reference_images=(str(image),))
    pipeline = create("vace", CONFIG, store, weights="tiny-random")
    node, recorded, _, stats = node_for(pipeline, store, {})
    with caplog.at_level(logging.INFO, logger="livevace.vace"):
        node.start()
        try:
            until(lambda: len(recorded.bursts) >= 3, f"{name}: three chunks", timeout=300)
        finally:
            node.close()
    said = [r for r in caplog.records if "reference images are not used" in r.getMessage()]
    assert len(said) == 1 and name in said[0].getMessage()
    assert stats.snapshot().get("pipeline_errors", 0) == 0
    modes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("vace: ")]
    assert modes and not any("reference image" in m for m in modes)


def test_a_stream_batch_takes_a_new_number_of_steps_and_chunk_size_live() -> None:
    """StreamDiffusionV2 runs a batch row per step: a live change of the step count opens a
    stream of the new shape (no error every chunk), and so does a chunk size of 3."""
    store = store_with(model="streamdiffusionv2")
    pipeline = create("vace", CONFIG, store, weights="tiny-random")
    node, recorded, _, stats = node_for(pipeline, store, {
        4: {"denoising_steps": (700, 500, 400)}, 12: {"chunk_frames": 3}})
    node.start()
    try:
        until(lambda: pipeline.session.chunk == 3 and len(recorded.bursts) >= 2 + sum(
            len(b) > 4 for b in recorded.bursts[:1]), "a 3-frame chunk", timeout=300)
        until(lambda: any(len(b) == pixel_frames(3, False) for b in recorded.bursts),
              "a full 3-latent chunk after the change", timeout=300)
    finally:
        node.close()
    assert pipeline.session.sampler.steps == (700, 500, 400)
    assert stats.snapshot().get("pipeline_errors", 0) == 0


def test_a_preset_or_set_step_list_wins_over_the_models_at_start() -> None:
    store = store_with(model="self-forcing", denoising_steps=(1000, 500))
    pipeline = create("vace", CONFIG, store, weights="tiny-random")
    pipeline.close()
    assert store.get("denoising_steps") == (1000, 500)


def test_auto_refuses_a_model_whose_files_are_missing_before_loading(no_files) -> None:
    with pytest.raises(ModelError) as err:
        loading.load_models("self-forcing", "auto", vram.VramSettings())
    message = str(err.value)
    assert "\n" not in message and message.startswith("missing model files:")
    for key in catalog.model_keys(zoo.recipe("self-forcing")):  # its own, VACE, the shared
        assert catalog.get(key).weights.files[0] in message
    assert message.endswith("fetch them with `livevace models pull self-forcing`")


def test_a_live_switch_holds_the_picture_while_the_new_model_loads(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = store_with(model="longlive")
    pipeline = create("vace", CONFIG, store, weights="tiny-random")
    started, release = threading.Event(), threading.Event()
    load = pipeline._load

    def gated(*args: Any) -> StreamingVace:  # the real load, once the test has seen the hold
        started.set()
        assert release.wait(300)
        return load(*args)

    pipeline._load = gated
    node, recorded, sink, stats = node_for(pipeline, store, {3: {"model": "streamdiffusionv2"}})
    node.start()
    try:
        until(started.is_set, "the switch starts loading", timeout=300)
        before = len(recorded.bursts)
        last = recorded.bursts[-1][-1]
        seen = len(sink.frames)
        until(lambda: sum(f is last for f in sink.frames[seen:]) >= 20,
              "the pacer holds the last picture", timeout=120)
        shown = list(sink.frames[seen:])
        release.set()
        until(lambda: len(recorded.bursts) >= before + 2, "the new model plays", timeout=300)
    finally:
        release.set()
        node.close()
    first = next(i for i, f in enumerate(shown) if f is last)  # the burst played out, then
    assert all(f is last or is_slate(f) for f in shown[first:])  # the last picture again
    # (or the source's no-signal slate, which passes a loaded machine's stalls through)
    assert pipeline.model == "streamdiffusionv2" and pipeline.models.weights == "tiny-random"
    sdv2 = zoo.recipe("streamdiffusionv2")  # its own steps and one latent frame per call
    assert store.get("denoising_steps") == sdv2.steps and store.get("chunk_frames") == 1
    assert [len(b) for b in recorded.bursts[before:before + 2]] == [1, 4]  # a fresh stream
    assert stats.snapshot().get("pipeline_errors", 0) == 0
    assert stats.snapshot()["dropped_model_load"] > 0
    text = caplog.text
    assert "model streamdiffusionv2: loading; the picture holds" in text
    assert "loading streamdiffusionv2 (tiny-random): DiT + VACE, part 1 of 4" in text
    assert "loading streamdiffusionv2 (tiny-random): text encoder, part 4 of 4" in text
    assert "loaded streamdiffusionv2 (tiny-random): 4 of 4 parts" in text
    assert "model streamdiffusionv2 brings its own denoising_steps" in text
    assert "model streamdiffusionv2 playing" in text


def test_a_model_that_cannot_load_is_refused_and_the_current_one_plays_on(
        no_files, caplog: pytest.LogCaptureFixture) -> None:
    """The first model on tiny random weights, the switch to `auto` weights whose files are
    missing: refused once, in one line, before anything loads."""
    caplog.set_level(logging.INFO)
    store = store_with(model="longlive")
    first = StreamingVace(tiny_random(), SIZE, SIZE, store.snapshot(), owns_models=True)

    def load(*args: Any) -> StreamingVace:
        raise AssertionError("a refused model must not load")

    pipeline = ModelSwitch(first, load, lambda name: loading.check(zoo.recipe(name), "auto"))
    node, recorded, sink, stats = node_for(pipeline, store, {3: {"model": "self-forcing"}})
    node.start()
    try:
        until(lambda: len(recorded.bursts) >= 5, "the current model plays on", timeout=300)
    finally:
        node.close()
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0]
    assert refusals[0].startswith("model self-forcing refused: missing model files:")
    assert "`livevace models pull self-forcing`" in refusals[0]
    assert refusals[0].endswith("; longlive keeps playing")
    assert pipeline.model == "longlive" and not pipeline.loading
    assert [len(b) for b in recorded.bursts[:5]] == [9, 12, 12, 12, 12]  # never interrupted
    assert stats.snapshot().get("pipeline_errors", 0) == 0


def test_running_out_of_gpu_memory_while_preparing_is_one_line_saying_what_needs_less(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate that let a model load is a model of the pipeline: where compiling and
    capturing the steps needs more for a moment than it foresaw, the start is refused in one
    line that says what needs less, not a CUDA traceback."""
    import torch

    def out_of_memory(self: StreamingVace, *args: Any, **kwargs: Any) -> float:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 7.00 GiB.\n"
                                          "Of the allocated memory 30.1 GiB is in use")

    monkeypatch.setattr(StreamingVace, "prepare", out_of_memory)
    with pytest.raises(ModelError) as err:
        create("vace", CONFIG, store_with(model="memflow"), weights="tiny-random")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("not enough GPU memory to prepare memflow")
    assert f" at {SIZE}x{SIZE} (compiling and capturing its steps" in message
    assert "Tried to allocate 7.00 GiB" in message and "--weights-dtype fp8" in message


def test_livevace_run_takes_the_model_and_the_weights(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    env = {**os.environ, "LIVEVACE_MODELS_DIR": str(tmp_path / "models"),
           "DAYDREAM_SCOPE_MODELS_DIR": str(tmp_path / "scope")}
    proc = subprocess.run(
        [sys.executable, "-m", "livevace", "run", "--osc-port", "-1", "--oscquery-port", "-1",
         "--no-zeroconf", "--no-preview", "--pipeline", "vace", "--model", "streamdiffusionv2",
         "--weights", "tiny-random", "--sink", f"record:{out}", "--max-frames", "12",
         "--width", "64", "--height", "64", "--set", "control=edges"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "loading streamdiffusionv2 (tiny-random)" in proc.stderr
    assert "model streamdiffusionv2 brings its own denoising_steps" in proc.stderr
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12


def test_lookahead_is_a_run_option_the_pipeline_takes_and_keeps_across_a_model_switch() -> None:
    """`livevace run --lookahead 1`: StreamDiffusionV2's 1-latent chunks annotated a chunk
    ahead (its frame-rate setting); the default stays by the chunk size, and a model loaded
    by a live switch keeps the option."""
    from livevace.cli import build_parser

    argv = ["run", "--lookahead", "1"]
    assert build_parser(argv).parse_args(argv).lookahead == 1
    store = store_with(model="streamdiffusionv2")
    default = create("vace", CONFIG, store, weights="tiny-random")
    ahead = create("vace", CONFIG, store_with(model="streamdiffusionv2"), weights="tiny-random",
                   lookahead=1)
    switched = None
    try:
        assert default.lookahead == 0 and ahead.lookahead == 1
        switched = ahead._load("self-forcing", ahead.pipeline, store.snapshot())
        assert switched.models.recipe.name == "self-forcing" and switched.lookahead == 1
    finally:
        for pipeline in (default, ahead, switched):
            if pipeline is not None:
                pipeline.close()
