"""GGUF -> HF conversion on tiny synthetic GGUF files (no network, a few seconds).

``write_synthetic_gguf`` stores weights that F16 and Q8_0 represent exactly, so the converted
tensors must equal the HF-layout source tensors bit for bit; a missing q/k un-permutation, a wrong
name, a missing ``- 1`` on Gemma norms or a transposed layout all fail these tests.
"""

from __future__ import annotations

import json
import os

import chex
import numpy as np
import pytest
from safetensors.numpy import load_file

from spgg_jax.models.weights.gguf import (
    SUPPORTED_ARCHITECTURES,
    GGUFConversionError,
    convert_gguf_to_hf_dir,
    hf_tensor_name,
    load_gguf,
    permute_qk,
    unpermute_qk,
    write_synthetic_gguf,
)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf_llama")
    src = d / "tiny.gguf"
    hf = write_synthetic_gguf(src, "llama", n_heads=4, n_kv_heads=2, head_dim=16, tied=False)
    out = convert_gguf_to_hf_dir(src, d / "hf")
    return src, out, hf


def test_llama_roundtrip_bit_exact(tiny_llama):
    _, out, expected = tiny_llama
    got = load_file(os.path.join(out, "model.safetensors"))
    assert sorted(got) == sorted(expected)
    for name, want in expected.items():
        assert got[name].dtype == np.float32, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_llama_qk_really_permuted_in_file(tiny_llama):
    """The file stores permuted q/k rows; reading them without un-permuting would differ."""
    import gguf

    src, _, expected = tiny_llama
    reader = gguf.GGUFReader(str(src))
    raw = {t.name: t for t in reader.tensors}
    from spgg_jax.models.weights.gguf import _dequantize

    stored_q = _dequantize(raw["blk.0.attn_q.weight"])
    hf_q = expected["model.layers.0.self_attn.q_proj.weight"]
    assert not np.array_equal(stored_q, hf_q)
    np.testing.assert_array_equal(unpermute_qk(stored_q, 4), hf_q)
    stored_k = _dequantize(raw["blk.1.attn_k.weight"])
    np.testing.assert_array_equal(unpermute_qk(stored_k, 2), expected["model.layers.1.self_attn.k_proj.weight"])


def test_llama_config(tiny_llama):
    _, out, _ = tiny_llama
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (64, 2, 4, 2)
    assert cfg["head_dim"] == 16 and cfg["intermediate_size"] == 96 and cfg["vocab_size"] == 263
    assert cfg["tie_word_embeddings"] is False
    assert cfg["rope_parameters"]["rope_theta"] == pytest.approx(10000.0)
    assert cfg["rms_norm_eps"] == pytest.approx(1e-5)
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 0)


def test_llama_loads_through_hf_loader(tiny_llama):
    """The converted directory is a valid input of the decoder's HF loader (names and layouts)."""
    from spgg_jax.models.weights.hf import load_hf_dir

    _, out, expected = tiny_llama
    cfg, params = load_hf_dir(out)
    assert cfg.family == "llama" and not cfg.tie_embeddings and cfg.n_kv_heads == 2
    chex.assert_trees_all_equal(np.asarray(params["embed"]), expected["model.embed_tokens.weight"])
    q = np.asarray(params["layers"]["attn"]["q_proj_kernel"][1])  # [D, H, Hd]
    np.testing.assert_array_equal(q.reshape(64, -1).T, expected["model.layers.1.self_attn.q_proj.weight"])


def test_tied_head_when_output_absent(tmp_path):
    src = tmp_path / "tied.gguf"
    expected = write_synthetic_gguf(src, "llama", tied=True, tokenizer=False, vocab_size=64)
    cfg, tensors, _ = load_gguf(src)
    assert cfg["tie_word_embeddings"] is True and "lm_head.weight" not in tensors
    assert cfg["vocab_size"] == 64
    assert sorted(tensors) == sorted(expected)


def test_gemma3_roundtrip_norms_minus_one_and_no_permutation(tmp_path):
    src = tmp_path / "g.gguf"
    expected = write_synthetic_gguf(src, "gemma3", n_layers=6, n_heads=2, n_kv_heads=1, head_dim=32,
                                    tokenizer=False, vocab_size=64)
    cfg, tensors, _ = load_gguf(src)
    assert sorted(tensors) == sorted(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(tensors[name], want, err_msg=name)
    assert cfg["model_type"] == "gemma3_text" and cfg["query_pre_attn_scalar"] == 32
    assert cfg["layer_types"] == ["sliding_attention"] * 5 + ["full_attention"]
    assert cfg["sliding_window"] == 8
    assert cfg["rope_parameters"]["full_attention"]["rope_theta"] == pytest.approx(1e6)
    assert cfg["rope_parameters"]["sliding_attention"]["rope_theta"] == pytest.approx(1e4)
    assert cfg["vocab_size"] == 64 and cfg["tie_word_embeddings"] is True


def test_permute_unpermute_inverse():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3 * 8, 5)).astype(np.float32)
    p = permute_qk(w, 3)
    assert not np.array_equal(p, w)
    np.testing.assert_array_equal(unpermute_qk(p, 3), w)
    with pytest.raises(GGUFConversionError, match="cannot be split"):
        unpermute_qk(w, 5)


def test_tensor_names():
    assert hf_tensor_name("blk.12.attn_output.weight", "llama") == "model.layers.12.self_attn.o_proj.weight"
    assert hf_tensor_name("blk.0.ffn_norm.weight", "llama") == "model.layers.0.post_attention_layernorm.weight"
    assert hf_tensor_name("blk.0.ffn_norm.weight", "gemma3") == "model.layers.0.pre_feedforward_layernorm.weight"
    assert hf_tensor_name("output.weight", "gemma3") == "lm_head.weight"
    with pytest.raises(GGUFConversionError, match="attn_q_norm"):
        hf_tensor_name("blk.0.attn_q_norm.weight", "llama")


def test_unsupported_architecture(tmp_path):
    src = tmp_path / "m.gguf"
    write_synthetic_gguf(src, "mamba", tokenizer=False)
    with pytest.raises(GGUFConversionError, match="unsupported GGUF architecture 'mamba'") as err:
        convert_gguf_to_hf_dir(src, tmp_path / "out")
    for arch in SUPPORTED_ARCHITECTURES:
        assert arch in str(err.value)
    assert not (tmp_path / "out").exists()


def test_unsupported_tensor_type(tmp_path):
    src = tmp_path / "i8.gguf"
    write_synthetic_gguf(src, "llama", tokenizer=False, tensor_types={"blk.0.ffn_up.weight": "I8"})
    with pytest.raises(GGUFConversionError, match=r"blk\.0\.ffn_up\.weight.*I8.*supported types: .*Q4_K"):
        load_gguf(src)


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(GGUFConversionError, match="not a readable GGUF"):
        load_gguf(bad)
    with pytest.raises(FileNotFoundError):
        load_gguf(tmp_path / "missing.gguf")


def test_existing_output_dir_needs_overwrite(tiny_llama, tmp_path):
    src, _, _ = tiny_llama
    (tmp_path / "o").mkdir()
    with pytest.raises(FileExistsError):
        convert_gguf_to_hf_dir(src, tmp_path / "o", tokenizer=False)
    out = convert_gguf_to_hf_dir(src, tmp_path / "o", tokenizer=False, overwrite=True)
    assert (out / "model.safetensors").is_file() and not (out / "tokenizer.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no temporary directory left behind


@pytest.mark.torch
def test_matches_transformers_gguf_loader(tiny_llama):
    """transformers' own GGUF loader reads the same tensors and config from the synthetic file."""
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    from transformers import AutoModelForCausalLM

    src, out, _ = tiny_llama
    ref = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name)
    ours = load_file(os.path.join(out, "model.safetensors"))
    ref_sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    assert sorted(ref_sd) == sorted(ours)
    for k, v in ours.items():
        np.testing.assert_array_equal(v, ref_sd[k], err_msg=k)
    cfg = json.loads((out / "config.json").read_text())
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "tie_word_embeddings"):
        assert getattr(ref.config, key) == cfg[key], key
