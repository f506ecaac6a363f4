"""The models catalogue, header reading, verification, Scope reuse and downloads.

No weights are downloaded: files are written here in the real layouts (safetensors headers
with the real names and shapes, made full-size as sparse files that cost no disk; tiny
`torch.save` checkpoints with the real key shapes), and downloads are exercised offline
(HF_HUB_OFFLINE=1, huggingface_hub's real error path) or against a local HTTP server.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import math
import os
import re
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from livevace.cli import main
from livevace.errors import ModelError
from livevace.store import catalog, download, headers, paths
from livevace.params import param

ITEMSIZE = {"F32": 4, "BF16": 2, "F16": 2, "U8": 1}


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    ours, scope = tmp_path / "ours", tmp_path / "scope"
    monkeypatch.setenv("LIVEVACE_MODELS_DIR", str(ours))
    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(scope))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # whatever the caller's environment says
    return ours, scope


def write_safetensors(path: Path, tensors: dict[str, tuple[tuple[int, ...], str]],
                      total_bytes: int = 0) -> None:
    """A safetensors file with these tensors (zeros), padded to `total_bytes` as a sparse file."""
    header: dict[str, dict] = {}
    offset = 0
    for name, (shape, dtype) in tensors.items():
        n = math.prod(shape) * ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    if total_bytes:  # a padding tensor so the header accounts for every byte of the file
        pad = max(0, total_bytes - offset - 8 - len(json.dumps(header)) - 200)
        header["padding"] = {"dtype": "U8", "shape": [pad], "data_offsets": [offset, offset + pad]}
        offset += pad
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        f.truncate(8 + len(blob) + offset)


def real_layout(entry: catalog.ModelFile, dtype: str = "BF16") -> dict[str, tuple[tuple[int, ...], str]]:
    """The entry's identifying tensors under their exact names."""
    return {t.pattern: (t.shape, t.dtype or dtype) for t in entry.tensors}


def place(entry: catalog.ModelFile, base: Path, **kw) -> Path:
    path = base / entry.weights.folder / entry.weights.files[0]
    write_safetensors(path, kw.pop("tensors", real_layout(entry)), entry.size_bytes, **kw)
    return path


# --- the catalogue itself ------------------------------------------------------------------

def test_catalogue_is_consistent() -> None:
    keys = [m.key for m in catalog.CATALOG]
    assert len(keys) == len(set(keys))
    for role in catalog.ROLES:
        for option in role.options:
            assert all(k in catalog.BY_KEY for k in option), role
    # every depth estimator the registry offers can be pulled
    assert set(param("depth_model").choices) <= set(keys)
    locations = [(m.weights.folder, n) for m in catalog.CATALOG for n in m.names]
    assert len(locations) == len(set(locations))  # no two entries claim the same file
    for m in catalog.CATALOG:
        assert bool(m.weights.repo_id) != bool(m.weights.url), m.key
        assert m.size_bytes > 0 and m.purpose and m.features, m.key
    for m in catalog.GENERATOR_FILES:
        w = m.weights
        # Scope's downloader: local_dir = models_root / repo_id.split("/")[-1]
        assert w.folder == w.repo_id.split("/")[-1], m.key
        for scope_path in m.scope:
            assert scope_path.startswith(f"{w.folder}/"), m.key
            assert any(f"{w.folder}/{f}".startswith(scope_path) for f in w.files), m.key
        if w.files[0].endswith(catalog.WEIGHT_SUFFIXES):
            assert m.tensors, f"{m.key} has no identifying tensors"


def test_default_set_is_what_the_vace_pipeline_needs(dirs: tuple[Path, Path]) -> None:
    keys = catalog.default_keys()
    assert {"longlive_base", "longlive_lora", "vace_module", "wan_vae", "taew2_1",
            "umt5_tokenizer", param("depth_model").default} <= set(keys)
    assert len([k for k in keys if k.startswith("umt5_") and k != "umt5_tokenizer"]) == 1
    assert 10e9 < catalog.fresh_pull_bytes() < 25e9


def test_default_set_prefers_an_alternative_already_in_scope(dirs: tuple[Path, Path]) -> None:
    _, scope = dirs
    full = catalog.get("vace_full")
    place(full, scope, tensors={**real_layout(full)})
    keys = catalog.default_keys()
    assert "vace_full" in keys and "vace_module" not in keys


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'.*longlive_base"):
        catalog.get("nope")


# --- header reading ------------------------------------------------------------------------

def test_torch_checkpoint_headers_match_torch_load(tmp_path: Path) -> None:
    state = {
        "generator": {"model.blocks.0.self_attn.q.weight": torch.nn.Parameter(torch.zeros(6, 4)),
                      "model.head.head.weight": torch.zeros(5, 3, dtype=torch.bfloat16)},
        "generator_lora": [torch.zeros(2, 7, dtype=torch.float16)[1:]],
        "fp8": torch.zeros(3, 2, dtype=torch.float8_e4m3fn),
        "step": 1200,
    }
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    found = headers.read_tensors(path)
    loaded = torch.load(path, weights_only=True)
    assert found == {
        "generator.model.blocks.0.self_attn.q.weight": headers.TensorInfo((6, 4), "F32"),
        "generator.model.head.head.weight": headers.TensorInfo((5, 3), "BF16"),
        "generator_lora.0": headers.TensorInfo((1, 7), "F16"),
        "fp8": headers.TensorInfo((3, 2), "F8_E4M3"),
    }
    assert tuple(loaded["generator"]["model.head.head.weight"].shape) == (5, 3)


def test_safetensors_headers_match_the_library_and_catch_truncation(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    save_file({"w": torch.zeros(4, 8, dtype=torch.bfloat16), "b": torch.zeros(3)}, str(path))
    assert headers.read_tensors(path) == {"w": headers.TensorInfo((4, 8), "BF16"),
                                          "b": headers.TensorInfo((3,), "F32")}
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(headers.HeaderError, match="truncated"):
        headers.read_tensors(cut)


def test_reading_a_checkpoint_never_runs_its_pickled_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "payload": Payload()}, path)
    assert headers.read_tensors(path) == {"w": headers.TensorInfo((2,), "F32")}
    assert not marker.exists()


# --- verification --------------------------------------------------------------------------

def test_verify_accepts_the_real_layout_and_names_what_is_wrong(dirs: tuple[Path, Path]) -> None:
    ours, _ = dirs
    entry = catalog.get("vace_module")
    folder = ours / entry.weights.folder
    place(entry, ours)
    assert catalog.verify(entry, folder) == []

    wrong = real_layout(entry)
    wrong["vace_patch_embedding.weight"] = ((1536, 16, 1, 2, 2), "BF16")  # the 14B/i2v-style shape
    place(entry, ours, tensors=wrong)
    assert catalog.verify(entry, folder) == [
        "vace_patch_embedding.weight has shape [1536, 16, 1, 2, 2], expected [1536, 96, 1, 2, 2]"]

    place(entry, ours, tensors=real_layout(entry) | {"vace_blocks.0.before_proj.weight": (
        (1536, 1536), "F32")})
    assert catalog.verify(entry, folder) == ["vace_blocks.0.before_proj.weight is F32, expected BF16"]

    place(entry, ours, tensors={"blocks.0.self_attn.q.weight": ((1536, 1536), "BF16")})
    assert "no tensor vace_patch_embedding.weight (not this model)" in catalog.verify(entry, folder)


def test_verify_catches_truncated_and_placeholder_files(dirs: tuple[Path, Path]) -> None:
    ours, _ = dirs
    entry = catalog.get("vace_module")
    path = place(entry, ours)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 1000)
    [problem] = catalog.verify(entry, path.parent)
    assert "truncated" in problem
    path.write_text("version https://git-lfs.github.com/spec/v1\n")  # a git-lfs pointer
    [problem] = catalog.verify(entry, path.parent)
    assert "partial copy or placeholder" in problem and "1.5 GB" in problem


def _layout(key: str) -> dict:
    """Checkpoint structure as the project saves it: plain state dicts for the VAE and TAE,
    PEFT keys under `generator_lora` for LongLive's LoRA."""
    if key == "longlive_lora":
        p = "base_model.model.blocks.0."
        return {"generator_lora": {f"{p}self_attn.q.lora_A.weight": (256, 1536),
                                   f"{p}self_attn.q.lora_B.weight": (1536, 256),
                                   f"{p}ffn.2.lora_A.weight": (256, 8960)}}
    return {t.pattern: t.shape for t in catalog.get(key).tensors}


def _save(layout: dict, path: Path) -> None:
    def build(node):
        return {k: build(v) if isinstance(v, dict) else torch.zeros(v, dtype=torch.float16)
                for k, v in node.items()}
    torch.save(build(layout), path)


@pytest.mark.parametrize("key", ["wan_vae", "taew2_1", "longlive_lora"])
def test_verify_reads_torch_checkpoints_in_their_real_key_layout(key: str, tmp_path: Path) -> None:
    entry = catalog.get(key)
    # a tiny file in the real layout: scale the size floor down to what it holds
    entry = dataclasses.replace(entry, weights=dataclasses.replace(entry.weights, size_mb=0.001))
    path = tmp_path / entry.weights.files[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = _layout(key)
    _save(layout, path)
    assert catalog.verify(entry, tmp_path) == []

    inner = layout.get("generator_lora", layout)
    name = next(iter(inner))
    inner[name] = tuple(d + 1 for d in inner[name])
    _save(layout, path)
    [problem] = catalog.verify(entry, tmp_path)
    assert name in problem and "expected" in problem


# --- Scope reuse and lookup ----------------------------------------------------------------

def test_scope_files_are_used_in_place(dirs: tuple[Path, Path]) -> None:
    ours, scope = dirs
    entry = catalog.get("vace_module")
    path = place(entry, scope)
    assert path == scope / "WanVideo_comfy" / "Wan2_1-VACE_module_1_3B_bf16.safetensors"
    assert catalog.require("vace_module") == {"vace_module": path}
    [result] = download.pull(["vace_module"])  # offline: any download attempt would fail
    assert (result.action, result.folder) == ("scope", path.parent)
    assert not ours.exists()  # nothing copied or linked


def test_our_copy_takes_precedence_over_scope(dirs: tuple[Path, Path]) -> None:
    ours, scope = dirs
    entry = catalog.get("vace_module")
    place(entry, scope)
    mine = place(entry, ours)
    assert catalog.require("vace_module")["vace_module"] == mine
    assert download.pull(["vace_module"])[0].action == "present"


def test_broken_scope_copy_is_not_used(dirs: tuple[Path, Path]) -> None:
    _, scope = dirs
    entry = catalog.get("vace_module")
    place(entry, scope, tensors={"vace_patch_embedding.weight": ((1536, 16, 1, 2, 2), "BF16")})
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):  # it tries to fetch a good one
        download.pull(["vace_module"])


def test_missing_weights_message_names_files_places_and_command(dirs: tuple[Path, Path]) -> None:
    ours, scope = dirs
    with pytest.raises(ModelError) as err:
        catalog.require("longlive_base", "vace_module")
    message = str(err.value)
    assert "models/longlive_base.pt" in message and "Wan2_1-VACE_module_1_3B_bf16" in message
    assert str(ours) in message and str(scope) in message
    assert "`livevace models pull longlive_base vace_module`" in message


# --- downloads -----------------------------------------------------------------------------

def test_pull_offline_says_why_and_where_to_put_the_file(dirs: tuple[Path, Path]) -> None:
    ours, _ = dirs
    assert download.offline()  # conftest: tests never download
    with pytest.raises(ModelError) as err:
        download.pull(["taew2_1"])
    message = str(err.value)
    assert "HF_HUB_OFFLINE is set" in message
    assert "https://huggingface.co/lightx2v/Autoencoders" in message
    assert str(ours / "Autoencoders" / "taew2_1.pth") in message


def test_transformers_offline_stops_downloads_too(dirs: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub reads TRANSFORMERS_OFFLINE as HF_HUB_OFFLINE: so does `pull`."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(ModelError, match="TRANSFORMERS_OFFLINE is set; unset it, or put each"):
        download.pull(["taew2_1"])


def test_pull_offline_lists_every_missing_file_of_every_entry(dirs: tuple[Path, Path]) -> None:
    ours, _ = dirs
    depth = catalog.get("depth_anything_v2_small")
    (ours / depth.weights.folder).mkdir(parents=True)
    (ours / depth.weights.folder / "config.json").write_text("{}")  # one of its 3 files is here
    keys = catalog.default_keys()
    with pytest.raises(ModelError) as err:
        download.pull(keys)
    message = str(err.value)
    assert message.startswith("cannot download ") and "HF_HUB_OFFLINE is set" in message
    listed = [line.strip() for line in message.splitlines()[1:]]
    expected = []
    for key in keys:
        w = catalog.get(key).weights
        names = [n for n in w.files if not (key == depth.key and n == "config.json")]
        if w.any_of and not set(w.any_of) & set(w.files):
            names.append(w.any_of[0])
        for name in names:
            expected += [f"https://huggingface.co/{w.repo_id}/resolve/main/{name}",
                         f"-> {ours / w.folder / name}"]
    assert [line.partition(" (or ")[0] for line in listed] == expected
    assert len(expected) == 2 * int(message.split()[2])  # "cannot download N files"


def refusing_port() -> tuple[socket.socket, int]:
    """A local port bound but not listening: every connection to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def pull_command(tmp_path: Path, endpoint: str, *keys: str) -> subprocess.CompletedProcess:
    """`livevace models pull` in its own process against a local hub (never the internet)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and "PROXY" not in k.upper()}
    env.update(HF_ENDPOINT=endpoint, LIVEVACE_MODELS_DIR=str(tmp_path / "ours"),
               DAYDREAM_SCOPE_MODELS_DIR=str(tmp_path / "scope"), HF_HOME=str(tmp_path / "hf"))
    return subprocess.run([sys.executable, "-m", "livevace", "models", "pull", *keys],
                          capture_output=True, text=True, timeout=300, env=env)


def test_an_unreachable_hub_fails_at_once_listing_every_file(tmp_path: Path) -> None:
    sock, port = refusing_port()
    try:
        proc = pull_command(tmp_path, f"http://127.0.0.1:{port}", "taew2_1",
                            "depth_anything_v2_small")
    finally:
        sock.close()
    assert proc.returncode == 2
    assert "Retry" not in proc.stderr  # no retry storm: one connection attempt said it all
    message = proc.stderr[proc.stderr.index("livevace: "):]
    assert message.startswith(f"livevace: cannot download 4 files: cannot reach "
                              f"http://127.0.0.1:{port} (connection refused): check the network "
                              "(or HF_ENDPOINT), or put each in place by hand:")
    for name in ("taew2_1.pth", "config.json", "preprocessor_config.json", "model.safetensors"):
        assert f"/resolve/main/{name}\n" in message


class _TooManyRequests(http.server.BaseHTTPRequestHandler):
    """A hub that answers every request with 429, retry at once (the hub client retries)."""

    def do_HEAD(self) -> None:
        self.send_response(429)
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args) -> None:
        pass


def test_the_hub_clients_warnings_are_printed_once(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TooManyRequests)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = pull_command(tmp_path, f"http://127.0.0.1:{server.server_port}", "taew2_1")
    finally:
        server.shutdown()
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert any(" W huggingface_hub" in line and "429" in line for line in lines), proc.stderr
    # Every line is ours: timestamped log lines and the one `livevace:` message, no bare twin
    # of a log line from the library's own handler.
    bare = [line for line in lines if not re.match(r"\d\d:\d\d:\d\d [DIWEC] ", line)
            and not line.startswith("livevace: ")]
    assert bare == []
    assert f"cannot download taew2_1 from http://127.0.0.1:{server.server_port} (" in proc.stderr
    assert "HTTP Request:" not in proc.stderr  # a line per request is for -v


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one blob with HTTP Range support, remembering the Range headers it saw."""

    blob = os.urandom(300_000)
    ranges: list[str | None] = []

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.blob[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_url_download_resumes_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)  # either stops downloads
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dest = tmp_path / "mediapipe" / "pose.task"
        dest.parent.mkdir()
        (tmp_path / "mediapipe" / "pose.task.part").write_bytes(_RangeHandler.blob[:100_000])
        download.fetch_url(f"http://127.0.0.1:{server.server_port}/pose.task", dest)
    finally:
        server.shutdown()
    assert dest.read_bytes() == _RangeHandler.blob
    assert _RangeHandler.ranges == ["bytes=100000-"]
    assert not (tmp_path / "mediapipe" / "pose.task.part").exists()


# --- the command ---------------------------------------------------------------------------

def test_models_command_lists_and_verifies(dirs: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, scope = dirs
    place(catalog.get("vace_module"), scope)
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "vace_module" in line)
    assert row.startswith("*vace_module") and "scope" in row
    assert "missing" in next(line for line in out.splitlines() if "longlive_base" in line)

    assert main(["models", "verify", "vace_module"]) == 0
    assert capsys.readouterr().out.startswith("ok")
    assert main(["models", "verify"]) == 1  # the rest of the default set is missing
    assert "run `livevace models pull longlive_base`" in capsys.readouterr().out

    assert main(["models", "pull", "taew2_1"]) == 2  # offline: one clear line, no traceback
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_docs_show_the_catalogue_and_the_numbers_it_implies(capsys: pytest.CaptureFixture[str]) -> None:
    from livevace.store import vram

    root = Path(__file__).resolve().parents[1]
    assert main(["models", "list", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table in (root / "docs" / "models.md").read_text()  # regenerate: see docs/models.md
    readme = (root / "README.md").read_text()
    assert f"about {catalog.fresh_pull_bytes() / 1e9:.0f} GB of weights" in readme
    on_gpu = vram.estimate(vram.VramSettings()).total / vram.GB
    on_cpu = vram.estimate(vram.VramSettings(text_encoder="cpu")).total / vram.GB
    assert f"about {on_gpu:.0f} GB at 832×480" in readme and f"{on_cpu:.0f} GB with it on" in readme


def test_roles_resolve_to_whatever_option_is_on_disk(dirs: tuple[Path, Path]) -> None:
    ours, scope = dirs
    chosen = {"self_forcing", "vace_module", "umt5_bf16", "umt5_tokenizer", "wan_vae", "taew2_1",
              param("depth_model").default}
    for key in chosen:  # presence is what counts here; `verify` judges the contents
        w = catalog.get(key).weights
        base = scope if key in ("vace_module", "wan_vae") else ours
        for name in (*w.files, *w.any_of[:1]):
            (base / w.folder / name).parent.mkdir(parents=True, exist_ok=True)
            (base / w.folder / name).touch()
    roles = catalog.resolve_roles()
    assert roles["generator"] == {"self_forcing": ours / "Self-Forcing/checkpoints/self_forcing_dmd.pt"}
    assert roles["text encoder"] == {"umt5_bf16": ours / "Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth"}
    assert roles["vace"] == {"vace_module": scope / "WanVideo_comfy/Wan2_1-VACE_module_1_3B_bf16.safetensors"}
    assert roles["tokenizer"] == {"umt5_tokenizer": ours / "Wan2.1-T2V-1.3B/google/umt5-xxl"}

    (ours / "Autoencoders/taew2_1.pth").unlink()
    with pytest.raises(ModelError, match=r"TAEW2.1 tiny autoencoder \(taew2_1.pth\).*pull taew2_1`"):
        catalog.resolve_roles()
