"""LoRA slots through the real vace pipeline on tiny random weights: a scale change glides
over `transition_chunks` chunks, a file swapped in a slot crossfades without touching the
cache, and a file that cannot be used is said in one line while the other slots play on."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from lora_support import write
from pipeline_support import SIZE, one_thread, store_with  # noqa: F401

from livevace.frames import Frame
from livevace.models.wan.lora import read_lora
from livevace.pipelines.vace.pipeline import StreamingVace
from livevace.pipelines.vace.session import pixel_frames
from livevace.pipelines.vace.tiny import tiny_random

T2V = dict(vace_enabled=False, noise_scale=1.0, prompt="a red fox", transition_chunks=2)


@pytest.fixture(scope="module")
def models():
    built = tiny_random()
    yield built
    built.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("loras")
    dim = models.dit.cfg.dim
    g = torch.Generator().manual_seed(3)

    def pairs(*modules: str, rank: int = 4):
        return {m: (torch.randn(rank, dim, generator=g) * 0.3,
                    torch.randn(dim, rank, generator=g) * 0.3) for m in modules}

    return {"a": write(folder / "a.safetensors", "wan",
                       pairs("blocks.0.self_attn.q", "blocks.1.cross_attn.o"), 4),
            "b": write(folder / "b.safetensors", "kohya",
                       pairs("blocks.0.self_attn.q", "blocks.3.self_attn.v"), 2),
            "wide": write(folder / "wide.safetensors", "wan",
                          {"blocks.0.self_attn.q": (torch.zeros(2, 1536), torch.zeros(1536, 2))})}


class Show:
    """One pipeline called chunk by chunk, as the node's loop calls it."""

    def __init__(self, models, **settings) -> None:
        self.models = models
        self.store = store_with(**{**T2V, **settings})
        self.pipeline = StreamingVace(models, SIZE, SIZE, self.store.snapshot(), lookahead=0)
        self.rng = np.random.default_rng(0)
        self.first = True

    def chunk(self, **changes) -> list[Frame]:
        self.store.update(changes)
        n = pixel_frames(3, first=self.first)
        self.first = False
        frames = [Frame(self.rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), float(i), i)
                  for i in range(n)]
        out = self.pipeline(frames, self.store.snapshot())
        assert out
        return out

    @property
    def scales(self) -> dict[str, float]:
        return {key[1].stem: s for key, s in self.models.loras.live.scales.items()}

    def close(self) -> None:
        self.chunk(lora_1="", lora_2="", lora_3="", lora_4="", transition_chunks=0)
        self.pipeline.close()


def merged(base: dict[str, torch.Tensor], files, **scales: float) -> dict[str, torch.Tensor]:
    """base + Σ s·ΔW from the facts."""
    out = {k: v.clone() for k, v in base.items()}
    for name, s in scales.items():
        for module, d in read_lora(files[name]).deltas.items():
            out[f"{module}.weight"] += s * d.weight()
    return out


def assert_weights(models, want: dict[str, torch.Tensor]) -> None:
    got = models.dit.state_dict()
    for k, v in want.items():
        assert (got[k] - v).norm() <= 1e-6 * v.norm(), k


def test_a_ramp_lands_chunk_by_chunk_and_a_swap_keeps_the_cache(models, files, caplog):
    caplog.set_level(logging.INFO)
    base = {k: v.clone() for k, v in models.dit.state_dict().items()}
    show = Show(models, lora_1=str(files["a"]), lora_1_scale=0.0)
    try:
        show.chunk()  # the first chunk waits for the file: merged at 0
        assert show.scales == {"a": 0.0}
        assert all(torch.equal(v, base[k]) for k, v in models.dit.state_dict().items())
        ramp = []
        for _ in range(3):
            show.chunk(lora_1_scale=1.0)
            ramp.append(show.scales["a"])
        assert ramp == [0.5, 1.0, 1.0]
        assert_weights(models, merged(base, files, a=1.0))
        session, cache = show.pipeline.session, show.pipeline.session.cache
        frames = [cache.next_frame]
        seen = []
        for _ in range(6):  # the new file is read beside the show; the fade starts when ready
            show.chunk(lora_1=str(files["b"]))
            seen.append(show.scales)
            frames.append(cache.next_frame)
        fade = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
        assert fade[-2:] == [{"a": 0.5, "b": 0.5}, {"b": 1.0}]
        assert all(s == {"a": 1.0} for s in fade[:-2])
        assert show.pipeline.session is session and session.cache is cache
        assert frames == sorted(set(frames))  # the stream went on: never back to its start
        assert "cache reset" not in caplog.text
        assert_weights(models, merged(base, files, b=1.0))
        show.chunk(lora_1="", transition_chunks=0)
        assert show.scales == {}
        assert all(torch.equal(v, base[k]) for k, v in models.dit.state_dict().items())
    finally:
        show.close()


def test_bad_files_are_said_once_and_the_other_slots_play(models, files, tmp_path, caplog):
    base = {k: v.clone() for k, v in models.dit.state_dict().items()}
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(files["a"].read_bytes()[:-32])
    unknown = tmp_path / "unknown.safetensors"
    unknown.write_bytes(files["a"].read_bytes().replace(b"lora_down", b"lora_xxxx"))
    show = Show(models, lora_1=str(files["a"]), lora_2=str(tmp_path / "missing.safetensors"),
                lora_3=str(truncated), lora_4=str(files["wide"]), transition_chunks=0)
    try:
        with caplog.at_level(logging.ERROR, logger="livevace.lora"):
            show.chunk()
            show.chunk()
        lines = [r.getMessage() for r in caplog.records if r.name == "livevace.lora"]
        assert len(lines) == 3 and all("\n" not in line for line in lines)
        assert lines[0].startswith("lora_2: ") and "no such LoRA file" in lines[0]
        assert lines[1].startswith("lora_3: ") and "truncated" in lines[1]
        assert lines[2].startswith("lora_4: ") and "made for Wan2.1 1.3B" in lines[2]
        assert show.scales == {"a": 1.0}
        assert_weights(models, merged(base, files, a=1.0))
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="livevace.lora"):
            show.chunk(lora_3=str(unknown), lora_4="no-such-name")
            show.chunk()
        lines = [r.getMessage() for r in caplog.records if r.name == "livevace.lora"]
        assert len(lines) == 2 and "unknown LoRA key layout" in lines[0]
        assert lines[1].startswith("lora_4: no LoRA named 'no-such-name' in ")
        assert show.scales == {"a": 1.0}
    finally:
        show.close()


def test_a_slot_finds_a_name_in_our_folder_then_scopes(tmp_path, monkeypatch):
    from livevace.errors import ModelError
    from livevace.pipelines.vace.loras import find_lora

    ours, scope = tmp_path / "ours", tmp_path / "scope"
    for folder, names in ((ours, ("ink.safetensors",)),
                          (scope, ("ink.safetensors", "pixar.safetensors", "old.pt"))):
        folder.mkdir()
        for name in names:
            (folder / name).write_bytes(b"")
    monkeypatch.setenv("LIVEVACE_LORA_DIR", str(ours))
    monkeypatch.setenv("DAYDREAM_SCOPE_LORA_DIR", str(scope))
    assert find_lora("ink") == ours / "ink.safetensors"
    assert find_lora("pixar.safetensors") == scope / "pixar.safetensors"
    assert find_lora("old") == scope / "old.pt"
    assert find_lora(str(tmp_path / "elsewhere.safetensors")) == tmp_path / "elsewhere.safetensors"
    with pytest.raises(ModelError, match=f"no LoRA named 'ghost' in {ours}, {scope}"):
        find_lora("ghost")
