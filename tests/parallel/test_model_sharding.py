"""Real decoders (``spgg_jax.models``) under data-, fsdp-, tensor-parallel and mixed layouts on the
8 fake CPU devices: parameters placed by the logical-axis rules are really split where the rules
say, and logits, greedy samples (``Sampler(mesh=...)``, KV cache placed by rules) and one
token-level policy-gradient step (``spgg_jax.rl.learners.token.token_step``) equal the single-device run.

Two tiny models: a Llama with grouped-query attention (8 heads, 2 KV heads, untied head) and a
Qwen3 (4 heads, 2 KV heads, explicit head_dim 32, q/k norms, tied embeddings). With 2 KV heads
on tensor=4/8 (and Qwen3's 4 heads on tensor=8) the divisibility fallback replicates those dims,
so the fallback path is exercised as well as the split one.

Tolerances: float32 throughout. A sharded matmul sums partial products per device and then across
devices (psum), a different order than one device; that moves each op by a few ulps (~1e-7
relative) and, through two layers, logits by up to ~2e-6 (measured: <= 1.6e-6). 1e-5 absolute and
relative leaves ~5x headroom while any placement bug (a dimension split but not gathered, heads
permuted) moves logits by 1e-2 or more.

Run time: the default selection (every layout for logits and placement, the layouts most likely to
break for sampling and the update) takes about a minute on two shared CPU cores; the remaining
combinations are marked ``slow``.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spgg_jax.models import ModelConfig, apply, param_logical_axes, param_shapes, positions_from_mask
from spgg_jax.parallel import (
    DEFAULT_RULES,
    MeshConfig,
    batch_sharding,
    make_mesh,
    replicated_sharding,
    shard_pytree,
    sharding_context,
    tree_shardings,
)
from spgg_jax.parallel.testing import LAYOUTS_8
from spgg_jax.rl.lora import init_lora
from spgg_jax.rl.algorithms import get_algorithm
from spgg_jax.rl.learners.token import token_loss, token_step
from spgg_jax.rl.ppo import make_optimizer
from spgg_jax.sampling import Sampler, SamplingParams, continuation_logprobs

ATOL = RTOL = 1e-5
VOCAB = 256
LAYOUTS: dict[str, MeshConfig] = {**LAYOUTS_8, "fsdp2_tensor4": MeshConfig(data=1, fsdp=2, tensor=4)}
slow = pytest.mark.slow

CONFIGS: dict[str, ModelConfig] = {
    "llama_gqa": ModelConfig.from_hf_config(dict(
        model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=VOCAB, hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
        tie_word_embeddings=False, max_position_embeddings=128, eos_token_id=1, rope_theta=10000.0)),
    "qwen3": ModelConfig.from_hf_config(dict(
        model_type="qwen3", architectures=["Qwen3ForCausalLM"], vocab_size=VOCAB, hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, tie_word_embeddings=True, max_position_embeddings=128, eos_token_id=1)),
}

# Independent statement of DEFAULT_RULES for parameters (used to check the placement, not to make it).
PARAM_RULES = {"embed": "fsdp", "heads": "tensor", "kv_heads": "tensor", "mlp": "tensor", "vocab": "tensor"}

_apply = jax.jit(apply, static_argnums=1)


@functools.lru_cache(maxsize=None)
def model(name: str):
    """(cfg, params): random weights drawn on the host from the parameter shapes (no init compile);
    norm scales 1 + noise so that they matter, every other weight N(0, 0.1^2)."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(0)

    def draw(path, shape):
        noise = rng.normal(0.0, 0.1, shape.shape).astype(np.float32)
        return 1.0 + noise if "norm" in jax.tree_util.keystr(path) else noise

    return cfg, jax.tree_util.tree_map_with_path(draw, param_shapes(cfg))


@functools.lru_cache(maxsize=None)
def logical_axes(name: str):
    return param_logical_axes(CONFIGS[name])


def place(name: str, layout: str):
    """(mesh, params placed by the rules) for one model and layout."""
    cfg, params = model(name)
    mesh = make_mesh(LAYOUTS[layout])
    shardings = tree_shardings(logical_axes(name), mesh, DEFAULT_RULES, shapes=params)
    return mesh, shard_pytree(params, shardings)


def expected_shard_shape(shape, logical, mesh) -> tuple[int, ...]:
    sizes = dict(mesh.shape)
    out = []
    for dim, name in zip(shape, logical):
        n = sizes[PARAM_RULES[name]] if name in PARAM_RULES else 1
        out.append(dim // n if n > 1 and dim % n == 0 else dim)
    return tuple(out)


def batch_inputs():
    """8 rows of 12 tokens, rows 0-3 left-padded by 3 (the padded batch the trainer sees)."""
    tokens = jax.random.randint(jax.random.key(2), (8, 12), 2, VOCAB)
    mask = jnp.ones((8, 12), bool).at[:4, :3].set(False)
    return tokens, positions_from_mask(mask), mask


# ----------------------------------------------------------------------------------------------
# Placement


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_params_sharded_where_rules_say(name, layout):
    cfg, params = model(name)
    mesh, placed = place(name, layout)
    axes = logical_axes(name)
    flat, _ = jax.tree_util.tree_flatten_with_path(placed)
    flat_axes = jax.tree_util.tree_leaves(axes, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    n_split = 0
    for (path, arr), logical in zip(flat, flat_axes):
        want = expected_shard_shape(arr.shape, tuple(logical), mesh)
        shards = arr.addressable_shards
        assert len(shards) == 8
        for s in shards:
            assert s.data.shape == want, f"{jax.tree_util.keystr(path)} {tuple(logical)}: shard {s.data.shape} != {want}"
        n_split += want != arr.shape
    # Values unchanged by placement.
    chex.assert_trees_all_equal(jax.device_get(placed), params)
    if layout == "data":
        assert n_split == 0  # pure data parallel: every parameter replicated
    else:
        # at least the MLP kernels and the embedding table (tensor) or every matrix (fsdp)
        assert n_split >= 4, f"only {n_split} parameters split under {layout}"
    sizes = dict(mesh.shape)
    if sizes["fsdp"] == 8:  # spot check: the embedding table's embed dim split 8 ways
        assert placed["embed"].addressable_shards[0].data.shape == (VOCAB, cfg.d_model // 8)
    if sizes["tensor"] == 8 and name == "llama_gqa":  # 8 heads split, 2 KV heads fall back to replicated
        assert placed["layers"]["attn"]["q_proj_kernel"].addressable_shards[0].data.shape[2] == 1
        assert placed["layers"]["attn"]["k_proj_kernel"].addressable_shards[0].data.shape[2] == 2


# ----------------------------------------------------------------------------------------------
# Logits


@functools.lru_cache(maxsize=None)
def reference_logits(name: str) -> np.ndarray:
    cfg, params = model(name)
    with jax.default_device(jax.devices()[0]):
        return np.asarray(_apply(params, cfg, *batch_inputs())[0])


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_single_device(name, layout):
    cfg, _ = model(name)
    mesh, placed = place(name, layout)
    inputs = shard_pytree(batch_inputs(), batch_sharding(mesh))
    with sharding_context(mesh, DEFAULT_RULES):  # activation constraints active, as in training
        logits = _apply(placed, cfg, *inputs)[0]
    ref = reference_logits(name)
    assert np.abs(ref).max() > 0.1  # not a degenerate all-zero model
    np.testing.assert_allclose(np.asarray(logits), ref, atol=ATOL, rtol=RTOL)


# ----------------------------------------------------------------------------------------------
# Greedy sampling with the KV cache placed by rules

PROMPTS = [list(range(2, 5 + i)) for i in range(8)]  # 3..10 tokens: every row left-padded differently


@functools.lru_cache(maxsize=None)
def reference_samples(name: str):
    cfg, params = model(name)
    out = Sampler(params, cfg).generate(PROMPTS, SamplingParams.greedy(8, 10), stop_tokens=[[]] * 8)
    return np.asarray(out.tokens), np.asarray(out.model_logprobs)


@pytest.mark.parametrize("name, layout", [
    ("llama_gqa", "fsdp"),
    ("llama_gqa", "fsdp2_tensor4"),  # 2 KV heads on tensor=4: cache kv dim falls back to replicated
    pytest.param("qwen3", "tensor", marks=slow),
    pytest.param("llama_gqa", "data", marks=slow),
    pytest.param("llama_gqa", "tensor", marks=slow),
    pytest.param("llama_gqa", "mixed", marks=slow),
    pytest.param("qwen3", "fsdp", marks=slow),
    pytest.param("qwen3", "fsdp2_tensor4", marks=slow),
    pytest.param("qwen3", "mixed", marks=slow),
])
def test_greedy_samples_match_single_device(name, layout):
    cfg, _ = model(name)
    mesh, placed = place(name, layout)
    sampler = Sampler(placed, cfg, mesh=mesh)
    out = sampler.generate(PROMPTS, SamplingParams.greedy(8, 10), stop_tokens=[[]] * 8)
    ref_tokens, ref_lp = reference_samples(name)
    np.testing.assert_array_equal(np.asarray(out.tokens), ref_tokens)
    np.testing.assert_allclose(np.asarray(out.model_logprobs), ref_lp, atol=ATOL, rtol=RTOL)
    # The (reused) cache is split by CACHE_AXES: batch over data*fsdp, KV heads over tensor if divisible.
    [cache] = sampler._caches.values()  # white-box: the sampler keeps one donated cache per shape
    sizes = dict(mesh.shape)
    rows, kv = sizes["data"] * sizes["fsdp"], sizes["tensor"]
    want = list(cache.k.shape)
    want[1] //= rows
    if cfg.n_kv_heads % kv == 0:
        want[3] //= kv
    assert cache.k.addressable_shards[0].data.shape == tuple(want)
    assert cache.mask.addressable_shards[0].data.shape == (8 // rows, cache.mask.shape[1])


# ----------------------------------------------------------------------------------------------
# One token-level policy-gradient step (GRPO loss), full weights or LoRA adapters

LR, GCLIP = 1e-3, 1.0
LORA = (16.0, 4)  # (alpha, rank)


def loss_for(cfg, lora_spec):
    """The token learner's loss for ``cfg`` (GRPO, clip 0.2, KL 0.04, temperature 1)."""
    return functools.partial(token_loss, model_cfg=cfg, lora_spec=lora_spec, loss_fn=get_algorithm("grpo").loss_fn,
                             clip=0.2, kl_coef=0.04, temperature=1.0)


@functools.lru_cache(maxsize=None)
def update_inputs(name: str):
    """(trainable, base, lora_spec, batch d) on the host: full weights for Llama, LoRA for Qwen3."""
    cfg, params = model(name)
    k = jax.random.split(jax.random.key(3), 6)
    b, p, t = 8, 8, 8
    prompt_ids = jax.random.randint(k[0], (b, p), 2, VOCAB)
    prompt_mask = jnp.ones((b, p), bool).at[:3, :2].set(False)
    tokens = jax.random.randint(k[1], (b, t), 2, VOCAB)
    mask = jnp.ones((b, t), bool).at[4:, 5:].set(False)
    lp = continuation_logprobs(params, cfg, prompt_ids, prompt_mask, tokens, mask, 1.0)
    d = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "tokens": tokens, "mask": mask,
         "logp_old": lp + 0.01 * jax.random.normal(k[2], lp.shape) * mask,  # slightly off-policy: ratio != 1
         "adv": jax.random.normal(k[3], (b,)), "ref_lp": lp}
    if name == "qwen3":
        lora = init_lora(k[4], params, rank=LORA[1])
        # B starts at zero (no gradient to A); perturb it so both factors get gradients.
        lora = jax.tree_util.tree_map(lambda x: x + 0.05 * jax.random.normal(k[5], x.shape), lora)
        return lora, params, LORA, d
    return params, None, None, d


@functools.lru_cache(maxsize=None)
def reference_update(name: str):
    """(new trainable, loss, gradient) on one device: the loss and gradient of the same
    ``token_loss``, then the learner's optimizer (clip + Adam) applied on the host. Building the
    reference from the gradient (rather than a second ``token_step`` compile) halves the cost."""
    cfg, _ = model(name)
    trainable, base, lora_spec, d = update_inputs(name)
    with jax.default_device(jax.devices()[0]):
        loss_fn = lambda tr: loss_for(cfg, lora_spec)(tr, base, d)[0]  # noqa: E731
        loss, grad = jax.jit(jax.value_and_grad(loss_fn))(trainable)
        opt = make_optimizer(LR, GCLIP)
        updates, _ = opt.update(grad, opt.init(trainable), trainable)
        new = optax.apply_updates(trainable, updates)
    return jax.device_get(new), float(loss), jax.device_get(grad)


@pytest.mark.parametrize("name, layout", [
    ("llama_gqa", "mixed"),  # full weights: fsdp-sharded gradients and optimizer state
    pytest.param("llama_gqa", "fsdp", marks=slow),
    pytest.param("llama_gqa", "tensor", marks=slow),
    pytest.param("qwen3", "fsdp2_tensor4", marks=slow),  # LoRA adapters on a sharded base
    pytest.param("qwen3", "data", marks=slow),
])
def test_token_update_matches_single_device(name, layout):
    cfg, _ = model(name)
    trainable, base, lora_spec, d = update_inputs(name)
    mesh, placed = place(name, layout)
    if base is None:
        trainable = placed  # full fine-tuning: the trainable weights are the sharded params
    else:
        base, trainable = placed, shard_pytree(trainable, replicated_sharding(mesh))
    d = shard_pytree(d, batch_sharding(mesh))
    with sharding_context(mesh, DEFAULT_RULES):
        tx = make_optimizer(LR, GCLIP)
        opt_state = jax.jit(tx.init)(trainable)
        new, _, metrics = jax.jit(functools.partial(token_step, loss_for(cfg, lora_spec), tx))(trainable, opt_state, base, d)
    new, metrics = jax.device_get(new), jax.device_get(metrics)
    ref_new, ref_loss, ref_grad = reference_update(name)
    np.testing.assert_allclose(metrics["loss"], ref_loss, atol=ATOL, rtol=RTOL)
    assert abs(ref_loss) > 1e-4
    # Adam's first step is -lr * g / (|g| + 1e-8): well conditioned where |g| is far above the
    # float noise of g (~1e-7 here), a sign-like jump of up to 2 * lr where g is noise-sized.
    # So: 1e-5 agreement where |g| > 1e-5 (that must be almost every trained element), and
    # the Adam bound everywhere.
    checked = total = 0
    flat, _ = jax.tree_util.tree_flatten_with_path(new)
    for (path, got), want, g, old in zip(flat, jax.tree_util.tree_leaves(ref_new),
                                         jax.tree_util.tree_leaves(ref_grad), jax.tree_util.tree_leaves(trainable)):
        where = jax.tree_util.keystr(path)
        old = np.asarray(jax.device_get(old))
        assert np.abs(got - old).max() > 0.5 * LR, f"{where} was not updated"
        ok = np.abs(g) > 1e-5
        np.testing.assert_allclose(got[ok], want[ok], atol=ATOL, rtol=RTOL, err_msg=where)
        assert np.abs(got - want).max() <= 2 * LR + ATOL, where
        checked += int(ok.sum())
        total += int((g != 0).sum())
    assert checked >= 0.99 * total, f"only {checked} of {total} trained elements were well conditioned"


# ----------------------------------------------------------------------------------------------
# load_sharded: HF weights straight onto their shardings


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tests.tiny_models import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.mark.parametrize("layout", ["fsdp2_tensor4", "mixed"])
def test_load_sharded_places_each_tensor_on_its_sharding(tiny_dir, layout, monkeypatch):
    from spgg_jax.models import load_hf_dir
    from spgg_jax.parallel import load_sharded

    cfg_ref, ref = load_hf_dir(tiny_dir)
    mesh = make_mesh(LAYOUTS[layout])
    # No whole-array placement anywhere: every shard comes from make_array_from_callback's slices.
    def forbidden(*a, **k):
        raise AssertionError("load_sharded must not device_put whole arrays")
    monkeypatch.setattr(jax, "device_put", forbidden)
    cfg, params = load_sharded(tiny_dir, mesh)
    monkeypatch.undo()
    assert cfg == cfg_ref
    chex.assert_trees_all_equal(jax.device_get(params), jax.device_get(ref))  # bit-identical values
    want = tree_shardings(param_logical_axes(cfg), mesh, shapes=ref)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    flat_axes = jax.tree_util.tree_leaves(param_logical_axes(cfg),
                                         is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    for (path, arr), w, logical in zip(flat, jax.tree_util.tree_leaves(want), flat_axes):
        assert arr.sharding == w, jax.tree_util.keystr(path)
        assert arr.addressable_shards[0].data.shape == expected_shard_shape(arr.shape, tuple(logical), mesh)
    # the tiny model: d=32 over fsdp=2, d_ff=64 over tensor, 4 heads over tensor, vocab 100 over tensor=2/4
    sizes = dict(mesh.shape)
    up = params["layers"]["mlp"]["up_proj_kernel"]
    assert up.addressable_shards[0].data.shape == (2, 32 // sizes["fsdp"], 64 // sizes["tensor"])


def test_load_sharded_bfloat16_and_errors(tiny_dir, tmp_path):
    import json
    import shutil

    from safetensors.numpy import load_file, save_file

    from spgg_jax.parallel import load_sharded

    mesh = make_mesh(LAYOUTS["fsdp"])
    cfg, params = load_sharded(str(tiny_dir), mesh, dtype="bfloat16")
    assert cfg.param_dtype == "bfloat16"
    assert {x.dtype for x in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.bfloat16)}
    # Custom rules: embed replicated -> nothing is split on a pure-fsdp mesh.
    _, rep = load_sharded(tiny_dir, mesh, rules=[("embed", None)])
    assert all(x.addressable_shards[0].data.shape == x.shape for x in jax.tree_util.tree_leaves(rep))
    with pytest.raises(ValueError, match="unknown mesh axis 'model'"):
        load_sharded(tiny_dir, mesh, rules=[("embed", "model")])
    with pytest.raises(TypeError, match="must be a jax.sharding.Mesh"):
        load_sharded(tiny_dir, "fsdp=8")
    with pytest.raises(KeyError, match="unknown model"):
        load_sharded(tmp_path / "nowhere", mesh)

    # A broken checkpoint: one tensor missing, one extra, one mis-shaped.
    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    state = load_file(str(bad / "model.safetensors"))
    del state["model.layers.1.mlp.up_proj.weight"]
    state["model.extra.weight"] = np.zeros(3, np.float32)
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing tensors: model\.layers\.1\.mlp\.up_proj\.weight; "
                                         r"unexpected tensors: model\.extra\.weight"):
        load_sharded(bad, mesh)
    del state["model.extra.weight"]
    state["model.layers.1.mlp.up_proj.weight"] = np.zeros((5, 32), np.float32)
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(ValueError, match=r"mis-shaped tensors: model\.layers\.1\.mlp\.up_proj\.weight: "
                                         r"expected shape \(64, 32\), found \(5, 32\)"):
        load_sharded(bad, mesh)
    assert json.loads((bad / "config.json").read_text())["hidden_size"] == 32
