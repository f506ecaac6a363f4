"""The zoo in the models catalogue: every recipe's files are catalogue entries of its size, a
model name stands for every file it needs in `livevace models list|pull|verify`, licences are
said plainly, and a model whose files are missing is refused naming `livevace models pull NAME`.
No downloads: offline (HF_HUB_OFFLINE=1), files written in place as sparse safetensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_models_catalog import dirs, place, real_layout  # noqa: F401  (the shared fixture)

from livevace.cli import main
from livevace.errors import ModelError
from livevace.models.wan import zoo
from livevace.models.wan.dit import WanDiT
from livevace.params import MODELS
from livevace.store import catalog

SHARED = {"umt5_fp8", "umt5_tokenizer", "wan_vae", "taew2_1"}


def test_the_torch_free_names_are_the_zoo():
    assert tuple(zoo.RECIPES) == MODELS


@pytest.mark.parametrize("name", list(zoo.RECIPES))
def test_a_recipe_names_catalogue_files_that_fit_its_network(name: str):
    """Each generator file and each VACE module a recipe names identifies itself by tensors of
    the recipe's own network (a 14B model never points at the 1.3B VACE module)."""
    recipe = zoo.recipe(name)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in WanDiT(recipe.config).state_dict().items()}
    assert recipe.checkpoints and recipe.vace_checkpoints
    for key in (*recipe.checkpoints, *recipe.vace_checkpoints):
        for spec in catalog.get(key).tensors:
            if "lora_" not in spec.pattern:
                assert shapes[spec.pattern.lstrip("*")] == spec.shape, (name, key, spec.pattern)
    keys = catalog.model_keys(recipe, on_disk=False)
    own = [*recipe.checkpoints, recipe.vace_checkpoints[0]]
    assert keys[:len(own)] == own and sorted(keys[len(own):]) == sorted(SHARED)


def test_model_keys_take_the_vace_module_already_on_disk(dirs):  # noqa: F811
    _, scope = dirs
    longlive = zoo.recipe("longlive")
    assert "vace_module" in catalog.model_keys(longlive)
    full = catalog.get("vace_full")
    place(full, scope, tensors=real_layout(full))
    keys = catalog.model_keys(longlive)
    assert "vace_full" in keys and "vace_module" not in keys


def test_a_model_with_missing_files_is_refused_naming_the_pull_command(dirs):  # noqa: F811
    ours, _ = dirs
    place(catalog.get("vace_module"), ours)
    with pytest.raises(ModelError) as err:
        catalog.require_model(zoo.recipe("longlive"))
    message = str(err.value)
    assert message.endswith("fetch them with `livevace models pull longlive`")
    assert "models/longlive_base.pt" in message and "VACE-1.3B module" not in message


def test_pull_a_model_says_the_licences_then_fetches_its_files(dirs, capsys):  # noqa: F811
    assert main(["models", "pull", "longlive"]) == 2  # offline: one line listing every file
    captured = capsys.readouterr()
    assert captured.out.startswith("licence  Apache-2.0: longlive_base, longlive_lora, "
                                   "vace_module, umt5_fp8, umt5_tokenizer, wan_vae")
    assert "licence  MIT: taew2_1" in captured.out
    for path in ("LongLive-1.3B/models/lora.pt", "Autoencoders/taew2_1.pth",
                 "WanVideo_comfy/umt5-xxl-enc-fp8_e4m3fn.safetensors"):
        assert path in captured.err
    assert "depth" not in captured.err  # a model's files, not the annotators'


def test_non_commercial_files_are_said_first_and_plainly(dirs, capsys):  # noqa: F811
    assert main(["models", "pull", "taew2_1", "memflow_lora", "krea_realtime_14b"]) == 2
    first, second = capsys.readouterr().out.splitlines()  # then the offline error
    assert first.startswith("licence  CC BY-NC-SA 4.0, NON-COMMERCIAL use only: memflow_lora, "
                            "krea_realtime_14b — as stated in ")
    assert "krea-ai/realtime-video" in first and "MemFlow" in first
    assert second == "licence  MIT: taew2_1"


def test_verify_a_model_names_what_to_pull(dirs, capsys):  # noqa: F811
    ours, scope = dirs
    place(catalog.get("vace_module"), scope)
    assert main(["models", "verify", "self-forcing"]) == 1
    out = capsys.readouterr().out
    assert "missing  self_forcing: run `livevace models pull self-forcing`" in out
    assert next(line for line in out.splitlines() if "vace_module" in line).startswith("ok")
    assert "longlive_base" not in out


def test_list_shows_licences_and_what_each_model_lacks(dirs, capsys):  # noqa: F811
    ours, _ = dirs
    for key in catalog.model_keys(zoo.recipe("self-forcing"), on_disk=False):
        entry = catalog.get(key)
        for name in (*entry.weights.files, *entry.weights.any_of[:1]):  # presence is what counts
            (ours / entry.weights.folder / name).parent.mkdir(parents=True, exist_ok=True)
            (ours / entry.weights.folder / name).touch()
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    krea = next(line for line in lines if line.startswith(" krea_realtime_14b"))
    assert "missing" in krea and "NON-COMMERCIAL" in krea
    models = lines[lines.index(next(x for x in lines if x.startswith("zoo models"))) + 1:]
    assert models[0].split()[:3] == ["longlive", "(default)", "2"]  # base and LoRA missing
    assert next(m for m in models if m.startswith("  self-forcing")).split()[1] == "ready"

    assert main(["models", "list", "self-forcing"]) == 0
    listed = [line.split()[0].lstrip("*") for line in capsys.readouterr().out.splitlines()[2:-1]]
    assert listed == catalog.model_keys(zoo.recipe("self-forcing"))


def test_an_unknown_name_lists_models_and_files(dirs, capsys):  # noqa: F811
    assert main(["models", "verify", "krea"]) == 2
    err = capsys.readouterr().err
    assert "unknown model or file 'krea'" in err and "krea-realtime" in err
    assert "krea_realtime_14b" in err and "\n" not in err.strip()


def test_a_catalogue_key_and_a_model_together_pull_each_file_once(dirs, capsys):  # noqa: F811
    assert main(["models", "pull", "wan_vae", "longlive"]) == 2
    out = capsys.readouterr().out
    assert out.count("wan_vae") == 1


def test_the_docs_list_each_model(capsys):
    """docs/models.md has a section per zoo model (`### name`) and its generated tables."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    for name in zoo.RECIPES:
        assert f"\n### `{name}`" in text, name
