"""MeshConfig validation and make_mesh shapes on the 8 fake CPU devices."""

import jax
import numpy as np
import pytest

from spgg_jax.parallel import MESH_AXES, MeshConfig, make_mesh, mesh_shape


@pytest.mark.parametrize(
    "cfg, shape",
    [
        (MeshConfig(data=8, fsdp=1, tensor=1), (8, 1, 1)),
        (MeshConfig(data=2, fsdp=2, tensor=2), (2, 2, 2)),
        (MeshConfig(data=1, fsdp=8, tensor=1), (1, 8, 1)),
        (MeshConfig(data=1, fsdp=1, tensor=8), (1, 1, 8)),
        (MeshConfig(), (8, 1, 1)),  # default: data=-1
        (MeshConfig(data=2, fsdp=-1, tensor=2), (2, 2, 2)),
        (MeshConfig(data=1, fsdp=2, tensor=-1), (1, 2, 4)),
    ],
)
def test_make_mesh_shapes(cfg, shape):
    assert jax.device_count() == 8
    mesh = make_mesh(cfg)
    assert mesh.axis_names == MESH_AXES
    assert tuple(mesh.devices.shape) == shape
    assert mesh_shape(mesh) == dict(zip(MESH_AXES, shape))
    # Every device exactly once.
    assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in jax.devices())
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


def test_make_mesh_on_device_subset():
    devs = jax.devices()[:4]
    mesh = make_mesh(MeshConfig(data=-1, tensor=2), devices=devs)
    assert tuple(mesh.devices.shape) == (2, 1, 2)
    assert {d.id for d in mesh.devices.flat} == {d.id for d in devs}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"data": -1, "fsdp": -1}, "at most one axis"),
        ({"data": 0}, "data=0"),
        ({"tensor": -2}, "tensor=-2"),
    ],
)
def test_bad_config_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MeshConfig(**kwargs)


def test_bad_type_rejected():
    with pytest.raises(TypeError, match="fsdp"):
        MeshConfig(fsdp=2.0)


def test_product_mismatch_errors_name_the_sizes():
    with pytest.raises(ValueError, match=r"data=2, fsdp=2, tensor=1.*4 devices but 8"):
        make_mesh(MeshConfig(data=2, fsdp=2, tensor=1))
    with pytest.raises(ValueError, match=r"not divisible by the product 3"):
        make_mesh(MeshConfig(data=-1, tensor=3))
    with pytest.raises(ValueError, match="16 devices but 8"):
        MeshConfig(data=4, fsdp=4, tensor=1).resolve(8)


def test_resolve_and_from_string():
    assert MeshConfig(data=-1, fsdp=2).resolve(16) == (8, 2, 1)
    assert MeshConfig.from_string("fsdp=-1, tensor=2") == MeshConfig(data=1, fsdp=-1, tensor=2)
    assert MeshConfig.from_string("tensor=2") == MeshConfig(data=-1, fsdp=1, tensor=2)
    assert MeshConfig.from_string("data=2,fsdp=2,tensor=2").resolve(8) == (2, 2, 2)
    assert MeshConfig.from_string("") == MeshConfig()
    with pytest.raises(ValueError, match="pipeline"):
        MeshConfig.from_string("pipeline=2")
    with pytest.raises(ValueError, match="bad size"):
        MeshConfig.from_string("data=two")


def test_mesh_is_frozen():
    cfg = MeshConfig()
    with pytest.raises(Exception):
        cfg.data = 2  # type: ignore[misc]
    np.testing.assert_equal(cfg.sizes(), (-1, 1, 1))
