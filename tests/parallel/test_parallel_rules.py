"""Logical-axis rules: spec mapping (agrees with flax), overrides, divisibility, tree shardings."""

import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from spgg_jax import parallel as par
from spgg_jax.parallel import DEFAULT_RULES, MeshConfig, logical_to_spec, make_mesh

# Every parameter/activation/cache layout of the model contract (/tmp/axes.md) with the default
# rules' expected spec.
CONTRACT = [
    (("vocab", "embed"), P("tensor", "fsdp")),
    (("embed", "heads", "head_dim"), P("fsdp", "tensor", None)),
    (("embed", "kv_heads", "head_dim"), P("fsdp", "tensor", None)),
    (("heads", "head_dim", "embed"), P("tensor", None, "fsdp")),
    (("embed", "mlp"), P("fsdp", "tensor")),
    (("mlp", "embed"), P("tensor", "fsdp")),
    (("embed", "vocab"), P("fsdp", "tensor")),
    (("embed",), P("fsdp")),
    (("head_dim",), P(None)),
    (("layers", "embed", "mlp"), P(None, "fsdp", "tensor")),
    (("batch", "length", "embed"), P(("data", "fsdp"), None, None)),
    (("batch", "length", "heads", "head_dim"), P(("data", "fsdp"), None, "tensor", None)),
    (("batch", "length", "vocab"), P(("data", "fsdp"), None, "tensor")),
    (("layers", "batch", "cache_length", "kv_heads", "head_dim"),
     P(None, ("data", "fsdp"), None, "tensor", None)),
]


@pytest.mark.parametrize("axes, expected", CONTRACT)
def test_default_rules_map_contract_axes(axes, expected):
    assert logical_to_spec(axes) == expected
    # Same resolution as flax's own (used by nn.with_logical_constraint inside models).
    assert logical_to_spec(axes, DEFAULT_RULES) == nn.logical_to_mesh_axes(axes, DEFAULT_RULES)


def test_every_contract_name_has_a_rule():
    assert set(par.LOGICAL_AXES) == {name for name, _ in DEFAULT_RULES}


def test_unknown_and_none_names_are_replicated():
    assert logical_to_spec(("foo", None, "mlp")) == P(None, None, "tensor")
    assert logical_to_spec(()) == P()


def test_priority_and_used_axes_follow_flax():
    rules = (("embed", "tensor"), ("mlp", "tensor"), ("mlp", "fsdp"))
    # embed takes tensor first; mlp's first rule is blocked, its fallback rule applies.
    assert logical_to_spec(("embed", "mlp"), rules) == P("tensor", "fsdp")
    assert logical_to_spec(("embed", "mlp"), rules) == nn.logical_to_mesh_axes(("embed", "mlp"), rules)


def test_override_rules():
    rules = par.override_rules(overrides={"kv_heads": None, "embed": "tensor", "batch": "data+fsdp"})
    assert rules[:3] == (("kv_heads", None), ("embed", "tensor"), ("batch", ("data", "fsdp")))
    assert sum(1 for n, _ in rules if n == "embed") == 1
    assert logical_to_spec(("embed", "kv_heads", "head_dim"), rules) == P("tensor", None, None)
    # embed took "tensor", so mlp (tensor) is blocked and replicated.
    assert logical_to_spec(("embed", "mlp"), rules) == P("tensor", None)
    assert par.override_rules(overrides=None) == DEFAULT_RULES


def test_parse_rules_overrides():
    assert par.parse_rules_overrides("kv_heads=none, embed=tensor,batch=data+fsdp") == {
        "kv_heads": None, "embed": "tensor", "batch": ("data", "fsdp")}
    with pytest.raises(ValueError, match="NAME=MESH_AXES"):
        par.parse_rules_overrides("embed")


@pytest.mark.parametrize(
    "rules, match",
    [
        ((("embed", "model"),), "unknown mesh axis 'model'"),
        ((("embed",),), "not a .logical_name, mesh_axes. pair"),
        (((3, "fsdp"),), "non-empty str"),
        ((("batch", ("data", "data")),), "repeated"),
    ],
)
def test_bad_rules_rejected(rules, match):
    with pytest.raises((ValueError, TypeError), match=match):
        par.validate_rules(rules)


def test_bad_logical_axes_rejected():
    with pytest.raises(ValueError, match="more than once"):
        logical_to_spec(("embed", "embed"))
    with pytest.raises(TypeError, match="str or None"):
        logical_to_spec(("embed", 3))
    with pytest.raises(ValueError, match="shape"):
        logical_to_spec(("embed",), shape=(4, 4), mesh=make_mesh())


def test_divisibility_fallback_replicates_and_warns(caplog):
    mesh = make_mesh(MeshConfig(data=1, fsdp=2, tensor=4))
    with caplog.at_level(logging.WARNING, logger="spgg_jax.parallel.rules"):
        # 3 KV heads on tensor=4: replicated; embed 16 on fsdp=2: sharded.
        spec = logical_to_spec(("embed", "kv_heads", "head_dim"), shape=(16, 3, 8), mesh=mesh)
    assert spec == P("fsdp", None, None)
    assert any("kv_heads" in r.message and "not divisible" in r.message for r in caplog.records)
    # Batch of 6 on data*fsdp=2 is fine; size-1 mesh axes are dropped from the spec.
    assert logical_to_spec(("batch", "length"), shape=(6, 5), mesh=mesh) == P("fsdp", None)
    assert logical_to_spec(("embed", "kv_heads", "head_dim"), shape=(16, 4, 8), mesh=mesh) == P(
        "fsdp", "tensor", None)


class _Toy(nn.Module):
    @nn.compact
    def __call__(self, x):
        w = self.param("w", nn.with_logical_partitioning(nn.initializers.normal(), ("embed", "mlp")),
                       (x.shape[-1], 12))
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                           (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (12,))  # no logical axes: replicated
        return (x * scale) @ w + bias


def test_tree_shardings_boxed_and_plain_trees_agree():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    x = jnp.ones((4, 8))
    abstract = jax.eval_shape(_Toy().init, jax.random.PRNGKey(0), x)
    boxed = par.tree_shardings(abstract, mesh)
    assert boxed["params"]["w"] == NamedSharding(mesh, P("fsdp", "tensor"))
    assert boxed["params"]["scale"] == NamedSharding(mesh, P("fsdp"))
    assert boxed["params"]["bias"] == NamedSharding(mesh, P())
    # nn.get_partition_spec output (logical PartitionSpecs) gives the same shardings.
    from_specs = par.tree_shardings(nn.get_partition_spec(abstract), mesh)
    assert from_specs["params"]["w"] == boxed["params"]["w"]
    # A plain tree of tuples with shapes: 12 mlp on tensor=2 divisible, None leaf replicated.
    plain = {"w": ("embed", "mlp"), "scale": ("embed",), "bias": None}
    shapes = {"w": jnp.zeros((8, 12)), "scale": jnp.zeros((8,)), "bias": jnp.zeros((12,))}
    got = par.tree_shardings(plain, mesh, shapes=shapes)
    assert got == {"w": boxed["params"]["w"], "scale": boxed["params"]["scale"],
                   "bias": NamedSharding(mesh, P())}
    # Overridden rules reach every leaf.
    rules = par.override_rules(overrides={"mlp": None})
    assert par.tree_shardings(plain, mesh, rules)["w"] == NamedSharding(mesh, P("fsdp", None))


def test_tree_shardings_divisibility_on_boxed_values():
    mesh = make_mesh(MeshConfig(data=1, fsdp=1, tensor=8))
    abstract = jax.eval_shape(_Toy().init, jax.random.PRNGKey(0), jnp.ones((2, 8)))
    # mlp=12 is not divisible by tensor=8: replicated.
    assert par.tree_shardings(abstract, mesh)["params"]["w"].spec == P(None, None)


def test_shard_pytree_places_shards_and_keeps_values():
    mesh = make_mesh(MeshConfig(data=1, fsdp=2, tensor=4))
    variables = _Toy().init(jax.random.PRNGKey(0), jnp.ones((2, 8)))
    shardings = par.tree_shardings(variables, mesh)
    placed = par.shard_pytree(variables, shardings)  # boxed input is unboxed
    w = placed["params"]["w"]
    assert w.sharding == NamedSharding(mesh, P("fsdp", "tensor"))
    assert {s.data.shape for s in w.addressable_shards} == {(4, 3)}
    np.testing.assert_array_equal(np.asarray(w), np.asarray(nn.unbox(variables)["params"]["w"]))
    # One sharding for every leaf also works.
    rep = par.shard_pytree({"a": np.arange(8.0)}, par.batch_sharding(mesh))
    assert rep["a"].sharding.spec == P(("data", "fsdp"))


def test_batch_sharding_and_describe():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    s = par.batch_sharding(mesh)
    assert s.spec == P(("data", "fsdp"))
    arr = jax.device_put(np.zeros((8, 3), np.float32), s)
    assert {sh.data.shape for sh in arr.addressable_shards} == {(2, 3)}
    rules = par.override_rules(overrides={"batch": "data"})
    assert par.batch_sharding(mesh, rules).spec == P("data")
    desc = par.describe_shardings({"w": NamedSharding(mesh, P("fsdp", None))})
    assert desc == {"['w']": str(P("fsdp", None))}


def test_sharding_context_activates_rules_for_constraints():
    mesh = make_mesh(MeshConfig(data=1, fsdp=2, tensor=4))
    seen = {}

    def f(x):
        y = nn.with_logical_constraint(x * 2, ("batch", "vocab"))
        z = par.with_logical_constraint(y + 1, ("batch", "kv_heads"))  # 6 % 4 != 0: fallback
        return y, z

    assert par.active_rules() is None
    # Without a mesh both are no-ops.
    y, z = jax.jit(f)(jnp.ones((4, 6)))
    np.testing.assert_allclose(np.asarray(z), 3.0)
    with par.sharding_context(mesh):
        seen["rules"] = par.active_rules()
        x = jax.device_put(jnp.ones((4, 8)), NamedSharding(mesh, P()))
        y, _ = jax.jit(f)(x)
        _, z = jax.jit(f)(jnp.ones((4, 6)))
    assert seen["rules"] == DEFAULT_RULES
    assert par.active_rules() is None
    assert y.sharding.spec == P("fsdp", "tensor")
    assert z.sharding.spec in (P("fsdp", None), P("fsdp"))
    np.testing.assert_allclose(np.asarray(z), 3.0)


def test_parallel_config():
    cfg = par.ParallelConfig.from_strings("fsdp=-1,tensor=2", "kv_heads=none,embed=fsdp")
    assert cfg.mesh == MeshConfig(data=1, fsdp=-1, tensor=2)
    assert cfg.rules()[0] == ("kv_heads", None)
    assert tuple(cfg.make_mesh().devices.shape) == (1, 4, 2)
    assert par.ParallelConfig().rules() == DEFAULT_RULES
    with pytest.raises(ValueError, match="unknown mesh axis 'model'"):
        par.ParallelConfig(rules_overrides=(("embed", "model"),))
    with pytest.raises(TypeError, match="MeshConfig"):
        par.ParallelConfig(mesh="data=8")


def test_tree_shardings_physical_partitioned_box_and_bad_leaf():
    mesh = make_mesh(MeshConfig(data=1, fsdp=2, tensor=4))
    tree = {"a": nn.Partitioned(jnp.zeros((4, 6)), names=("fsdp", "tensor")),
            "b": nn.Partitioned(jnp.zeros((4, 8)), names=(None, "tensor"))}
    got = par.tree_shardings(tree, mesh)
    # 6 % 4 != 0 on tensor: that dim falls back to replicated.
    assert got["a"].spec == P("fsdp", None) and got["b"].spec == P(None, "tensor")
    with pytest.raises(TypeError, match="unsupported leaf"):
        par.tree_shardings({"x": 3}, mesh)
