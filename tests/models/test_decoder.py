"""Parity of the Flax decoder with PyTorch transformers, padding, KV-cache decode and scan structure."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_KINDS, VOCAB, torch_logits

from spgg_jax.models import decoder as D
from spgg_jax.models.config import ModelConfig
from spgg_jax.models.generate import greedy_generate
from spgg_jax.models.weights.hf import load_hf_dir

# float32 on CPU: our logits agree with PyTorch to ~2e-6; 1e-4 leaves room for op-order differences.
ATOL = 1e-4

_apply = jax.jit(D.apply, static_argnums=1)


def _tokens(b: int, t: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, VOCAB, (b, t)).astype(np.int32)


def _run(params, cfg, tokens, mask, cache=None):
    mask = jnp.asarray(mask, bool)
    return _apply(params, cfg, jnp.asarray(tokens), D.positions_from_mask(mask), mask, cache)


@pytest.fixture(scope="module")
def loaded(tiny_hf):
    cache = {}

    def get(kind):
        if kind not in cache:
            m = tiny_hf(kind)
            cfg, params = load_hf_dir(m.path)
            cache[kind] = (m, cfg, params)
        return cache[kind]

    return get


@pytest.mark.torch
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_logits_match_transformers(loaded, kind):
    m, cfg, params = loaded(kind)
    toks = _tokens(2, 12)
    ours, cache = _run(params, cfg, toks, np.ones_like(toks, bool))
    assert cache is None
    ref = torch_logits(m.torch_model, toks)
    chex.assert_shape(ours, (2, 12, VOCAB))
    np.testing.assert_allclose(np.asarray(ours), ref, atol=ATOL, rtol=0)


@pytest.mark.torch
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_left_padding_matches_unpadded_rows(loaded, kind):
    """Row 1 is 7 real tokens left-padded to 12 with junk ids; its logits equal the row alone."""
    m, cfg, params = loaded(kind)
    toks = _tokens(2, 12, seed=1)
    mask = np.ones_like(toks, bool)
    mask[1, :5] = False
    ours = np.asarray(_run(params, cfg, toks, mask)[0])
    np.testing.assert_allclose(ours[0], torch_logits(m.torch_model, toks[:1])[0], atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours[1, 5:], torch_logits(m.torch_model, toks[1:, 5:])[0], atol=ATOL, rtol=0)


@pytest.mark.torch
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_cached_decode_matches_full_forward(loaded, kind):
    """Prefill 6 tokens (left-padded batch) then decode 6 one at a time == one full pass."""
    _, cfg, params = loaded(kind)
    toks = _tokens(2, 12, seed=2)
    mask = np.ones_like(toks, bool)
    mask[1, :3] = False
    full = np.asarray(_run(params, cfg, toks, mask)[0])
    pos = np.asarray(D.positions_from_mask(jnp.asarray(mask)))
    cache = D.init_cache(cfg, 2, 16)
    p = 6
    logits, cache = _apply(params, cfg, jnp.asarray(toks[:, :p]), jnp.asarray(pos[:, :p]),
                           jnp.asarray(mask[:, :p]), cache)
    steps = [np.asarray(logits)]
    for t in range(p, 12):
        logits, cache = _apply(params, cfg, jnp.asarray(toks[:, t:t + 1]), jnp.asarray(pos[:, t:t + 1]),
                               jnp.asarray(mask[:, t:t + 1]), cache)
        steps.append(np.asarray(logits))
    assert int(cache.index) == 12
    np.testing.assert_array_equal(np.asarray(cache.mask)[:, :12], mask)
    assert not np.asarray(cache.mask)[:, 12:].any()
    cached = np.concatenate(steps, axis=1)
    np.testing.assert_allclose(cached[mask], full[mask], atol=ATOL, rtol=0)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["llama_gqa_llama3", "gemma3"])
def test_greedy_generate_matches_transformers(loaded, kind):
    import torch

    m, cfg, params = loaded(kind)
    toks = _tokens(2, 5, seed=3)
    with torch.no_grad():
        ref = m.torch_model.generate(
            torch.as_tensor(toks, dtype=torch.long), attention_mask=torch.ones(toks.shape, dtype=torch.long),
            do_sample=False, max_new_tokens=7, eos_token_id=None, pad_token_id=0,
        ).numpy()[:, 5:]
    ours = greedy_generate(params, cfg, jnp.asarray(toks), jnp.ones(toks.shape, bool), 7, eos_ids=())
    chex.assert_shape(ours, (2, 7))
    np.testing.assert_array_equal(np.asarray(ours), ref)


@pytest.mark.torch
def test_greedy_generate_padding_and_eos(loaded):
    _, cfg, params = loaded("qwen2")
    toks = _tokens(2, 6, seed=4)
    mask = np.ones_like(toks, bool)
    mask[1, :2] = False
    batch = np.asarray(greedy_generate(params, cfg, jnp.asarray(toks), jnp.asarray(mask), 6, eos_ids=()))
    alone = np.asarray(greedy_generate(params, cfg, jnp.asarray(toks[1:, 2:]), jnp.ones((1, 4), bool), 6, eos_ids=()))
    np.testing.assert_array_equal(batch[1], alone[0])
    # Stop row 0 at its third token: that token is kept, the rest is padding (-1 marks pad here).
    eos = int(batch[0, 2])
    first = int(np.argmax(batch[0] == eos))
    stopped = np.asarray(greedy_generate(params, cfg, jnp.asarray(toks), jnp.asarray(mask), 6, eos_ids=(eos,), pad_id=-1))
    np.testing.assert_array_equal(stopped[0, : first + 1], batch[0, : first + 1])
    assert (stopped[0, first + 1:] == -1).all()


def _tiny_cfg(n_layers: int, **kw) -> ModelConfig:
    return ModelConfig(family="llama", vocab_size=32, d_model=16, n_layers=n_layers, n_heads=2,
                       n_kv_heads=1, head_dim=8, d_ff=32, **kw)


def test_layers_are_scanned_not_unrolled():
    """The traced program has the same number of top-level equations for 2 and 8 layers."""
    toks = jnp.zeros((1, 4), jnp.int32)
    mask = jnp.ones((1, 4), bool)
    sizes = []
    for n in (2, 8):
        cfg = _tiny_cfg(n)
        params = D.param_shapes(cfg)
        jaxpr = jax.make_jaxpr(lambda p, cfg=cfg: D.apply(p, cfg, toks, D.positions_from_mask(mask), mask)[0])(params)
        sizes.append(len(jaxpr.jaxpr.eqns))
        assert any(e.primitive.name == "scan" for e in jaxpr.jaxpr.eqns)
    assert sizes[0] == sizes[1]


def test_logical_axes_tree_matches_params():
    cfg = _tiny_cfg(3, qkv_bias=True, qk_norm=True)
    shapes = D.param_shapes(cfg)
    specs = D.param_logical_axes(cfg)
    allowed = {"vocab", "embed", "heads", "kv_heads", "head_dim", "mlp", "layers", None}
    flat_shapes = jax.tree_util.tree_leaves_with_path(shapes)
    flat_specs = jax.tree_util.tree_leaves(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    assert len(flat_shapes) == len(flat_specs)
    for (path, s), spec in zip(flat_shapes, flat_specs):
        assert len(spec) == len(s.shape), (path, spec, s.shape)
        assert set(spec) <= allowed, spec
        if "layers" in jax.tree_util.keystr(path):
            assert spec[0] == "layers" and s.shape[0] == 3
    assert specs["layers"]["attn"]["k_proj_kernel"] == jax.sharding.PartitionSpec("layers", "embed", "kv_heads", "head_dim")


def test_init_params_plain_arrays_and_count():
    cfg = _tiny_cfg(2)
    params = D.init_params(cfg, jax.random.PRNGKey(0))
    leaves = jax.tree_util.tree_leaves(params)
    assert all(isinstance(x, jax.Array) for x in leaves)
    assert D.count_params(params) == D.count_params(D.param_shapes(cfg)) == sum(x.size for x in leaves)


def test_remat_and_bf16_paths():
    cfg = _tiny_cfg(2)
    params = D.init_params(cfg, jax.random.PRNGKey(1))
    toks = jnp.asarray(_tokens(2, 6) % 32)
    mask = jnp.ones(toks.shape, bool)
    pos = D.positions_from_mask(mask)

    def loss(p, c):
        return D.apply(p, c, toks, pos, mask)[0].sum()

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    g1 = grad(params, cfg)
    g2 = grad(params, cfg.replace(remat=True))
    chex.assert_trees_all_close(g1, g2, atol=1e-5)
    lo32 = _apply(params, cfg, toks, pos, mask)[0]
    cfg16 = cfg.replace(dtype="bfloat16", param_dtype="bfloat16")
    p16 = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), params)
    lo16, _ = _apply(p16, cfg16, toks, pos, mask)
    assert lo16.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lo16), np.asarray(lo32), atol=0.02)


def test_forward_input_validation():
    cfg = _tiny_cfg(2)
    params = D.param_shapes(cfg)
    toks = jnp.zeros((2, 4), jnp.int32)
    with pytest.raises(ValueError, match="must match"):
        D.forward(params, cfg, toks, jnp.zeros((2, 3), jnp.int32), jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match="do not fit"):
        D.forward(params, cfg, toks, toks, jnp.ones((2, 4), bool), D.init_cache(cfg, 2, 3))


@pytest.mark.torch
def test_learned_positions_past_n_positions_raise(loaded):
    """GPT-2 (n_positions=64): 64 tokens run, 65 raise a clear error instead of NaN logits."""
    m, cfg, params = loaded("gpt2")
    assert cfg.learned_positions and cfg.max_position_embeddings == 64
    ok, _ = _run(params, cfg, _tokens(1, 64), np.ones((1, 64), bool))
    assert np.isfinite(np.asarray(ok)).all()
    with pytest.raises(ValueError, match=r"65 positions \(tokens\) exceed the model's 64 learned position"):
        _run(params, cfg, _tokens(1, 65), np.ones((1, 65), bool))
    toks = jnp.asarray(_tokens(1, 4))
    with pytest.raises(ValueError, match=r"position 66 is past the model's 64 learned position"):
        D.forward(params, cfg, toks, jnp.arange(63, 67, dtype=jnp.int32)[None], jnp.ones((1, 4), bool))
    with pytest.raises(ValueError, match=r"70 positions \(cache slots\) exceed"):
        D.forward(params, cfg, toks, jnp.zeros((1, 4), jnp.int32), jnp.ones((1, 4), bool), D.init_cache(cfg, 1, 70))


@pytest.mark.torch
def test_gemma3_attn_logit_softcapping_matches_transformers(tmp_path):
    """transformers' Gemma 3 ignores attn_logit_softcapping; with it set, logits still match."""
    import conftest

    cls, model_cls, kw = conftest.TINY_SPECS["gemma3"]
    conftest.TINY_SPECS["gemma3_softcap"] = (cls, model_cls, dict(kw, attn_logit_softcapping=1.0))
    try:
        m = conftest.make_tiny_hf_model("gemma3_softcap", str(tmp_path))
    finally:
        del conftest.TINY_SPECS["gemma3_softcap"]
    cfg, params = load_hf_dir(m.path)
    assert cfg.attn_logit_softcap is None
    toks = _tokens(2, 12)
    ours, _ = _run(params, cfg, toks, np.ones_like(toks, bool))
    np.testing.assert_allclose(np.asarray(ours), torch_logits(m.torch_model, toks), atol=ATOL, rtol=0)


def test_decoder_pieces_compose_to_forward():
    """embed -> run_layers over consecutive ranges -> final_hidden equals forward, and
    forward_capturing (with and without a KV cache) equals forward and captures the residual stream
    entering its layer. Per-layer windows and RoPE bases make a wrongly offset range visible."""
    from spgg_jax.models.config import RopeConfig

    cfg = _tiny_cfg(4, layer_windows=(3, 0, 3, 0), rope_local=RopeConfig(theta=100.0))
    params = D.init_params(cfg, jax.random.PRNGKey(2))
    toks = jnp.asarray(_tokens(2, 7, seed=3) % 32)
    mask = jnp.asarray(np.arange(7)[None, :] >= np.array([[0], [2]]))  # row 1 left-padded
    pos = D.positions_from_mask(mask)
    want, _ = D.forward(params, cfg, toks, pos, mask)
    x0 = D.embed(params, cfg, toks, pos)
    for cut in (0, 1, 3, 4):
        lower = D.run_layers(D.layer_slice(params, 0, cut), cfg, x0, pos, mask, 0, cut)
        upper = D.run_layers(D.layer_slice(params, cut), cfg, lower, pos, mask, cut, 4)
        np.testing.assert_allclose(D.final_hidden(params, cfg, upper), want, atol=1e-6, rtol=0)
        hidden, cache, captured = D.forward_capturing(params, cfg, toks, pos, mask, None, cut)
        assert cache is None
        np.testing.assert_allclose(hidden, want, atol=1e-6, rtol=0)
        np.testing.assert_allclose(captured, lower, atol=1e-6, rtol=0)
    # a wrong offset (layer 1's params run as layer 0: window and RoPE base of layer 0) differs
    wrong = D.run_layers(D.layer_slice(params, 1, 2), cfg, x0, pos, mask, 0, 1)
    right = D.run_layers(D.layer_slice(params, 1, 2), cfg, x0, pos, mask, 1, 2)
    assert float(jnp.max(jnp.abs(wrong - right))) > 1e-4
    # with a cache: the prompt, then one token; hidden states and the cache equal forward's
    c0 = D.init_cache(cfg, 2, 9)
    h_ref, c_ref = D.forward(params, cfg, toks, pos, mask, c0)
    h_cap, c_cap, captured = D.forward_capturing(params, cfg, toks, pos, mask, D.init_cache(cfg, 2, 9), 2)
    np.testing.assert_allclose(h_cap, h_ref, atol=1e-6, rtol=0)
    chex.assert_trees_all_close(c_cap, c_ref, atol=1e-6)
    lower = D.run_layers(D.layer_slice(params, 0, 2), cfg, x0, pos, mask, 0, 2)
    real = np.asarray(mask)[..., None]  # padded slots attend to nothing: what they hold differs, unused
    np.testing.assert_allclose(np.where(real, captured, 0), np.where(real, lower, 0), atol=1e-6, rtol=0)
    nxt, npos, nmask = toks[:, :1], pos[:, -1:] + 1, jnp.ones((2, 1), bool)
    h_ref, _ = D.forward(params, cfg, nxt, npos, nmask, c_ref)
    h_cap, _, _ = D.forward_capturing(params, cfg, nxt, npos, nmask, c_cap, 2)
    np.testing.assert_allclose(h_cap, h_ref, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"layer range \[3, 5\)"):
        D.run_layers(D.layer_slice(params, 3), cfg, x0, pos, mask, 3, 5)
    with pytest.raises(ValueError, match="hold 1 layers for the range"):
        D.run_layers(D.layer_slice(params, 3), cfg, x0, pos, mask, 2, 4)
