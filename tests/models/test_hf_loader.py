"""HF directory loading: configs (v5 and legacy), name/layout mapping, sharding, clear errors."""

from __future__ import annotations

import json
import os
import shutil

import chex
import numpy as np
import pytest
from conftest import TINY_KINDS, make_tiny_hf_model

from spgg_jax.models import decoder as D
from spgg_jax.models.config import ModelConfig, RopeConfig
from spgg_jax.models.shapes import SHAPES, get_shape
from spgg_jax.models.weights.hf import (
    SafetensorsDir,
    hf_state_dict_from_params,
    load_hf_dir,
    params_from_hf_state_dict,
)


def _state(path):
    return {k: np.asarray(v) for k, v in SafetensorsDir(path).items()}


# ---------------------------------------------------------------------------------- configs
@pytest.mark.torch
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_config_object_and_json_agree(tiny_hf, kind):
    m = tiny_hf(kind)
    with open(os.path.join(m.path, "config.json")) as fh:
        raw = json.load(fh)
    from_obj = ModelConfig.from_hf_config(m.torch_model.config)
    assert from_obj == ModelConfig.from_hf_config(raw)
    assert hash(from_obj) == hash(ModelConfig.from_hf_config(raw))
    # Our config survives a round trip through the HF config.json layout.
    assert ModelConfig.from_hf_config(from_obj.to_hf_config()) == from_obj


def test_legacy_llama_rope_fields():
    legacy = dict(
        model_type="llama", vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
        num_attention_heads=2, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192),
    )
    v5 = {k: v for k, v in legacy.items() if k not in ("rope_theta", "rope_scaling")}
    v5["rope_parameters"] = {**legacy["rope_scaling"], "rope_theta": 500000.0}
    a, b = ModelConfig.from_hf_config(legacy), ModelConfig.from_hf_config(v5)
    assert a == b
    assert a.rope == RopeConfig(theta=500000.0, rope_type="llama3", factor=8.0,
                                original_max_position_embeddings=8192)
    assert a.n_kv_heads == 2 and a.head_dim == 4


def test_legacy_gemma3_fields_match_transformers():
    import transformers

    legacy = dict(
        model_type="gemma3_text", vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=8,
        num_attention_heads=2, num_key_value_heads=1, head_dim=4, sliding_window=3,
        sliding_window_pattern=4, rope_theta=123456.0, rope_local_base_freq=777.0, query_pre_attn_scalar=4,
        max_position_embeddings=64, bos_token_id=2, eos_token_id=1, pad_token_id=0,
    )
    ours = ModelConfig.from_hf_config(legacy)
    assert ours.windows == (3, 3, 3, 0, 3, 3, 3, 0)
    assert ours.rope.theta == 123456.0 and ours.rope_local.theta == 777.0
    # transformers parses the same legacy dict into the v5 layout; both must agree.
    hf = transformers.Gemma3TextConfig(**{k: v for k, v in legacy.items() if k != "model_type"})
    assert ModelConfig.from_hf_config(hf) == ours
    table = ours.rope_table()
    np.testing.assert_allclose(table[0], RopeConfig(theta=777.0).inv_freq(4))
    np.testing.assert_allclose(table[3], RopeConfig(theta=123456.0).inv_freq(4))


def test_unknown_model_type_lists_supported():
    with pytest.raises(ValueError, match=r"model_type='mamba'.*supported model types: .*gemma3_text.*llama.*qwen3"):
        ModelConfig.from_hf_config({"model_type": "mamba", "architectures": ["MambaForCausalLM"]})
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(family="llama", vocab_size=8, d_model=8, n_layers=1, n_heads=3, n_kv_heads=2, head_dim=4, d_ff=8)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SHAPES.names()))
def test_named_shapes_match_transformers_param_count(name):
    """Each named shape builds (on torch's meta device) an HF model with the same parameter count."""
    import torch
    import transformers

    cfg = get_shape(name)
    hf_cfg = transformers.AutoConfig.for_model(**cfg.to_hf_config())
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_cfg)
    n_hf = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    assert D.count_params(D.param_shapes(cfg)) == n_hf


# ---------------------------------------------------------------------------------- weights
@pytest.mark.torch
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_state_dict_round_trip(tiny_hf, kind):
    """HF tensors -> params -> HF tensors reproduces the saved checkpoint exactly."""
    m = tiny_hf(kind)
    cfg, params = load_hf_dir(m.path)
    chex.assert_trees_all_equal_shapes(params, D.param_shapes(cfg))
    back = hf_state_dict_from_params(cfg, params)
    saved = _state(m.path)
    assert set(back) == set(saved)
    for k in saved:
        np.testing.assert_array_equal(back[k], saved[k], err_msg=k)


@pytest.mark.torch
def test_sharded_checkpoint_loads(tmp_path, tiny_hf):
    m = make_tiny_hf_model("qwen2", os.fspath(tmp_path / "sharded"), max_shard_size="40KB")
    files = [f for f in os.listdir(m.path) if f.endswith(".safetensors")]
    assert len(files) > 1 and os.path.exists(os.path.join(m.path, "model.safetensors.index.json"))
    cfg, params = load_hf_dir(m.path)
    cfg1, params1 = load_hf_dir(tiny_hf("qwen2").path)  # same seed, single file
    assert cfg == cfg1
    chex.assert_trees_all_equal(params, params1)


@pytest.mark.torch
def test_bfloat16_load(tiny_hf):
    import jax.numpy as jnp

    cfg, params = load_hf_dir(tiny_hf("qwen3").path, dtype="bfloat16")
    assert cfg.dtype == cfg.param_dtype == "bfloat16"
    assert {x.dtype for x in __import__("jax").tree_util.tree_leaves(params)} == {jnp.dtype("bfloat16")}


@pytest.mark.torch
def test_missing_misshaped_and_extra_tensors_are_named(tiny_hf):
    m = tiny_hf("llama_gqa_llama3")
    cfg, _ = load_hf_dir(m.path)
    state = _state(m.path)
    bad = dict(state)
    del bad["model.layers.1.self_attn.k_proj.weight"]
    with pytest.raises(ValueError, match=r"missing tensors: model\.layers\.1\.self_attn\.k_proj\.weight"):
        params_from_hf_state_dict(cfg, bad)
    bad = dict(state)
    bad["model.layers.0.mlp.up_proj.weight"] = np.zeros((5, 64), np.float32)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.up_proj\.weight: expected shape \(128, 64\), found \(5, 64\)"):
        params_from_hf_state_dict(cfg, bad)
    bad = dict(state)
    bad["model.layers.0.self_attn.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"unexpected tensors: model\.layers\.0\.self_attn\.extra\.weight"):
        params_from_hf_state_dict(cfg, bad)
    with pytest.warns(UserWarning, match="ignoring unexpected tensors"):
        params_from_hf_state_dict(cfg, bad, strict=False, device_put=False)


@pytest.mark.torch
def test_unprefixed_names_buffers_and_tied_head(tiny_hf):
    """Old GPT-2 checkpoints: no ``transformer.`` prefix, ``attn.bias`` buffers, a redundant lm_head."""
    m = tiny_hf("gpt2")
    cfg, params = load_hf_dir(m.path)
    state = {k.removeprefix("transformer."): v for k, v in _state(m.path).items()}
    state["h.0.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), np.float32))
    state["lm_head.weight"] = state["wte.weight"]
    chex.assert_trees_all_equal(params_from_hf_state_dict(cfg, state), params)


def test_not_a_model_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_hf_dir(tmp_path)
    shutil.copy(__file__, tmp_path / "x.py")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1, "vocab_size": 5}))
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
        load_hf_dir(tmp_path)
