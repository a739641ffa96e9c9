"""A jitted train step of a tiny transformer-like block gives the same loss, gradients and
updated parameters on one device and under data-, fsdp-, tensor-parallel and mixed layouts.

The block (written here) uses exactly the logical axis names of the model contract; the helpers
in ``spgg_jax.parallel.testing`` are meant to be reused with ``spgg_jax.models`` decoders.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import PartitionSpec as P

from spgg_jax.parallel import override_rules
from spgg_jax.parallel.testing import (
    LAYOUTS_8,
    assert_results_close,
    random_tokens,
    run_sharded_step,
)

VOCAB, EMBED, HEADS, KV_HEADS, HEAD_DIM, MLP, BATCH, LENGTH = 64, 16, 8, 2, 4, 32, 16, 8
# float32 matmuls whose reductions are split across devices (psum of partial sums) differ from the
# one-device order by a few ulps; 1e-5 absolute/relative is ~100x that and far below any real bug.
ATOL = RTOL = 1e-5


class Block(nn.Module):
    """Embedding -> GQA attention -> gated MLP -> LM head, with logical axes on everything."""

    @nn.compact
    def __call__(self, tokens):
        init = nn.initializers.normal(0.2)
        emb = self.param("embedding", nn.with_logical_partitioning(init, ("vocab", "embed")),
                         (VOCAB, EMBED))
        x = nn.with_logical_constraint(emb[tokens], ("batch", "length", "embed"))
        wq = self.param("q", nn.with_logical_partitioning(init, ("embed", "heads", "head_dim")),
                        (EMBED, HEADS, HEAD_DIM))
        wk = self.param("k", nn.with_logical_partitioning(init, ("embed", "kv_heads", "head_dim")),
                        (EMBED, KV_HEADS, HEAD_DIM))
        wv = self.param("v", nn.with_logical_partitioning(init, ("embed", "kv_heads", "head_dim")),
                        (EMBED, KV_HEADS, HEAD_DIM))
        wo = self.param("o", nn.with_logical_partitioning(init, ("heads", "head_dim", "embed")),
                        (HEADS, HEAD_DIM, EMBED))
        norm = self.param("norm", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                          (EMBED,))
        h = x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6) * norm
        q = nn.with_logical_constraint(jnp.einsum("bld,dhk->blhk", h, wq),
                                       ("batch", "length", "heads", "head_dim"))
        k = jnp.einsum("bld,dhk->blhk", h, wk)
        v = jnp.einsum("bld,dhk->blhk", h, wv)
        rep = HEADS // KV_HEADS
        k, v = jnp.repeat(k, rep, axis=2), jnp.repeat(v, rep, axis=2)
        s = jnp.einsum("bqhk,bshk->bhqs", q, k) / jnp.sqrt(HEAD_DIM)
        mask = jnp.tril(jnp.ones((LENGTH, LENGTH), bool))
        a = jax.nn.softmax(jnp.where(mask, s, -1e9), axis=-1)
        att = jnp.einsum("bhqs,bshk->bqhk", a, v)
        x = x + jnp.einsum("blhk,hkd->bld", att, wo)
        gate = self.param("gate", nn.with_logical_partitioning(init, ("embed", "mlp")), (EMBED, MLP))
        up = self.param("up", nn.with_logical_partitioning(init, ("embed", "mlp")), (EMBED, MLP))
        down = self.param("down", nn.with_logical_partitioning(init, ("mlp", "embed")), (MLP, EMBED))
        m = nn.with_logical_constraint(jax.nn.silu(x @ gate) * (x @ up), ("batch", "length", "mlp"))
        x = nn.with_logical_constraint(x + m @ down, ("batch", "length", "embed"))
        head = self.param("lm_head", nn.with_logical_partitioning(init, ("embed", "vocab")),
                          (EMBED, VOCAB))
        return nn.with_logical_constraint(x @ head, ("batch", "length", "vocab"))


MODEL = Block()


def init_fn(key):
    return MODEL.init(key, jnp.zeros((1, LENGTH), jnp.int32))


def loss_fn(params, batch):
    logits = MODEL.apply(params, batch["tokens"])
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    tgt = batch["tokens"][:, 1:]
    nll = -jnp.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]
    loss = jnp.sum(nll * batch["weights"][:, None]) / jnp.sum(batch["weights"]) / (LENGTH - 1)
    return loss, {"logits": logits}


@pytest.fixture(scope="module")
def batch():
    key = jax.random.PRNGKey(42)
    return {
        "tokens": random_tokens(key, BATCH, LENGTH, VOCAB),
        "weights": jax.random.uniform(jax.random.fold_in(key, 1), (BATCH,), minval=0.5, maxval=1.5),
    }


@pytest.fixture(scope="module")
def reference(batch):
    return run_sharded_step(init_fn, loss_fn, batch, mesh_cfg=None, optimizer=optax.adam(1e-2))


def _strip(spec):
    """A spec as a tuple without trailing Nones (``P(None, None)`` and ``P()`` are the same)."""
    t = tuple(spec)
    while t and t[-1] is None:
        t = t[:-1]
    return t


@pytest.mark.parametrize("layout", sorted(LAYOUTS_8))
def test_layout_matches_single_device_adam(layout, batch, reference):
    got = run_sharded_step(init_fn, loss_fn, batch, mesh_cfg=LAYOUTS_8[layout],
                           optimizer=optax.adam(1e-2))
    assert_results_close(reference, got, atol=ATOL, rtol=RTOL, label=layout)
    # The layout is really in effect: spot-check parameter placements.
    sh = got.param_shardings["params"]
    expected = {
        "data": (P(), P()),  # all 8 devices on data: everything replicated
        "fsdp": (P(None, "fsdp"), P("fsdp", None, None)),
        "tensor": (P("tensor", None), P(None, None, None)),  # kv_heads=2 % 8: replicated
        "mixed": (P("tensor", "fsdp"), P("fsdp", "tensor", None)),
    }[layout]
    assert _strip(sh["embedding"].spec) == _strip(expected[0]), sh["embedding"]
    assert _strip(sh["k"].spec) == _strip(expected[1]), sh["k"]


def test_sgd_tensor_parallel_with_rule_override(batch):
    """Overridden rules (embed on tensor, heads replicated) still compute the same step."""
    rules = override_rules(overrides={"embed": "tensor", "heads": None, "mlp": None, "vocab": None})
    opt = optax.sgd(0.5)
    ref = run_sharded_step(init_fn, loss_fn, batch, mesh_cfg=None, optimizer=opt)
    got = run_sharded_step(init_fn, loss_fn, batch, mesh_cfg=LAYOUTS_8["mixed"], rules=rules,
                           optimizer=opt)
    assert got.param_shardings["params"]["q"].spec == P("tensor", None, None)
    assert_results_close(ref, got, atol=ATOL, rtol=RTOL, label="sgd+override")
    # The step did change the parameters (so the comparison is not vacuous).
    moved = jax.tree_util.tree_map(lambda a, b: float(abs(a - b).max()), got.new_params,
                                   got.init_params)
    assert min(jax.tree_util.tree_leaves(moved)) > 1e-4
