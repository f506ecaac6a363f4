"""UMT5 text encoder: every loader's key conversion checked against Wan's T5 maths, padding as
Wan does it, fp8 files, wrong files, and prompt embeddings computed off the caller's thread."""

from __future__ import annotations

import threading

import pytest
import torch
from codec_support import TEXT_LEN, TINY, HeldEncoder, tiny_encoder, wan_t5_reference
from safetensors.torch import save_file

from livevace.errors import ModelError
from livevace.models.wan.text import Fp8Linear, WanTextEncoder, clean_text, convert_wan_t5_keys, load_umt5, umt5_config
from livevace.pipelines.vace.embeddings import PromptEmbeddings

PROMPTS = ["a neon city at night", "slow motion smoke, red and blue light in the rain on the street"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    encoder, sd = tiny_encoder(folder)
    return folder, encoder, sd


def reference(encoder: WanTextEncoder, sd: dict[str, torch.Tensor], texts: list[str]) -> torch.Tensor:
    tok = encoder.tokenizer(texts, padding="max_length", truncation=True, max_length=TEXT_LEN, return_tensors="pt")
    return wan_t5_reference(sd, tok.input_ids, tok.attention_mask)


def test_original_layout_equals_wan_maths(tiny):
    _, encoder, sd = tiny
    emb, lengths = encoder.encode(PROMPTS)
    assert emb.shape == (2, TEXT_LEN, TINY["d_model"])
    assert lengths[0] < lengths[1] == TEXT_LEN  # the long prompt is truncated, the short one padded
    assert emb[0, lengths[0]:].abs().sum() == 0 and emb[0, : lengths[0]].abs().min(1).values.gt(0).all()
    torch.testing.assert_close(emb, reference(encoder, sd, PROMPTS), rtol=1e-4, atol=1e-5)


def test_key_conversion_is_complete(tiny):
    _, encoder, sd = tiny
    converted = convert_wan_t5_keys(sd)
    assert set(converted) == set(encoder.model.state_dict()) - {"encoder.embed_tokens.weight"}


def test_diffusers_folder(tiny, tmp_path):
    _, encoder, sd = tiny
    encoder.model.save_pretrained(tmp_path / "text_encoder")
    model = load_umt5(tmp_path / "text_encoder", dtype=torch.float32)
    emb, _ = WanTextEncoder(model, encoder.tokenizer, TEXT_LEN).encode(PROMPTS)
    torch.testing.assert_close(emb, reference(encoder, sd, PROMPTS), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("keep_fp8", [False, True])
def test_fp8_files(tiny, tmp_path, keep_fp8):
    _, encoder, sd = tiny
    config = umt5_config(vocab_size=encoder.model.config.vocab_size, **TINY)
    fp8 = {k: v.to(torch.float8_e4m3fn) for k, v in sd.items()}  # Kijai's file: Wan names, fp8
    save_file(fp8, tmp_path / "umt5-xxl-enc-fp8_e4m3fn.safetensors")
    model = load_umt5(tmp_path / "umt5-xxl-enc-fp8_e4m3fn.safetensors", dtype=torch.float32, config=config,
                      keep_fp8=keep_fp8)
    assert any(isinstance(m, Fp8Linear) for m in model.modules()) == keep_fp8
    emb, _ = WanTextEncoder(model, encoder.tokenizer, TEXT_LEN).encode(PROMPTS)
    dequantized = {k: v.float() for k, v in fp8.items()}
    torch.testing.assert_close(emb, reference(encoder, dequantized, PROMPTS), rtol=1e-4, atol=1e-5)


def test_scaled_fp8_transformers_names(tiny, tmp_path):
    """ComfyUI's scaled fp8: transformers names, per-tensor `.scale_weight`, a marker key."""
    _, encoder, sd = tiny
    hf = convert_wan_t5_keys(sd)
    scaled, effective = {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}, dict(sd)
    for key, v in hf.items():
        if ".block." in key and v.dim() == 2 and "relative_attention_bias" not in key:
            scale = v.abs().max() / 448
            scaled[key] = (v / scale).to(torch.float8_e4m3fn)
            scaled[key.removesuffix("weight") + "scale_weight"] = scale.reshape(1)
        else:
            scaled[key] = v
    for wan_key, hf_key in zip(sd, hf):
        if hf_key.removesuffix("weight") + "scale_weight" in scaled:
            effective[wan_key] = scaled[hf_key].float() * scaled[hf_key.removesuffix("weight") + "scale_weight"]
    save_file(scaled, tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    config = umt5_config(vocab_size=encoder.model.config.vocab_size, **TINY)
    for keep in (False, True):
        model = load_umt5(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", dtype=torch.float32, config=config,
                          keep_fp8=keep)
        emb, _ = WanTextEncoder(model, encoder.tokenizer, TEXT_LEN).encode(PROMPTS)
        torch.testing.assert_close(emb, reference(encoder, effective, PROMPTS), rtol=1e-4, atol=1e-5)


def test_wrong_files_rejected(tiny, tmp_path):
    folder, encoder, _ = tiny
    with pytest.raises(ModelError, match="does not exist"):
        load_umt5(tmp_path / "nothing.pth")
    torch.save({"decoder.middle.0.residual.0.gamma": torch.ones(4)}, tmp_path / "Wan2.1_VAE.pth")
    with pytest.raises(ModelError, match="is not a UMT5-XXL encoder.*missing"):
        load_umt5(tmp_path / "Wan2.1_VAE.pth")
    with pytest.raises(ModelError, match="wrong shape: shared.weight"):  # tiny file, real-size model
        load_umt5(folder / "models_t5_umt5-xxl-enc-bf16.pth")


def test_clean_text():
    assert clean_text("  a  neon&amp;amp;city \n at night ") == "a neon&city at night"


def test_prompt_embeddings_off_thread_and_cached(tiny):
    _, encoder, sd = tiny
    held = HeldEncoder(encoder)
    held.release.clear()
    prompts = PromptEmbeddings(held)
    try:
        fut = prompts.request(PROMPTS[0])
        assert not fut.done()  # the caller got control back while the encoder works
        held.release.set()
        emb = fut.result(10)
        assert held.calls[0][1] is not threading.current_thread()
        full = reference(encoder, sd, PROMPTS[:1])[0]
        n = emb.shape[0]
        assert full[n:].abs().sum() == 0 and full[n - 1].abs().sum() > 0  # trimmed to its tokens
        torch.testing.assert_close(emb, full[:n], rtol=1e-4, atol=1e-5)
        assert prompts.request(PROMPTS[0]) is fut and len(held.calls) == 1  # cached: encoded once
    finally:
        prompts.close()
