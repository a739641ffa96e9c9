"""Generation-parameter policy (Beta heads) and LoRA adapters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from spgg_jax.models import ModelConfig, apply, init_params, positions_from_mask
from spgg_jax.rl import gen_policy as gp
from spgg_jax.rl.lora import init_lora, merge_lora


def test_beta_log_prob_and_entropy_match_scipy():
    a, b = jnp.array([1.5, 3.0, 1.0]), jnp.array([2.5, 1.2, 1.0])
    u = jnp.array([0.3, 0.8, 0.5])
    np.testing.assert_allclose(gp.beta_log_prob(u, a, b), stats.beta.logpdf(u, a, b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp.beta_entropy(a, b), stats.beta.entropy(a, b), rtol=1e-5, atol=1e-5)


def test_policy_acts_in_range_and_log_probs_consistent():
    feats = jax.random.normal(jax.random.key(0), (5, 20))
    params = gp.init_policy(jax.random.key(1), 20)
    u, logp, v = gp.act(params, feats, jax.random.key(2))
    assert u.shape == (5, 6) and logp.shape == (5,) and v.shape == (5,)
    assert np.all((np.asarray(u) > 0) & (np.asarray(u) < 1))
    logp2, ent, v2 = gp.evaluate(params, feats, u)
    np.testing.assert_allclose(logp, logp2, rtol=1e-5)
    np.testing.assert_allclose(v, v2)
    assert np.all(np.asarray(ent) <= 0.0 + 1e-6)  # Beta entropy on (0,1) is <= 0 (uniform: 0)
    sp = gp.to_sampling_params(u, gp.GenParamRanges())
    lo, hi = gp.GenParamRanges().bounds()
    for k, name in enumerate(gp.PARAM_NAMES):
        x = np.asarray(getattr(sp, name), np.float64)
        assert np.all(x >= float(lo[k]) - 0.5) and np.all(x <= float(hi[k]) + 0.5), name
    assert sp.top_k.dtype == jnp.int32 and sp.max_new_tokens.dtype == jnp.int32


def test_policy_gradient_moves_distribution():
    """A few PG steps towards a target draw raise its log-probability (the heads are trainable)."""
    import optax

    feats = jnp.ones((8, 4))
    params = gp.init_policy(jax.random.key(0), 4)
    target = jnp.full((8, 6), 0.9)
    opt = optax.adam(1e-2)
    state = opt.init(params)
    before = float(gp.evaluate(params, feats, target)[0].mean())
    loss = lambda p: -gp.evaluate(p, feats, target)[0].mean()  # noqa: E731
    for _ in range(30):
        g = jax.grad(loss)(params)
        upd, state = opt.update(g, state)
        params = jax.tree_util.tree_map(lambda a, b: a + b, params, upd)
    assert float(gp.evaluate(params, feats, target)[0].mean()) > before + 1.0


def test_ranges_validation():
    with pytest.raises(ValueError, match="temperature must have low < high"):
        gp.GenParamRanges(temperature=(1.0, 0.5))


def test_features_concatenate_onehot_and_position():
    f = gp.policy_features(jnp.zeros((2, 3)), 1, 3)
    np.testing.assert_allclose(f[0], [0, 0, 0, 0, 1, 0, 2 / 3], rtol=1e-6)


@pytest.fixture(scope="module")
def tiny():
    cfg = ModelConfig(family="llama", vocab_size=32, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4, d_ff=32)
    return cfg, init_params(cfg, jax.random.key(0))


def test_lora_zero_at_init_and_changes_logits_when_trained(tiny):
    cfg, params = tiny
    lora = init_lora(jax.random.key(1), params, rank=2, targets=("q_proj_kernel", "o_proj_kernel", "down_proj_kernel"))
    merged = merge_lora(params, lora, alpha=4.0, rank=2)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(merged)):
        np.testing.assert_array_equal(a, b)
    tok = jnp.array([[1, 2, 3, 4]])
    mask = jnp.ones_like(tok, bool)

    def loss(l):
        logits, _ = apply(merge_lora(params, l, 4.0, 2), cfg, tok, positions_from_mask(mask), mask)
        return -jax.nn.log_softmax(logits)[0, -1, 7]

    g = jax.grad(loss)(lora)
    gb = g["layers"]["attn"]["q_proj_kernel"]["b"]
    assert float(jnp.abs(gb).sum()) > 0  # B gets gradient even though it is zero
    stepped = jax.tree_util.tree_map(lambda p, d: p - 0.5 * d, lora, g)
    assert float(loss(stepped)) < float(loss(lora))


def test_lora_on_top_layers_changes_only_them(tiny):
    cfg, params = tiny  # 2 layers
    lora = init_lora(jax.random.key(1), params, rank=2, targets=("q_proj_kernel", "down_proj_kernel"), top_layers=1)
    assert lora["layers"]["attn"]["q_proj_kernel"]["a"].shape == (1, 16, 2)
    lora = jax.tree_util.tree_map(lambda x: x + 0.1, lora)
    merged = merge_lora(params, lora, alpha=4.0, rank=2)
    q, q0 = merged["layers"]["attn"]["q_proj_kernel"], params["layers"]["attn"]["q_proj_kernel"]
    np.testing.assert_array_equal(q[0], q0[0])
    assert float(jnp.max(jnp.abs(q[1] - q0[1]))) > 0
    assert merged["layers"]["attn"]["k_proj_kernel"] is params["layers"]["attn"]["k_proj_kernel"]
    with pytest.raises(ValueError, match="top_layers=3 exceeds the model's 2 layers"):
        init_lora(jax.random.key(0), params, top_layers=3)
    with pytest.raises(ValueError, match="top_layers must be an integer >= 0"):
        init_lora(jax.random.key(0), params, top_layers=-1)


def test_lora_errors(tiny):
    _, params = tiny
    with pytest.raises(ValueError, match="unknown LoRA targets"):
        init_lora(jax.random.key(0), params, targets=("w_kernel",))
    with pytest.raises(ValueError, match="rank must be >= 1"):
        init_lora(jax.random.key(0), params, rank=0)


def test_init_policy_starts_at_given_generation_parameters():
    ranges = gp.GenParamRanges(max_new_tokens=(8.0, 32.0))
    target = dict(temperature=0.7, top_p=0.95, top_k=200, max_new_tokens=32, repetition_penalty=1.0, presence_penalty=0.0)
    u0 = gp.to_unit(target, ranges)
    params = gp.init_policy(jax.random.key(0), 10, init_u=u0)
    mode = gp.mode(params, jax.random.normal(jax.random.key(1), (4, 10)))
    sp = gp.to_sampling_params(mode, ranges)
    np.testing.assert_allclose(sp.temperature, 0.7, atol=0.02)
    np.testing.assert_allclose(sp.top_p, 0.95, atol=0.01)
    np.testing.assert_allclose(sp.repetition_penalty, 1.0, atol=0.01)
    np.testing.assert_allclose(sp.presence_penalty, 0.0, atol=0.01)
    assert np.all(np.asarray(sp.max_new_tokens) >= 31)
